"""The derivation as a document, LaTeX or Markdown.

Everything a document shows is printed here: SymPy objects through printing.latex, the
matrix notation of the batch forms as small string helpers, prose that depends on the
derivation as sentences. The templates (templates/derivation.tex.j2, .md.j2) only loop
over layers and sections and place these strings. Both formats share the maths (`$...$`
inline, display blocks with \\tag); they differ in how text, tables and display blocks
are written, which the _Latex and _Markdown classes below hold.
"""

import itertools
import re

import sympy as sp

from . import derive
from . import naming as nm
from .derivation import ActivationRule, Derivation, Step
from .printing import latex
from .templating import render_template

FORMATS = ("latex", "markdown")
TEMPLATES = {"latex": "derivation.tex.j2", "markdown": "derivation.md.j2"}
LOSS_TITLES = {"mse": "squared error", "bce": "binary cross-entropy", "ce": "cross-entropy"}


def render(derivation: Derivation, fmt: str) -> str:
    """The derivation document as text: fmt is "latex" (a complete article for pdflatex)
    or "markdown" (maths in $...$ and $$...$$, for GitHub, Jupyter, Obsidian, KaTeX)."""
    if fmt not in TEMPLATES:
        raise ValueError(f"unknown document format {fmt!r}; expected one of {', '.join(FORMATS)}")
    writer = _Latex() if fmt == "latex" else _Markdown()
    return render_template(TEMPLATES[fmt], _Document(derivation, writer).context())


# ---------------------------------------------------------------- the two formats

_LATEX_TEXT = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_text(text: str) -> str:
    """Text with LaTeX's special characters escaped (for text mode and \\text{...})."""
    return "".join(_LATEX_TEXT.get(c, c) for c in text)


def math_name(name: str) -> str:
    """An activation or loss name (an identifier) as upright maths: \\mathrm{leaky\\_relu}."""
    escaped = name.replace("_", r"\_")
    return rf"\mathrm{{{escaped}}}"


class _Latex:
    def text(self, s: str) -> str:
        return latex_text(s)

    def code(self, s: str) -> str:
        # -{} stops the -- ligature; \allowbreak lets a long spec break after a dash.
        return r"\texttt{" + latex_text(s).replace("-", r"-{}\allowbreak{}") + "}"

    @staticmethod
    def tag(label: str) -> str:
        return latex_text(label)

    def display(self, body: str, label: str | None = None) -> str:
        if label is None:
            return "\\begin{equation*}\n" + body + "\n\\end{equation*}"
        # equation* with \tag: no counter, so hyperref anchors come from the labels.
        return ("\\begin{equation*}\n" + body + "\n" + rf"\tag{{{self.tag(label)}}}\label{{eq:{label}}}"
                + "\n\\end{equation*}")

    def ref(self, label: str) -> str:
        return rf"\eqref{{eq:{label}}}"


class _Markdown:
    def text(self, s: str) -> str:
        return s

    def code(self, s: str) -> str:
        return f"`{s}`"

    @staticmethod
    def tag(label: str) -> str:
        # A tag is text: KaTeX reads \_ there but MathJax (GitHub, Jupyter, Obsidian) shows
        # the backslash; both read $\_$, an underscore in maths inside the text.
        return label.replace("_", r"$\_$")

    def display(self, body: str, label: str | None = None) -> str:
        tag = "" if label is None else "\n" + rf"\tag{{{self.tag(label)}}}"
        return "$$\n" + body + tag + "\n$$"

    def ref(self, label: str) -> str:
        return f"({label})"


# ---------------------------------------------------------------- reasons

_STRONG = re.compile(r"[\\_^{}=]")
_PAREN_LETTER = re.compile(r"[(\[][A-Za-z]|[A-Za-z][)\]]")
_WEAK = re.compile(r"[A-Za-z]|[-+/*<>]")


def _math_runs(reason: str) -> list[tuple[bool, str]]:
    """Split a reason into (is_maths, text) pieces. Maths may be delimited with $...$;
    otherwise a token with \\ _ ^ { } = (or a parenthesised letter) is maths, and so are
    lone letters and operators next to maths."""
    if "$" in reason:
        return [(index % 2 == 1, part) for index, part in enumerate(reason.split("$")) if part]
    tokens = reason.split()
    strong = [bool(_STRONG.search(t.rstrip(",;:."))) or bool(_PAREN_LETTER.fullmatch(t.rstrip(",;:.")))
              for t in tokens]
    weak = [bool(_WEAK.fullmatch(t)) for t in tokens]
    maths = list(strong)
    changed = True
    while changed:
        changed = False
        for index, token in enumerate(tokens):
            near = (index > 0 and maths[index - 1]) or (index + 1 < len(tokens) and maths[index + 1])
            if weak[index] and not maths[index] and near:
                maths[index] = changed = True
    pieces: list[tuple[bool, str]] = []
    for is_maths, group in itertools.groupby(zip(maths, tokens), key=lambda pair: pair[0]):
        text = " ".join(token for _, token in group)
        if is_maths:
            core = text.rstrip(",;:.")
            pieces.append((True, core))
            if core != text:
                pieces.append((False, text[len(core):]))
        else:
            pieces.append((False, text))
    return pieces


def reason_tex(reason: str) -> str:
    """A step's reason as math-mode LaTeX: prose in \\text{...}, formulas as maths."""
    out = []
    pieces: list[tuple[bool, str]] = []
    for is_maths, text in _math_runs(reason):
        if pieces and not is_maths and not pieces[-1][0]:
            pieces[-1] = (False, pieces[-1][1] + " " + text)
        else:
            pieces.append((is_maths, text))
    for index, (is_maths, text) in enumerate(pieces):
        if is_maths:
            body = re.sub(r"_([A-Za-z0-9]{2,})", r"_{\1}", text).replace(r"\phi", r"\varphi")
            if body.count("{") == body.count("}"):
                out.append(rf"{{\textstyle {body}}}")
                continue
        prose = text.strip()
        before = " " if index > 0 and pieces[index - 1][0] and prose[:1].isalnum() else ""
        after = " " if index + 1 < len(pieces) and pieces[index + 1][0] else ""
        out.append(rf"\text{{{before}{latex_text(prose)}{after}}}")
    return " ".join(out)


def aligned(steps: tuple[Step, ...], first_lhs: str = "", **settings) -> str:
    """Steps as an aligned derivation, `lhs &= expr && \\text{reason}`: a repeated lhs is
    left blank, and a step that repeats the expression before it joins its reason to it."""
    merged: list[list] = []
    for step in steps:
        if merged and merged[-1][0] == step.expr:
            merged[-1][1].append(step.reason)
        else:
            merged.append([step.expr, [step.reason]])
    rows, previous = [], None
    for index, (expr, reasons) in enumerate(merged):
        if isinstance(expr, sp.Eq):
            lhs, rhs = latex(expr.lhs, **settings), latex(expr.rhs, **settings)
        else:
            lhs, rhs = (first_lhs if index == 0 else ""), latex(expr, **settings)
        shown = "" if lhs == previous else lhs
        previous = lhs or previous
        lines = [part for reason in reasons for part in _short_lines(reason)]
        rows.append(f"{shown} &= {rhs} &&\\quad {reason_tex(lines[0])}")
        rows.extend(f"&&&\\quad {reason_tex(line)}" for line in lines[1:])
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def _short_lines(reason: str, width: int = 55) -> list[str]:
    """A long reason split after its semicolons, so the reason column stays narrow."""
    if len(reason) <= width or "; " not in reason:
        return [reason]
    head, tail = reason.split("; ", 1)
    return [head + ";"] + _short_lines(tail, width)


# ---------------------------------------------------------------- notation helpers

def _vec(name: str, layer) -> str:
    base = r"\boldsymbol{\delta}" if name == "delta" else rf"\mathbf{{{name}}}"
    return f"{base}^{{({layer})}}"


def _mat(name: str, layer) -> str:
    return f"{name}^{{({layer})}}"


def _t(tex: str) -> str:
    """The transpose, with brackets around a superscripted symbol: (W^{(l)})^T."""
    return rf"({tex})^{{\top}}"


def _reals(*dims) -> str:
    return r"\mathbb{R}^{" + r" \times ".join(str(d) for d in dims) + "}"


def _count(value: int) -> str:
    return f"{value:,}"


def _activation_applied(rule: ActivationRule, argument: str) -> str:
    return rf"{math_name(rule.name)}({argument})"


def _kinks(rule: ActivationRule) -> list[tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]]:
    """(point, value there, slope from the left, slope from the right) at every branch
    point z = c of a Piecewise derivative: each side's limit is taken in the branch that
    holds just beside c."""
    derivative = rule.derivative
    if not isinstance(derivative, sp.Piecewise):
        return []

    def branch_at(value):
        for expr, condition in derivative.args:
            if condition is sp.true or bool(condition.subs(nm.Z, value)):
                return expr
        return None

    out = []
    for _, condition in derivative.args:
        if not isinstance(condition, sp.core.relational.Relational):
            continue
        point = condition.rhs if condition.lhs == nm.Z else condition.lhs
        if not point.is_number:
            continue
        side = sp.Rational(1, 10**9)
        left, right = branch_at(point - side), branch_at(point + side)
        if left is None or right is None:
            continue
        out.append((point, derivative.subs(nm.Z, point),
                    sp.limit(left, nm.Z, point, dir="-"), sp.limit(right, nm.Z, point, dir="+")))
    return out


# ---------------------------------------------------------------- the document

class _Document:
    def __init__(self, derivation: Derivation, writer):
        self.d = derivation
        self.w = writer
        self.spec = derivation.spec
        self.sizes = self.spec.sizes
        self.depth = self.spec.depth

    # -------------------------------------------------------- pieces

    def architecture(self) -> str:
        layers = "-".join(f"{layer.units}:{layer.activation.name}" for layer in self.spec.layers)
        return f"{self.spec.input}-{layers}"

    def loss_title(self) -> str:
        name = self.spec.loss.name
        title = LOSS_TITLES.get(name) if self.spec.loss.builtin else None
        return f"{title} ({self.w.code(name)})" if title else self.w.code(name)

    def _is_textbook_mse(self) -> bool:
        return sp.simplify(self.d.loss.per_unit - (nm.A - nm.Y) ** 2 / 2) == 0

    def context(self) -> dict:
        spec, w = self.spec, self.w
        title_name = "" if spec.name == "network" else w.text(spec.name) + ": "
        output_rule = self.d.activations[-1]
        loss_sentence = f"The loss is {self.loss_title()}"
        if spec.loss_was_given:
            loss_sentence += ", as given."
        else:
            loss_sentence += (f"; it was chosen by default to follow the output activation "
                              f"({w.code(output_rule.name)}), because no loss was given. "
                              f"Choose another with {w.code('--loss')}.")
        return {
            "title": f"Backpropagation for {title_name}{w.code(self.architecture())} with the loss "
                     f"{w.code(spec.loss.name)}",
            "source_comment": " ".join(spec.source.split()),
            "loss_sentence": loss_sentence,
            "L": str(self.depth),
            "ref": {"output_delta": w.ref(nm.EQ_OUTPUT_DELTA), "hidden_delta": w.ref(nm.EQ_HIDDEN_DELTA),
                    "batch_loss": w.ref(nm.EQ_BATCH_LOSS)},
            "tags_example": f"({nm.eq_forward(1)}) or ({nm.EQ_OUTPUT_DELTA})",
            **self.network_table(),
            **self.forward(),
            **self.loss(),
            "activations": [self.activation(rule) for rule in self.d.distinct_activations()],
            **self.output_delta(),
            **self.dense(),
            **self.batch(),
            "algorithm": self.algorithm(),
            **self.flops(),
        }

    # -------------------------------------------------------- (2) the network

    def network_table(self) -> dict:
        rows = [{"l": "0", "width": _count(self.sizes[0]), "activation": "input",
                 "w_shape": "", "b_shape": "", "params": ""}]
        total = 0
        for l, layer in enumerate(self.spec.layers, start=1):
            n, m = self.sizes[l], self.sizes[l - 1]
            params = n * m + n
            total += params
            rows.append({"l": str(l), "width": _count(n), "activation": self.w.code(layer.activation.name),
                         "w_shape": f"${n} \\times {m}$", "b_shape": f"${n}$", "params": _count(params)})
        return {"layers": rows, "total_params": _count(total)}

    # -------------------------------------------------------- (4) forward

    def forward(self) -> dict:
        w = self.w
        general = (rf"{_vec('z', 'l')} = {_mat('W', 'l')} {_vec('a', 'l-1')} + {_vec('b', 'l')}, \qquad "
                   rf"{_vec('a', 'l')} = \varphi^{{(l)}}({_vec('z', 'l')})")
        layers = []
        for l, rule in enumerate(self.d.activations, start=1):
            n = self.sizes[l]
            body = (rf"{_vec('z', l)} = {_mat('W', l)} {_vec('a', l - 1)} + {_vec('b', l)} \in {_reals(n)}, \qquad "
                    rf"{_vec('a', l)} = {_activation_applied(rule, _vec('z', l))} \in {_reals(n)}")
            layers.append({"l": str(l), "equation": w.display(body, nm.eq_forward(l))})
        return {"forward_general": w.display(general, nm.EQ_FORWARD), "forward_layers": layers}

    # -------------------------------------------------------- (5) the loss

    def loss(self) -> dict:
        w = self.w
        per_unit = self.d.loss.per_unit.xreplace({nm.A: nm.a[nm.k], nm.Y: nm.y[nm.k]})
        if per_unit.could_extract_minus_sign():
            total = -sp.Sum(-per_unit, (nm.k, 1, nm.n))
        else:
            total = sp.Sum(per_unit, (nm.k, 1, nm.n))
        loss_eq = w.display(rf"\ell = {latex(total, layer='L')}", nm.EQ_LOSS)
        batch_eq = w.display(r"L = \frac{1}{B} \sum_{s=1}^{B} \ell_{s}", nm.EQ_BATCH_LOSS)
        mse_note = ""
        if self._is_textbook_mse():
            mse_note = (
                "This is the textbook squared error, with the factor $\\tfrac{1}{2}$ and a sum (not a mean) "
                "over the output units, so that its gradient is simply $a_k - y_k$. A framework's mean "
                f"squared error ({w.code('torch.nn.MSELoss')}, {w.code('keras.losses.MeanSquaredError')}) "
                f"averages over all $B \\cdot n_{{L}}$ elements and has no $\\tfrac{{1}}{{2}}$: "
                f"$L_{{\\text{{framework}}}} = \\tfrac{{2}}{{n_{{L}}}} L$ (here $n_{{L}} = {self.sizes[-1]}$), "
                "so its loss and its gradients are $2/n_{L}$ times ours."
            )
        logits_note = ""
        stable = self.d.output.loss_from_logits
        if stable is not None:
            logits_note = (
                "For numerical stability the generated code evaluates the loss of each output unit from the "
                "pre-activations instead of from $a$ (the same value, without $\\log 0$ or overflow):"
                + "\n\n" + w.display(rf"\ell_{{k}} = {latex(stable, layer='L', index='k')}")
            )
        units = "unit" if self.sizes[-1] == 1 else "units"
        return {"loss_eq": loss_eq, "batch_loss_eq": batch_eq, "n_out": str(self.sizes[-1]),
                "output_units": f"output {units}", "mse_note": mse_note, "logits_note": logits_note}

    # -------------------------------------------------------- (6) activations

    def activation(self, rule: ActivationRule) -> dict:
        w = self.w
        notes = []
        body = aligned(rule.steps)
        if rule.is_softmax:
            notes.append(
                "Here $n$ is the number of units of the layer and $[j = k]$ is 1 when $j = k$ and 0 "
                "otherwise. SymPy verified the last line by "
                "substituting $a_j = e^{z_j} / \\sum_i e^{z_i}$ back: the difference simplifies to zero. "
                "The Jacobian needs only the saved outputs $a$.")
        else:
            if rule.in_output is not None:
                how = {"symbolic": "symbolically: SymPy simplifies $\\varphi'(z) - g(\\varphi(z))$ to zero",
                       "numeric": (f"numerically: SymPy could not simplify $\\varphi'(z) - g(\\varphi(z))$ to zero, "
                                   f"so the two were compared at {len(derive.CHECK_POINTS)} points and on both sides "
                                   f"of every kink, to a relative error below {derive.TOLERANCE:g}")}[rule.verified_by]
                notes.append(f"The derivative in terms of the output $a = \\varphi(z)$ was verified {how}. "
                             "The backward pass therefore needs only the saved activations $a$.")
            else:
                notes.append("The engine found no expression of $\\varphi'$ in the output $a$ alone (it tries "
                             "polynomials in $a$ of degree at most 2; when $\\varphi$ is not one-to-one, no function "
                             "of $a$ can work), so the backward pass evaluates $\\varphi'$ at the saved "
                             "pre-activation $z$.")
            for point, value, left, right in _kinks(rule):
                if left == right:
                    notes.append(f"At $z = {latex(point)}$ the two branches meet with the same slope, "
                                 f"so $\\varphi'({latex(point)}) = {latex(value)}$ holds exactly.")
                else:
                    notes.append(
                        f"At the kink $z = {latex(point)}$, $\\varphi$ has no derivative (the slope jumps from "
                        f"${latex(left)}$ to ${latex(right)}$); the formula takes the value of the branch that "
                        f"holds there, $\\varphi'({latex(point)}) = {latex(value)}$, the conventional subgradient.")
        return {"name": w.code(rule.name), "equation": w.display(body, nm.eq_activation(rule.name)),
                "notes": " ".join(notes)}

    # -------------------------------------------------------- (7) output delta

    def output_delta(self) -> dict:
        w, out = self.w, self.d.output
        act = out.activation
        if act.is_softmax:
            intro = ("Softmax couples the output units, so the chain rule sums over every output $j$. "
                     "For one sample, dropping the layer index $(L)$ and writing "
                     "$g_j = \\partial \\ell / \\partial a_j$, with the Jacobian "
                     f"{w.ref(nm.eq_activation(act.name))}:")
            steps = aligned(out.steps, first_lhs=r"\delta_{k} = \frac{\partial \ell}{\partial z_{k}}")
            boxed_rhs = latex(out.result, layer="L")
        else:
            intro = ("The output activation acts unit by unit ($\\partial a_j / \\partial z_k = 0$ for $j \\ne k$), "
                     "so each output unit can be treated alone. For one unit $k$, dropping the indices "
                     "($a = a^{(L)}_k$, $z = z^{(L)}_k$, $y = y_k$):")
            steps = aligned(out.steps)
            boxed_rhs = latex(out.result, layer="L", index="k")
        assumptions = ""
        if out.assumptions:
            stated = ", ".join(f"${latex(eq, layer='L')}$" for eq in out.assumptions)
            assumptions = (f"The proof assumes {stated}: each target is a probability distribution over the "
                           "classes (one-hot labels qualify). For targets that do not sum to one, the line "
                           "before that step is the correct $\\delta$, not $a - y$.")
        boxed = w.display(rf"\boxed{{\delta^{{(L)}}_{{k}} = {boxed_rhs}}}", nm.EQ_OUTPUT_DELTA)
        vector = ""
        if out.collapsed is not None:
            c = out.collapsed
            difference = rf"{_vec('a', 'L')} - \mathbf{{y}}"
            if c != 1:
                difference = rf"{latex(c)} \left({difference}\right)"
            sentence = (f"The derivative of the activation cancels against the gradient of the loss: "
                        f"$\\delta^{{(L)}}$ collapses to "
                        + ("$a - y$" if c == 1 else f"${latex(c)}\\,(a - y)$")
                        + ", proved by SymPy (the quotient by $a - y$ simplifies to a constant).")
            vector = f"{_vec('delta', 'L')} = {difference} \\in {_reals(self.sizes[-1])}"
        else:
            needs = "and the pre-activation $z^{(L)}$ " if out.uses_z else ""
            sentence = ("This does not collapse to $a - y$: SymPy finds no constant $c$ with "
                        "$\\delta = c\\,(a - y)$, because the derivative of the activation does not cancel "
                        "against the gradient of the loss. There is no shortcut to prove, so the factored form "
                        "above is exactly what the "
                        f"generated code computes, from the saved output $a^{{(L)}}$ {needs}and the target $y$.")
            if not act.is_softmax:
                vector = (f"{_vec('delta', 'L')} = {latex(out.result, layer='L', shape='vector')} "
                          f"\\in {_reals(self.sizes[-1])}")
        vector_eq = ""
        if vector:
            vector_eq = "In vector form (products $\\odot$, quotients and powers elementwise):\n\n" + w.display(vector)
        return {"output_intro": intro, "output_steps": w.display(steps), "output_assumptions": assumptions,
                "output_boxed": boxed, "output_sentence": sentence, "output_vector": vector_eq}

    # -------------------------------------------------------- (8) dense layer, hidden deltas

    def _delta_factor(self, rule: ActivationRule, layer, shape: str) -> str:
        """' \\odot phi'(...)' for the recursion, printed from the derived backward form;
        empty when the derivative is 1."""
        form = rule.backward_form
        if form == 1:
            return ""
        tex = latex(form, layer=layer, shape=shape)
        if isinstance(form, sp.Add):
            tex = rf"\left({tex}\right)"
        return rf" \odot {tex}"

    def dense(self) -> dict:
        w = self.w
        steps = aligned(self.d.dense.steps, layer="l", prev_layer="l-1")
        W, Wn = _mat("W", "l"), _mat("W", "l+1")
        hidden = (rf"{_vec('delta', 'l')} = \bigl({_t(Wn)} {_vec('delta', 'l+1')}\bigr) "
                  rf"\odot \varphi'^{{(l)}}({_vec('z', 'l')}) \in {_reals('n_{l}')}")
        grad_w = (rf"\frac{{\partial \ell}}{{\partial {W}}} = {_vec('delta', 'l')} {_t(_vec('a', 'l-1'))} "
                  rf"\in {_reals('n_{l}', 'n_{l-1}')}")
        grad_b = rf"\frac{{\partial \ell}}{{\partial {_vec('b', 'l')}}} = {_vec('delta', 'l')} \in {_reals('n_{l}')}"
        layers = []
        for l, rule in enumerate(self.d.activations, start=1):
            n, m = self.sizes[l], self.sizes[l - 1]
            entry = {"l": str(l), "delta": "", "delta_note": ""}
            if l < self.depth:
                body = (rf"{_vec('delta', l)} = \bigl({_t(_mat('W', l + 1))} {_vec('delta', l + 1)}\bigr)"
                        rf"{self._delta_factor(rule, l, 'vector')} \in {_reals(n)}")
                entry["delta"] = w.display(body, nm.eq_delta(l))
                if rule.backward_form == 1:
                    entry["delta_note"] = f"The derivative of {w.code(rule.name)} is 1, so nothing multiplies."
                elif rule.in_output is None:
                    entry["delta_note"] = (f"The derivative of {w.code(rule.name)} has no form in $a$, so it is "
                                           f"evaluated at the saved ${_vec('z', l)}$.")
            entry["grad_w"] = w.display(
                rf"\frac{{\partial \ell}}{{\partial {_mat('W', l)}}} = {_vec('delta', l)} {_t(_vec('a', l - 1))} "
                rf"\in {_reals(n, m)}", nm.eq_grad_w(l))
            entry["grad_b"] = w.display(
                rf"\frac{{\partial \ell}}{{\partial {_vec('b', l)}}} = {_vec('delta', l)} \in {_reals(n)}",
                nm.eq_grad_b(l))
            layers.append(entry)
        as_vectors = (rf"\frac{{\partial \ell}}{{\partial {W}}} = {_vec('delta', 'l')} {_t(_vec('a', 'l-1'))}, \qquad "
                      rf"\frac{{\partial \ell}}{{\partial {_vec('b', 'l')}}} = {_vec('delta', 'l')}, \qquad "
                      rf"\frac{{\partial \ell}}{{\partial {_vec('a', 'l-1')}}} = {_t(W)} {_vec('delta', 'l')}")
        unit = (r"\frac{\partial \ell}{\partial z^{(l-1)}_{j}} = \frac{\partial \ell}{\partial a^{(l-1)}_{j}} "
                r"\, \varphi'^{(l-1)}(z^{(l-1)}_{j})")
        return {"dense_steps": w.display(steps), "dense_vectors": w.display(as_vectors),
                "dense_unit": w.display(unit), "hidden_general": w.display(hidden, nm.EQ_HIDDEN_DELTA),
                "grad_w_general": w.display(grad_w, nm.EQ_GRAD_W), "grad_b_general": w.display(grad_b, nm.EQ_GRAD_B),
                "backprop_layers": layers, "has_hidden": self.depth > 1}

    # -------------------------------------------------------- (9) batch forms

    def batch(self) -> dict:
        w, out = self.w, self.d.output
        forward = (rf"{_mat('Z', 'l')} = {_mat('A', 'l-1')} {_t(_mat('W', 'l'))} + \mathbf{{1}}_{{B}} "
                   rf"{_t(_vec('b', 'l'))} \in {_reals('B', 'n_{l}')}, \qquad "
                   rf"{_mat('A', 'l')} = \varphi^{{(l)}}({_mat('Z', 'l')}) \in {_reals('B', 'n_{l}')}")
        if out.collapsed is not None:
            c = out.collapsed
            difference = r"A^{(L)} - Y" if c == 1 else rf"{latex(c)} \left(A^{{(L)}} - Y\right)"
            delta = rf"\Delta^{{(L)}} = {difference} \in {_reals('B', 'n_{L}')}"
        elif not out.activation.is_softmax:
            delta = rf"\Delta^{{(L)}} = {latex(out.result, layer='L', shape='batch')} \in {_reals('B', 'n_{L}')}"
        else:
            delta = (r"\Delta^{(L)}_{sk} = \delta^{(L)}_{k}\ \text{of sample } s"
                     rf" \in {_reals('B', 'n_{L}')}")
        Delta = r"\Delta"
        hidden = (rf"{_mat(Delta, 'l')} = ({_mat(Delta, 'l+1')} {_mat('W', 'l+1')}) \odot "
                  rf"\varphi'^{{(l)}}({_mat('Z', 'l')}) \in {_reals('B', 'n_{l}')}")
        delta_t = _t(r"\Delta^{(l)}")
        grad_w = (rf"\frac{{\partial L}}{{\partial {_mat('W', 'l')}}} = \frac{{1}}{{B}} {delta_t} "
                  rf"{_mat('A', 'l-1')} \in {_reals('n_{l}', 'n_{l-1}')}")
        grad_b = (rf"\frac{{\partial L}}{{\partial {_vec('b', 'l')}}} = \frac{{1}}{{B}} {delta_t} "
                  rf"\mathbf{{1}}_{{B}} \in {_reals('n_{l}')}")
        return {"batch_forward": w.display(forward), "batch_delta": w.display(delta, nm.EQ_BATCH_DELTA),
                "batch_hidden": w.display(hidden), "batch_grad_w": w.display(grad_w, nm.EQ_BATCH_GRAD_W),
                "batch_grad_b": w.display(grad_b, nm.EQ_BATCH_GRAD_B)}

    def _z_layers(self) -> list[int]:
        """The layers whose pre-activations the backward pass needs (derivative not in a)."""
        needed = [l for l, rule in enumerate(self.d.activations[:-1], start=1) if rule.in_output is None]
        return needed + ([self.depth] if self.d.output.uses_z else [])

    # -------------------------------------------------------- (10) algorithm

    def algorithm(self) -> list[str]:
        w, L = self.w, self.depth
        ref = w.ref

        def span(first: str, last: str) -> str:
            return ref(first) if first == last else f"{ref(first)} to {ref(last)}"

        needed = self._z_layers()
        if needed:
            keep = (f"and the pre-activations $Z^{{(l)}}$ for $l = {', '.join(map(str, needed))}$, "
                    "whose derivatives have no form in $A^{(l)}$.")
        else:
            keep = ("only: every derivative is written in terms of $A^{(l)}$, "
                    "so the pre-activations need not be kept.")
        def layers(first: int, last: int, matrix: str = "") -> str:
            """'1, 2', '3, ..., 1' or with a matrix name 'A^(0), ..., A^(L)'."""
            step = 1 if last >= first else -1
            items = list(range(first, last + step, step))
            shown = [items[0], "\\dots", items[-1]] if len(items) > 3 else items
            return ", ".join(str(i) if not matrix or i == "\\dots" else f"{matrix}^{{({i})}}" for i in shown)

        steps = [
            f"Forward: $A^{{(0)}} = X$; for $l = {layers(1, L)}$ compute $Z^{{(l)}}$ and $A^{{(l)}}$, "
            f"by {span(nm.eq_forward(1), nm.eq_forward(L))}.",
            f"Save the activations ${layers(0, L, 'A')}$ {keep}",
            f"Loss: $L = \\frac{{1}}{{B}} \\sum_s \\ell_s$, by {ref(nm.EQ_BATCH_LOSS)}.",
            f"Output error: $\\Delta^{{({L})}}$, row by row from {ref(nm.EQ_OUTPUT_DELTA)}, as in "
            f"{ref(nm.EQ_BATCH_DELTA)}; the code multiplies it by $1/B$ here, once.",
        ]
        if L > 1:
            steps.append(f"Loop back: for $l = {layers(L - 1, 1)}$, "
                         f"$\\Delta^{{(l)}} = (\\Delta^{{(l+1)}} W^{{(l+1)}}) \\odot \\varphi'^{{(l)}}$, "
                         f"by {span(nm.eq_delta(L - 1), nm.eq_delta(1))}.")
        steps += [
            f"Gradients: for every layer, $\\partial L / \\partial W^{{(l)}}$ and $\\partial L / \\partial "
            f"\\mathbf{{b}}^{{(l)}}$, by {ref(nm.EQ_BATCH_GRAD_W)} and {ref(nm.EQ_BATCH_GRAD_B)}.",
            "Update (plain gradient descent with learning rate $\\eta$): "
            "$W^{(l)} \\leftarrow W^{(l)} - \\eta\\, \\partial L / \\partial W^{(l)}$ and "
            "$\\mathbf{b}^{(l)} \\leftarrow \\mathbf{b}^{(l)} - \\eta\\, \\partial L / \\partial \\mathbf{b}^{(l)}$.",
        ]
        return steps

    # -------------------------------------------------------- (11) FLOPs

    def flops(self) -> dict:
        rows, totals = [], [0, 0, 0]
        for l in range(1, self.depth + 1):
            n, m = self.sizes[l], self.sizes[l - 1]
            mults = 2 * n * m
            error = mults if l >= 2 else 0
            totals = [totals[0] + mults, totals[1] + error, totals[2] + mults]
            rows.append({"l": str(l), "shape": f"${n} \\times {m}$", "forward": _count(mults),
                         "error": _count(error) if l >= 2 else "--" if isinstance(self.w, _Latex) else "—",
                         "weight": _count(mults), "total": _count(mults + error + mults)})
        total = sum(totals)
        ratio = total / totals[0]
        return {"flop_rows": rows, "flop_forward": _count(totals[0]), "flop_error": _count(totals[1]),
                "flop_weight": _count(totals[2]), "flop_total": _count(total), "flop_ratio": f"{ratio:.2f}"}
