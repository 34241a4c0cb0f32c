"""The derivation documents: every cited label once, Markdown maths that renders, one 1/B
per batch gradient, the boxed result, and LaTeX that pdflatex compiles."""

import functools
import re
import shutil
import subprocess

import pytest

from derivgen import naming as nm
from derivgen import render as rd
from derivgen.derive import derive
from derivgen.printing import latex
from derivgen.spec import parse_inline, parse_toml_text

DEEP_TANH = "32-" + "-".join(["64:tanh"] * 20) + "-8:identity"

# id: (inline spec, loss or None for the default)
SPECS = {
    "xor-sigmoid-mse": ("2-2:sigmoid-1:sigmoid", "mse"),
    "mnist-default-ce": ("784-128:relu-10:softmax", None),
    "mnist-two-hidden-ce": ("784-512:relu-512:relu-10:softmax", "ce"),
    "deep-tanh-identity-mse": (DEEP_TANH, "mse"),
    "sigmoid-bce": ("4-3:tanh-1:sigmoid", "bce"),
    "sigmoid-default-bce": ("4-3:relu-2:sigmoid", None),
    "tanh-bce": ("4-3:relu-2:tanh", "bce"),
    "softmax-mse": ("4-3:relu-3:softmax", "mse"),
    "smooth-hidden": ("4-5:gelu-5:swish-5:elu-5:leaky_relu-5:softplus-3:softmax", "ce"),
    "no-hidden-layer": ("4-3:softmax", None),
}

TOML_SPEC = """
name = "my_net"
input = 3
loss = "half_sq"
[[layers]]
units = 4
activation = "soft_mish"
[[layers]]
units = 2
activation = "leaky_relu"
[activations.soft_mish]
expr = "x*tanh(log(1 + exp(x)))"
[losses.half_sq]
expr = "(a - y)**2/2"
"""


@functools.cache
def derivation(case: str):
    if case == "toml-custom-names":
        return derive(parse_toml_text(TOML_SPEC, "my_net.toml"))
    text, loss = SPECS[case]
    return derive(parse_inline(text, loss))


@functools.cache
def document(case: str, fmt: str) -> str:
    return rd.render(derivation(case), fmt)


CASES = list(SPECS) + ["toml-custom-names"]


def cited_labels(d) -> list[str]:
    """Every label the generated code cites (see naming.py and codegen.py)."""
    depth = d.spec.depth
    labels = [nm.EQ_LOSS, nm.EQ_BATCH_LOSS, nm.EQ_OUTPUT_DELTA, nm.EQ_HIDDEN_DELTA, nm.EQ_GRAD_W,
              nm.EQ_GRAD_B, nm.EQ_BATCH_DELTA, nm.EQ_BATCH_GRAD_W, nm.EQ_BATCH_GRAD_B]
    labels += [nm.eq_forward(l) for l in range(1, depth + 1)]
    labels += [nm.eq_delta(l) for l in range(1, depth)]
    labels += [nm.eq_grad_w(l) for l in range(1, depth + 1)]
    labels += [nm.eq_grad_b(l) for l in range(1, depth + 1)]
    labels += [nm.eq_activation(rule.name) for rule in d.distinct_activations()]
    return labels


def tag(label: str, fmt: str) -> str:
    """What marks the display of `label`: a \\tag, or in MyST the :label: option."""
    if fmt == "myst":
        return f":label: {nm.myst_label(label)}\n"
    shown = label.replace("_", r"\_") if fmt == "latex" else label.replace("_", r"$\_$")
    return rf"\tag{{{shown}}}"


DISPLAY = {"latex": (r"\begin{equation*}", r"\end{equation*}"), "markdown": ("$$\n", "\n$$"),
           "myst": ("```{math}\n", "\n```")}


def display_with(text: str, label: str, fmt: str) -> str:
    """The display block that carries the tag of `label`."""
    start, end = DISPLAY[fmt]
    at = text.index(tag(label, fmt))
    return text[text.rindex(start, 0, at):text.index(end, at)]


@pytest.mark.parametrize("fmt", rd.FORMATS)
@pytest.mark.parametrize("case", CASES)
def test_every_cited_label_appears_exactly_once(case, fmt):
    text = document(case, fmt)
    for label in cited_labels(derivation(case)):
        assert text.count(tag(label, fmt)) == 1, label
        if fmt == "latex":
            assert text.count(rf"\label{{eq:{label}}}") == 1, label
    tags = re.findall(r"\\tag\{([^{}]*(?:\{\}[^{}]*)*)\}", text)
    assert len(tags) == len(set(tags)), "a tag is used twice"


@pytest.mark.parametrize("case", CASES)
def test_markdown_uses_only_dollar_maths(case):
    text = document(case, "markdown")
    for banned in (r"\[", r"\]", r"\(", r"\)", r"\begin{equation", r"\label", r"\eqref", r"\section"):
        assert banned not in text, banned
    lines = text.splitlines()
    fences = [i for i, line in enumerate(lines) if line == "$$"]
    assert len(fences) % 2 == 0 and fences, "unbalanced $$"
    assert text.count("$$") == len(fences), "$$ must stand on a line of its own"
    for opening in fences[::2]:  # a blank line (or the start) before every display
        assert opening == 0 or lines[opening - 1] == ""
    outside = "\n".join(line for i, line in enumerate(lines) if not _inside_display(i, fences))
    assert outside.replace("$$", "").count("$") % 2 == 0, "unbalanced inline $"


def _inside_display(index: int, fences: list[int]) -> bool:
    return any(start <= index <= end for start, end in zip(fences[::2], fences[1::2]))


@pytest.mark.parametrize("fmt", rd.FORMATS)
@pytest.mark.parametrize("case", CASES)
def test_batch_gradients_have_exactly_one_one_over_b(case, fmt):
    text = document(case, fmt)
    for label in (nm.EQ_BATCH_GRAD_W, nm.EQ_BATCH_GRAD_B):
        assert display_with(text, label, fmt).count(r"\frac{1}{B}") == 1
    assert r"\frac{1}{B}" not in display_with(text, nm.EQ_BATCH_DELTA, fmt)
    assert display_with(text, nm.EQ_BATCH_LOSS, fmt).count(r"\frac{1}{B}") == 1


@pytest.mark.parametrize("fmt", rd.FORMATS)
@pytest.mark.parametrize("case", CASES)
def test_output_delta_is_boxed_and_default_loss_is_said(case, fmt):
    d, text = derivation(case), document(case, fmt)
    assert r"\boxed{\delta^{(L)}_{k} = " in display_with(text, nm.EQ_OUTPUT_DELTA, fmt)
    assert ("chosen by default" in text) == (not d.spec.loss_was_given)
    if d.output.collapsed is None:
        assert "does not collapse to $a - y$" in text
    else:
        assert "collapses to $a - y$" in text
    if d.output.assumptions:
        assert "The proof assumes" in text


@pytest.mark.parametrize("case", ["xor-sigmoid-mse", "mnist-default-ce"])
def test_documents_are_deterministic(case):
    for fmt in rd.FORMATS:
        assert rd.render(derivation(case), fmt) == rd.render(derivation(case), fmt)


def test_shapes_and_counts_of_the_mnist_network():
    text = document("mnist-default-ce", "markdown")
    assert "| 1 | 128 | `relu` | $128 \\times 784$ | $128$ | 100,480 |" in text
    assert "**101,770**" in text
    assert r"\in \mathbb{R}^{128 \times 784}" in display_with(text, nm.eq_grad_w(1), "markdown")
    assert r"[\mathbf{a}^{(1)} > 0]" in display_with(text, nm.eq_delta(1), "markdown")
    # FLOPs for B = 1: 2*128*784 forward and weight gradient, no error propagation into x
    assert "| 1 | $128 \\times 784$ | 200,704 | — | 200,704 | 401,408 |" in text
    assert "**409,088**" in text


def test_mse_note_and_non_collapsing_output():
    text = document("xor-sigmoid-mse", "latex")
    assert "torch.nn.MSELoss" in text and r"\tfrac{2}{n_{L}}" in text
    boxed = display_with(text, nm.EQ_OUTPUT_DELTA, "latex")
    assert r"a^{(L)}_{k} \left(1 - a^{(L)}_{k}\right) \left(a^{(L)}_{k} - y_{k}\right)" in boxed
    assert r"\mathbf{a}^{(L)} \odot \left(1 - \mathbf{a}^{(L)}\right) \odot" in text


def test_derivative_needing_z_is_said():
    text = document("smooth-hidden", "markdown")
    assert text.count("no expression of $\\varphi'$ in the output $a$ alone") == 3  # gelu, swish, softplus
    assert "the conventional subgradient" in text  # leaky_relu's kink
    assert "the two branches meet with the same slope" in text  # elu is smooth at 0


def test_names_are_escaped_for_latex():
    text = document("toml-custom-names", "latex")
    assert r"my\_net" in text and r"\texttt{soft\_mish}" in text
    assert r"\mathrm{soft\_mish}" in text and r"\mathrm{leaky\_relu}" in text
    assert r"\label{eq:act-soft_mish}" in text


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="markdown"):
        rd.render(derivation("xor-sigmoid-mse"), "html")


@pytest.mark.parametrize("reason, expected", [
    ("definition", r"\text{definition}"),
    ("with a = \\phi(z); verified symbolically",
     r"\text{with } {\textstyle a = \varphi(z)} \text{; verified symbolically}"),
    ("chain rule; only z_i depends on W_ij",
     r"\text{chain rule; only } {\textstyle z_i} \text{ depends on } {\textstyle W_{ij}}"),
    ("proved: the quotient by (a - y) simplifies to a constant",
     r"\text{proved: the quotient by } {\textstyle (a - y)} \text{ simplifies to a constant}"),
    ("the Kronecker delta picks j = k", r"\text{the Kronecker delta picks } {\textstyle j = k}"),
    ("explicit $x_1 + y$ maths", r"\text{explicit } {\textstyle x_1 + y} \text{ maths}"),
])
def test_reasons_separate_prose_from_maths(reason, expected):
    assert rd.reason_tex(reason) == expected


def test_printer_vector_and_unit_forms():
    import sympy as sp
    a, y = nm.A, nm.Y
    assert latex(a * (1 - a), layer=2, shape="vector") == r"\mathbf{a}^{(2)} \odot \left(1 - \mathbf{a}^{(2)}\right)"
    assert latex(a * (1 - a), layer=2, shape="batch") == r"A^{(2)} \odot \left(1 - A^{(2)}\right)"
    assert latex(sp.Piecewise((1, a > 0), (0, True)), layer=1, shape="vector") == r"[\mathbf{a}^{(1)} > 0]"
    assert latex(a - y, layer="L", index="k") == r"a^{(L)}_{k} - y_{k}"
    half_sum = sp.Sum((nm.a[nm.k] - nm.y[nm.k]) ** 2 / 2, (nm.k, 1, nm.n))
    assert latex(half_sum, layer="L").startswith(r"\frac{1}{2} \sum_{k=1}^{n_{L}}")
    assert latex(nm.y[nm.k] * sp.log(nm.a[nm.k])) == r"y_{k} \log{\left(a_{k} \right)}"


# ---------------------------------------------------------------- pdflatex

PDFLATEX = shutil.which("pdflatex")


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (Debian: texlive-latex-base, "
                    "texlive-latex-recommended); CI installs it")
@pytest.mark.parametrize("case", CASES)
def test_latex_compiles(case, tmp_path):
    (tmp_path / "doc.tex").write_text(document(case, "latex"))
    run = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert run.returncode == 0, "\n".join(line for line in log.splitlines() if line.startswith("!"))
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    overfull = re.findall(r"Overfull \\hbox \((\d+\.\d+)pt too wide", log)
    assert all(float(points) < 5 for points in overfull), f"lines too wide: {overfull}"
