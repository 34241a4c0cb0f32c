"""The derivation as a document: LaTeX, Markdown or MyST, in English or Chinese.

Everything a document shows is printed here: SymPy objects through printing.latex, the
matrix notation of the batch forms as small string helpers, every sentence from the
message table of its language (messages.py), the network diagram from diagram.py. The
templates (templates/derivation.tex.j2, .md.j2) only loop over layers and sections and
place these strings. The formats share the maths (`$...$` inline); they differ in how
text, display blocks, references and the diagram are written, which the _Latex,
_Markdown and _MyST classes below hold.
"""

import itertools
import re
import unicodedata

import sympy as sp

from . import derive
from . import diagram
from . import naming as nm
from .derivation import ActivationRule, Derivation, Step
from .messages import MESSAGES, check_language, message, placeholders
from .messages import reason as translate_reason
from .printing import latex
from .stamp import stamp
from .templating import render_template

FORMATS = ("latex", "markdown", "myst")
TEMPLATES = {"latex": "derivation.tex.j2", "markdown": "derivation.md.j2", "myst": "derivation.md.j2"}
# The TeX engine each language's LaTeX needs, and its document class (ctex sets Chinese type).
LATEX_ENGINE = {"en": "pdflatex", "zh": "xelatex"}
LATEX_CLASS = {"en": r"\documentclass[11pt]{article}", "zh": r"\documentclass[11pt]{ctexart}"}
NOTATION = ("notation_sample", "notation_preactivation", "notation_weights", "notation_delta",
            "notation_hadamard", "notation_iverson", "notation_transpose")


def render(derivation: Derivation, fmt: str, lang: str = "en") -> str:
    """The derivation document as text: fmt is "latex" (a complete article: pdflatex for
    English, xelatex for Chinese), "markdown" (maths in $...$ and $$...$$, for GitHub,
    Jupyter, Obsidian, KaTeX) or "myst" (```{math} blocks with labels, for Jupyter Book);
    lang is "en" or "zh"."""
    if fmt not in TEMPLATES:
        raise ValueError(f"unknown document format {fmt!r}; expected one of {', '.join(FORMATS)}")
    check_language(lang)
    writer = {"latex": _Latex, "markdown": _Markdown, "myst": _MyST}[fmt]()
    return stamp(render_template(TEMPLATES[fmt], _Document(derivation, writer, lang).context()), fmt)


def summary(derivation: Derivation, lang: str = "en") -> str:
    """The key equations as one display of LaTeX maths ($$...$$), for notebooks: the
    forward pass, the output error, the recursion and the gradients."""
    return _Document(derivation, _Latex(), check_language(lang)).summary()


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
    fmt = "latex"
    missing = "--"  # an empty cell of the cost table

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
        return ("\\begin{equation*}\n" + body + "\n"
                + rf"\tag{{{self.tag(label)}}}\label{{{nm.latex_label(label)}}}" + "\n\\end{equation*}")

    def ref(self, label: str) -> str:
        return rf"\eqref{{{nm.latex_label(label)}}}"

    def diagram(self, spec, lang: str) -> str:
        return "\\begin{center}\n" + diagram.tikz(spec, lang, self.code) + "\n\\end{center}"


class _Markdown:
    fmt = "markdown"
    missing = "—"

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

    def diagram(self, spec, lang: str) -> str:
        return "```mermaid\n" + diagram.mermaid(spec, lang) + "\n```"


class _MyST(_Markdown):
    """MyST Markdown for Jupyter Book: ```{math} directives with a :label: (Sphinx numbers
    them; a \\tag would number them twice) and {eq} references; inline $...$ needs the
    dollarmath extension, on by default in Jupyter Book."""

    fmt = "myst"

    def display(self, body: str, label: str | None = None) -> str:
        option = "" if label is None else f":label: {nm.myst_label(label)}\n"
        return "```{math}\n" + option + body + "\n```"

    def ref(self, label: str) -> str:
        return f"{{eq}}`{nm.myst_label(label)}`"

    def diagram(self, spec, lang: str) -> str:
        return "```{mermaid}\n" + diagram.mermaid(spec, lang) + "\n```"


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
        maths_before = index > 0 and pieces[index - 1][0]
        maths_after = index + 1 < len(pieces) and pieces[index + 1][0]
        before = " " if maths_before and prose[:1].isalnum() else ""
        after = " " if maths_after else ""
        # xeCJK drops a space next to a Chinese character inside \text: space outside it
        outside_before = outside_after = ""
        if before and _is_wide(prose[0]):
            before, outside_before = "", "\\ "
        if after and _is_wide(prose[-1]):
            after, outside_after = "", "" if unicodedata.category(prose[-1]).startswith("P") else "\\ "
        out.append(rf"{outside_before}\text{{{before}{latex_text(prose)}{after}}}{outside_after}")
    return " ".join(out)


def aligned(steps: tuple[Step, ...], first_lhs: str = "", lang: str = "en", **settings) -> str:
    """Steps as an aligned derivation, `lhs &= expr && \\text{reason}`: a repeated lhs is
    left blank, and a step that repeats the expression before it joins its reason to it.
    Reasons are translated into `lang` (messages.reason)."""
    merged: list[list] = []
    for step in steps:
        if merged and merged[-1][0] == step.expr:
            merged[-1][1].append(step.reason)
        else:
            merged.append([step.expr, [step.reason]])
    separator = MESSAGES[lang]["reason_separator"]
    settings["words"] = _words(lang)
    rows, previous = [], None
    for index, (expr, reasons) in enumerate(merged):
        if isinstance(expr, sp.Eq):
            lhs, rhs = latex(expr.lhs, **settings), latex(expr.rhs, **settings)
        else:
            lhs, rhs = (first_lhs if index == 0 else ""), latex(expr, **settings)
        shown = "" if lhs == previous else lhs
        previous = lhs or previous
        lines = [part for reason in reasons for part in _short_lines(translate_reason(lang, reason), separator)]
        rows.append(f"{shown} &= {rhs} &&\\quad {reason_tex(lines[0])}")
        rows.extend(f"&&&\\quad {reason_tex(line)}" for line in lines[1:])
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def _words(lang: str) -> tuple[str, str]:
    """The words a case distinction is printed with."""
    return MESSAGES[lang]["piecewise_for"], MESSAGES[lang]["piecewise_otherwise"]


def _is_wide(char: str) -> bool:
    """A Chinese (wide) character or punctuation mark."""
    return unicodedata.east_asian_width(char) in "WF"


def _width(text: str) -> int:
    """Columns on the page: a Chinese character is as wide as two Latin letters."""
    return sum(2 if _is_wide(c) else 1 for c in text)


def _short_lines(reason: str, separator: str = "; ", width: int = 55) -> list[str]:
    """A long reason split after its separators (semicolons), so the reason column stays
    narrow."""
    if _width(reason) <= width or separator not in reason:
        return [reason]
    head, tail = reason.split(separator, 1)
    return [head + separator.rstrip()] + _short_lines(tail, separator, width)


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
    def __init__(self, derivation: Derivation, writer, lang: str = "en"):
        self.d = derivation
        self.w = writer
        self.lang = lang
        self.spec = derivation.spec
        self.sizes = self.spec.sizes
        self.depth = self.spec.depth

    def tex(self, expr, **settings) -> str:
        """LaTeX for a SymPy expression, with the words of the document's language."""
        return latex(expr, words=_words(self.lang), **settings)

    def t(self, key: str, **values) -> str:
        """The message `key` in the document's language."""
        return message(self.lang, key, **values)

    # -------------------------------------------------------- pieces

    def architecture(self) -> str:
        layers = "-".join(f"{layer.units}:{layer.activation.name}" for layer in self.spec.layers)
        return f"{self.spec.input}-{layers}"

    def loss_title(self) -> str:
        name = self.spec.loss.name
        key = f"loss_{name}"
        if self.spec.loss.builtin and key in MESSAGES[self.lang]:
            return self.t("loss_title", title=self.t(key), name=self.w.code(name))
        return self.w.code(name)

    def _is_textbook_mse(self) -> bool:
        return sp.simplify(self.d.loss.per_unit - (nm.A - nm.Y) ** 2 / 2) == 0

    def context(self) -> dict:
        spec, w = self.spec, self.w
        title_name = "" if spec.name == "network" else self.t("title_name", name=w.text(spec.name))
        output_rule = self.d.activations[-1]
        if spec.loss_was_given:
            loss_sentence = self.t("loss_given", loss=self.loss_title())
        else:
            loss_sentence = self.t("loss_default", loss=self.loss_title(), activation=w.code(output_rule.name),
                                   option=w.code("--loss"))
        source = " ".join(spec.source.split())
        return {
            "fmt": w.fmt,
            "lang": self.lang,
            # between two sentences on their own lines: Markdown shows a line break as a space
            "line_break": "" if self.lang == "zh" else "\n",
            "m": {key: text for key, text in MESSAGES[self.lang].items() if not placeholders(text)},
            "notation": [self.t(key) for key in NOTATION],
            "latex_class": LATEX_CLASS[self.lang],
            "latex_engine": LATEX_ENGINE[self.lang],
            "tikz_preamble": diagram.TIKZ_PREAMBLE,
            "title": self.t("title", name=title_name, architecture=w.code(self.architecture()),
                            loss=w.code(spec.loss.name)),
            "source_comment": self.t("latex_comment", source=source),
            "loss_sentence": loss_sentence,
            "intro_checked": self.t("intro_checked", tags=self.t("tags_example", first=nm.eq_forward(1),
                                                                  second=nm.EQ_OUTPUT_DELTA)),
            "network_intro": self.t("network_intro", L=self.depth),
            "diagram": w.diagram(spec, self.lang),
            "recursion_start": self.t("recursion_start", L=self.depth, ref=w.ref(nm.EQ_OUTPUT_DELTA)),
            "batch_delta_intro": self.t("batch_delta_intro", ref=w.ref(nm.EQ_OUTPUT_DELTA)),
            "batch_hidden_intro": self.t("batch_hidden_intro", ref=w.ref(nm.EQ_HIDDEN_DELTA)),
            "batch_one_over_b": self.t("batch_one_over_b", ref=w.ref(nm.EQ_BATCH_LOSS)),
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

    # -------------------------------------------------------- (1) the network

    def network_table(self) -> dict:
        rows = [{"l": "0", "width": _count(self.sizes[0]), "activation": self.t("row_input"),
                 "w_shape": "", "b_shape": "", "params": ""}]
        total = 0
        for l, layer in enumerate(self.spec.layers, start=1):
            n, m = self.sizes[l], self.sizes[l - 1]
            params = n * m + n
            total += params
            rows.append({"l": str(l), "width": _count(n), "activation": self.w.code(layer.activation.name),
                         "w_shape": f"${n} \\times {m}$", "b_shape": f"${n}$", "params": _count(params)})
        return {"layers": rows, "total_params": _count(total)}

    # -------------------------------------------------------- (3) forward

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

    # -------------------------------------------------------- (4) the loss

    def loss(self) -> dict:
        w = self.w
        per_unit = self.d.loss.per_unit.xreplace({nm.A: nm.a[nm.k], nm.Y: nm.y[nm.k]})
        if per_unit.could_extract_minus_sign():
            total = -sp.Sum(-per_unit, (nm.k, 1, nm.n))
        else:
            total = sp.Sum(per_unit, (nm.k, 1, nm.n))
        loss_eq = w.display(rf"\ell = {self.tex(total, layer='L')}", nm.EQ_LOSS)
        batch_eq = w.display(r"L = \frac{1}{B} \sum_{s=1}^{B} \ell_{s}", nm.EQ_BATCH_LOSS)
        mse_note = ""
        if self._is_textbook_mse():
            mse_note = self.t("mse_note", torch=w.code("torch.nn.MSELoss"),
                              keras=w.code("keras.losses.MeanSquaredError"), n=self.sizes[-1])
        logits_note = ""
        stable = self.d.output.loss_from_logits
        if stable is not None:
            logits_note = (self.t("logits_note") + "\n\n"
                           + w.display(rf"\ell_{{k}} = {self.tex(stable, layer='L', index='k')}"))
        units = self.t("output_unit" if self.sizes[-1] == 1 else "output_units")
        return {"loss_eq": loss_eq, "batch_loss_eq": batch_eq, "mse_note": mse_note, "logits_note": logits_note,
                "loss_intro": self.t("loss_intro", n=self.sizes[-1], units=units)}

    # -------------------------------------------------------- (5) activations

    def activation(self, rule: ActivationRule) -> dict:
        w = self.w
        notes = []
        body = aligned(rule.steps, lang=self.lang)
        if rule.is_softmax:
            notes.append(self.t("softmax_note"))
        else:
            if rule.in_output is not None:
                if rule.verified_by == "symbolic":
                    how = self.t("verified_symbolic")
                else:
                    how = self.t("verified_numeric", points=len(derive.CHECK_POINTS),
                                 tolerance=f"{derive.TOLERANCE:g}")
                notes.append(self.t("verified_note", how=how))
            else:
                notes.append(self.t("no_output_form"))
            for point, value, left, right in _kinks(rule):
                if left == right:
                    notes.append(self.t("kink_smooth", point=self.tex(point), value=self.tex(value)))
                else:
                    notes.append(self.t("kink", point=self.tex(point), value=self.tex(value), left=self.tex(left),
                                        right=self.tex(right)))
        joiner = "" if self.lang == "zh" else " "
        return {"name": w.code(rule.name), "equation": w.display(body, nm.eq_activation(rule.name)),
                "notes": joiner.join(notes)}

    # -------------------------------------------------------- (6) output delta

    def output_delta(self) -> dict:
        w, out = self.w, self.d.output
        act = out.activation
        if act.is_softmax:
            intro = self.t("output_intro_softmax", ref=w.ref(nm.eq_activation(act.name)))
            steps = aligned(out.steps, first_lhs=r"\delta_{k} = \frac{\partial \ell}{\partial z_{k}}", lang=self.lang)
            boxed_rhs = self.tex(out.result, layer="L")
        else:
            intro = self.t("output_intro_elementwise")
            steps = aligned(out.steps, lang=self.lang)
            boxed_rhs = self.tex(out.result, layer="L", index="k")
        assumptions = ""
        if out.assumptions:
            stated = ", ".join(f"${self.tex(eq, layer='L')}$" for eq in out.assumptions)
            assumptions = self.t("output_assumptions", stated=stated)
        boxed = w.display(rf"\boxed{{\delta^{{(L)}}_{{k}} = {boxed_rhs}}}", nm.EQ_OUTPUT_DELTA)
        vector = ""
        if out.collapsed is not None:
            c = out.collapsed
            difference = rf"{_vec('a', 'L')} - \mathbf{{y}}"
            if c != 1:
                difference = rf"{self.tex(c)} \left({difference}\right)"
            form = "$a - y$" if c == 1 else f"${self.tex(c)}\\,(a - y)$"
            sentence = self.t("output_collapses", form=form)
            vector = f"{_vec('delta', 'L')} = {difference} \\in {_reals(self.sizes[-1])}"
        else:
            inputs = self.t("output_from_a_z" if out.uses_z else "output_from_a")
            sentence = self.t("output_no_collapse", inputs=inputs)
            if not act.is_softmax:
                vector = (f"{_vec('delta', 'L')} = {self.tex(out.result, layer='L', shape='vector')} "
                          f"\\in {_reals(self.sizes[-1])}")
        vector_eq = ""
        if vector:
            vector_eq = self.t("output_vector") + "\n\n" + w.display(vector)
        return {"output_intro": intro, "output_steps": w.display(steps), "output_assumptions": assumptions,
                "output_boxed": boxed, "output_sentence": sentence, "output_vector": vector_eq}

    # -------------------------------------------------------- (7) dense layer, hidden deltas

    def _delta_factor(self, rule: ActivationRule, layer, shape: str) -> str:
        """' \\odot phi'(...)' for the recursion, printed from the derived backward form;
        empty when the derivative is 1."""
        form = rule.backward_form
        if form == 1:
            return ""
        tex = self.tex(form, layer=layer, shape=shape)
        if isinstance(form, sp.Add):
            tex = rf"\left({tex}\right)"
        return rf" \odot {tex}"

    def dense(self) -> dict:
        w = self.w
        steps = aligned(self.d.dense.steps, lang=self.lang, layer="l", prev_layer="l-1")
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
                    entry["delta_note"] = self.t("delta_note_one", name=w.code(rule.name))
                elif rule.in_output is None:
                    entry["delta_note"] = self.t("delta_note_z", name=w.code(rule.name), z=_vec("z", l))
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

    # -------------------------------------------------------- (8) batch forms

    def batch(self) -> dict:
        w, out = self.w, self.d.output
        forward = (rf"{_mat('Z', 'l')} = {_mat('A', 'l-1')} {_t(_mat('W', 'l'))} + \mathbf{{1}}_{{B}} "
                   rf"{_t(_vec('b', 'l'))} \in {_reals('B', 'n_{l}')}, \qquad "
                   rf"{_mat('A', 'l')} = \varphi^{{(l)}}({_mat('Z', 'l')}) \in {_reals('B', 'n_{l}')}")
        if out.collapsed is not None:
            c = out.collapsed
            difference = r"A^{(L)} - Y" if c == 1 else rf"{self.tex(c)} \left(A^{{(L)}} - Y\right)"
            delta = rf"\Delta^{{(L)}} = {difference} \in {_reals('B', 'n_{L}')}"
        elif not out.activation.is_softmax:
            delta = rf"\Delta^{{(L)}} = {self.tex(out.result, layer='L', shape='batch')} \in {_reals('B', 'n_{L}')}"
        else:
            delta = self.t("batch_delta_softmax") + rf" \in {_reals('B', 'n_{L}')}"
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
                "batch_grad_b": w.display(grad_b, nm.EQ_BATCH_GRAD_B), "penalty": self.penalty()}

    def penalty(self) -> str:
        """The L2 weight decay, when the network has one: derived, then added to the loss."""
        rules = self.d.penalty
        if rules is None:
            return ""
        w, value = self.w, self.tex(sp.Rational(repr(self.spec.l2)))
        delta_t = _t(r"\Delta^{(l)}")
        total = (rf"L = \frac{{1}}{{B}} \sum_{{s=1}}^{{B}} \ell_{{s}} + \sum_{{l=1}}^{{L}} R^{{(l)}}, \qquad "
                 rf"\frac{{\partial L}}{{\partial {_mat('W', 'l')}}} = \frac{{1}}{{B}} {delta_t} "
                 rf"{_mat('A', 'l-1')} + \lambda {_mat('W', 'l')}, \quad \lambda = {value}")
        parts = [self.t("penalty_intro", value=value),
                 w.display(aligned(rules.steps, lang=self.lang, layer="l"), nm.EQ_PENALTY),
                 self.t("penalty_total"), w.display(total, nm.EQ_GRAD_PENALTY)]
        return "\n\n".join(parts)

    def _z_layers(self) -> list[int]:
        """The layers whose pre-activations the backward pass needs (derivative not in a)."""
        needed = [l for l, rule in enumerate(self.d.activations[:-1], start=1) if rule.in_output is None]
        return needed + ([self.depth] if self.d.output.uses_z else [])

    # -------------------------------------------------------- (9) algorithm

    def algorithm(self) -> list[str]:
        w, L = self.w, self.depth
        ref = w.ref

        def span(first: str, last: str) -> str:
            return ref(first) if first == last else self.t("span", first=ref(first), last=ref(last))

        def layers(first: int, last: int, matrix: str = "") -> str:
            """'1, 2', '3, ..., 1' or with a matrix name 'A^(0), ..., A^(L)'."""
            step = 1 if last >= first else -1
            items = list(range(first, last + step, step))
            shown = [items[0], "\\dots", items[-1]] if len(items) > 3 else items
            return ", ".join(str(i) if not matrix or i == "\\dots" else f"{matrix}^{{({i})}}" for i in shown)

        needed = self._z_layers()
        keep = self.t("alg_keep_z", layers=", ".join(map(str, needed))) if needed else self.t("alg_keep_a")
        steps = [
            self.t("alg_forward", layers=layers(1, L), refs=span(nm.eq_forward(1), nm.eq_forward(L))),
            self.t("alg_save", list=layers(0, L, "A"), keep=keep),
            self.t("alg_loss", ref=ref(nm.EQ_BATCH_LOSS)),
            self.t("alg_output", L=L, ref=ref(nm.EQ_OUTPUT_DELTA), batch_ref=ref(nm.EQ_BATCH_DELTA)),
        ]
        if L > 1:
            steps.append(self.t("alg_loop", layers=layers(L - 1, 1), refs=span(nm.eq_delta(L - 1), nm.eq_delta(1))))
        steps += [
            self.t("alg_gradients", ref_w=ref(nm.EQ_BATCH_GRAD_W), ref_b=ref(nm.EQ_BATCH_GRAD_B)),
            self.t("alg_update"),
        ]
        return steps

    # -------------------------------------------------------- (10) FLOPs

    def flops(self) -> dict:
        rows, totals = [], [0, 0, 0]
        for l in range(1, self.depth + 1):
            n, m = self.sizes[l], self.sizes[l - 1]
            mults = 2 * n * m
            error = mults if l >= 2 else 0
            totals = [totals[0] + mults, totals[1] + error, totals[2] + mults]
            rows.append({"l": str(l), "shape": f"${n} \\times {m}$", "forward": _count(mults),
                         "error": _count(error) if l >= 2 else self.w.missing,
                         "weight": _count(mults), "total": _count(mults + error + mults)})
        total = sum(totals)
        ratio = total / totals[0]
        return {"flop_rows": rows, "flop_forward": _count(totals[0]), "flop_error": _count(totals[1]),
                "flop_weight": _count(totals[2]), "flop_total": _count(total),
                "cost_summary": self.t("cost_summary", total=_count(total), ratio=f"{ratio:.2f}")}

    # -------------------------------------------------------- for notebooks

    def summary(self) -> str:
        """The key equations of this network in one aligned display."""
        out = self.d.output
        if out.activation.is_softmax:
            output = self.tex(out.result, layer="L")
        else:
            output = self.tex(out.result, layer="L", index="k")
        rows = [rf"{_vec('z', 'l')} &= {_mat('W', 'l')} {_vec('a', 'l-1')} + {_vec('b', 'l')}, \quad "
                rf"{_vec('a', 'l')} = \varphi^{{(l)}}({_vec('z', 'l')})",
                rf"\delta^{{(L)}}_{{k}} &= {output}"]
        hidden = list(enumerate(self.d.activations[:-1], start=1))
        if len(hidden) > 3:  # a deep network: the recursion once, not a row per layer
            rows.append(rf"{_vec('delta', 'l')} &= \bigl({_t(_mat('W', 'l+1'))} {_vec('delta', 'l+1')}\bigr) "
                        rf"\odot \varphi'^{{(l)}}({_vec('z', 'l')}), \quad l < L")
            hidden = []
        for l, rule in hidden:
            rows.append(rf"{_vec('delta', l)} &= \bigl({_t(_mat('W', l + 1))} {_vec('delta', l + 1)}\bigr)"
                        rf"{self._delta_factor(rule, l, 'vector')}")
        rows += [rf"\frac{{\partial \ell}}{{\partial {_mat('W', 'l')}}} &= {_vec('delta', 'l')} {_t(_vec('a', 'l-1'))}, "
                 rf"\quad \frac{{\partial \ell}}{{\partial {_vec('b', 'l')}}} = {_vec('delta', 'l')}"]
        return "$$\n\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}\n$$"
