"""The documents people read (issue 8): the network diagram, MyST, Chinese, PDF, and the
Python API for notebooks. Every format is produced by the command line and by the API."""

import functools
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

import derivgen
from derivgen import diagram, messages
from derivgen import naming as nm
from derivgen import render as rd
from derivgen.cli import main
from derivgen.spec import parse_inline
from test_render import CASES, DEEP_TANH, cited_labels, derivation

ZH_TERMS = ("反向传播", "链式法则", "误差信号", "激活函数", "损失函数", "权重梯度", "偏置梯度", "前向传播", "雅可比矩阵")
SMALL = "2-2:sigmoid-1:sigmoid"
MNIST = "784-128:relu-10:softmax"


@functools.cache
def document(case: str, fmt: str, lang: str) -> str:
    return rd.render(derivation(case), fmt, lang)


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


# ---------------------------------------------------------------- the message tables

def test_every_key_in_every_language_with_the_same_placeholders():
    english = messages.MESSAGES["en"]
    assert set(messages.LANGUAGES) == set(messages.MESSAGES)
    for lang, table in messages.MESSAGES.items():
        assert set(table) == set(english), f"{lang}: missing {set(english) - set(table)}, extra {set(table) - set(english)}"
        for key, text in table.items():
            assert text.strip(), f"{lang}.{key} is empty"
            assert messages.placeholders(text) == messages.placeholders(english[key]), f"{lang}.{key}"


def _prose(text: str) -> str:
    """A message without its maths and placeholders."""
    return re.sub(r"\$[^$]*\$|\{\{\w+\}\}", " ", text)


@pytest.mark.parametrize("lang", messages.LANGUAGES)
def test_messages_are_safe_in_latex_text(lang):
    for key, text in messages.MESSAGES[lang].items():
        if key in messages.MATHS:
            continue
        assert text.count("$") % 2 == 0, key
        assert not re.search(r"[&%#_^~\\{}]", _prose(text)), f"{lang}.{key}: a LaTeX special character in text"


def test_chinese_messages_have_no_english_words():
    allowed = {"SymPy", "NumPy", "derivgen", "softmax", "MyST", "Jupyter", "Book", "mystmd", "sphinxcontrib", "mermaid"}
    for key, text in messages.MESSAGES["zh"].items():
        if key in messages.MATHS:
            text = "".join(re.findall(r"\\text\{([^{}]*)\}", text))
        words = set(re.findall(r"[A-Za-z]{2,}", _prose(text))) - allowed
        assert not words, f"zh.{key}: {words}"


def test_every_reason_the_engine_gives_is_translated():
    from derivgen.derive import penalty_rules

    reasons = set()
    for case in CASES:
        d = derivation(case)
        for rule in d.activations:
            reasons |= {step.reason for step in rule.steps}
        reasons |= {step.reason for step in d.output.steps} | {step.reason for step in d.dense.steps}
    reasons |= {step.reason for step in penalty_rules().steps}
    assert set(messages.ENGINE_REASONS.values()) <= set(messages.MESSAGES["en"])
    for reason in sorted(reasons):
        assert messages.untranslated(reason) == [], reason
        assert messages.reason("zh", reason) != reason


def test_a_reason_joined_from_two_is_translated_part_by_part():
    joined = "simplify; proved: the quotient by $(a - y)$ simplifies to a constant"
    assert messages.reason("zh", joined) == "化简；已证明：除以 $(a - y)$ 的商化简为常数"
    assert messages.reason("zh", "something new; chain rule") == "something new；链式法则"
    assert messages.untranslated("something new; chain rule") == ["something new"]


def test_message_needs_every_placeholder():
    with pytest.raises(KeyError, match="ref"):
        messages.message("en", "recursion_start", L=2)


# ---------------------------------------------------------------- the diagram

def test_a_run_of_identical_layers_is_one_box():
    blocks = diagram.blocks(parse_inline(DEEP_TANH, "mse"))
    assert blocks == [diagram.Block(1, 20, 64, "tanh"), diagram.Block(21, 21, 8, "identity")]
    short = diagram.blocks(parse_inline("4-3:relu-3:relu-2:sigmoid", None))
    assert [(b.first, b.last) for b in short] == [(1, 1), (2, 2), (3, 3)]  # two in a row stay apart


def test_a_long_mixed_network_elides_its_middle():
    spec = parse_inline("4-" + "-".join(f"3:{a}" for a in ["relu", "tanh"] * 15) + "-2:sigmoid", None)
    blocks = diagram.blocks(spec)
    assert len(blocks) <= diagram.MOST_BLOCKS
    elided = [b for b in blocks if b.elided]
    assert len(elided) == 1 and blocks[-1] == diagram.Block(31, 31, 2, "sigmoid")
    assert [b.first for b in blocks] == sorted(b.first for b in blocks)
    assert sum(b.count for b in blocks) == 31  # every layer is in exactly one box


@pytest.mark.parametrize("lang", messages.LANGUAGES)
@pytest.mark.parametrize("fmt", rd.FORMATS)
@pytest.mark.parametrize("case", CASES)
def test_every_document_has_the_diagram_citing_its_equations(case, fmt, lang):
    text = document(case, fmt, lang)
    start, end = {"latex": (r"\begin{tikzpicture}", r"\end{tikzpicture}"), "markdown": ("```mermaid\n", "\n```"),
                  "myst": ("```{mermaid}\n", "\n```")}[fmt]
    assert text.count(start) == 1
    drawing = text[text.index(start):text.index(end, text.index(start))]
    tags = set(re.findall(r"(?<!\^\{)\(([A-Za-z]+(?:-[A-Za-z0-9_]+)+)\)", drawing))
    assert nm.EQ_OUTPUT_DELTA in tags
    labels = set(cited_labels(derivation(case)))
    assert tags <= labels, tags - labels
    if fmt == "latex":  # the same symbols as the equations
        depth = derivation(case).spec.depth
        assert rf"\boldsymbol{{\delta}}^{{({depth})}}" in drawing and r"\mathbf{a}^{(0)}" in drawing
    else:
        assert "δ" in drawing and "∂ℓ/∂W" in drawing


def test_the_deep_network_diagram_stays_small():
    for fmt in ("markdown", "latex"):
        text = document("deep-tanh-identity-mse", fmt, "en")
        assert "×20" in text
    mermaid = diagram.mermaid(parse_inline(DEEP_TANH, "mse"), "en")
    assert len(re.findall(r"^\s+n\d+[\[(]", mermaid, re.M)) == 4  # input, the run, the output layer, the loss
    assert "for l = 1, …, 20" in mermaid


def test_mermaid_labels_are_quoted():
    for case in CASES:
        for lang in messages.LANGUAGES:
            for line in diagram.mermaid(derivation(case).spec, lang).splitlines():
                for label in re.findall(r"[\[(|]\"([^\"]*)\"", line):
                    assert '"' not in label


# ---------------------------------------------------------------- MyST

@pytest.mark.parametrize("case", CASES)
def test_myst_has_labelled_math_blocks(case):
    text = document(case, "myst", "en")
    assert "$$" not in text and r"\tag" not in text and r"\label" not in text
    blocks = re.findall(r"^```\{math\}\n(.*?)^```$", text, re.M | re.S)
    assert blocks and text.count("```{math}") == len(blocks)
    labels = [m for block in blocks for m in re.findall(r"\A:label: (\S+)\n", block)]
    for label in labels:
        assert re.fullmatch(r"eq-[A-Za-z0-9_-]+", label), label  # no ':' in a MyST label
    assert len(labels) == len(set(labels))
    for label in cited_labels(derivation(case)):
        assert nm.myst_label(label) in labels, label
    for ref in re.findall(r"\{eq\}`([^`]+)`", text):
        assert ref in labels, ref
    for block in blocks:
        assert "\n\n" not in block.split("\n", 1)[1].strip(), "a blank line splits Sphinx's math"


# ---------------------------------------------------------------- Chinese

def _outside_code_and_maths(text: str) -> str:
    text = re.sub(r"\{eq\}`[^`]*`", " ", text)  # MyST references
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = re.sub(r"\$[^$\n]*\$", " ", text)
    return re.sub(r"\([A-Za-z]+(?:-[A-Za-z0-9_]+)*\)", " ", text)  # equation tags, as the code cites them


@pytest.mark.parametrize("fmt", rd.FORMATS)
def test_chinese_uses_the_standard_terms(fmt):
    text = document("mnist-default-ce", fmt, "zh")
    for term in ZH_TERMS:
        assert term in text, term


@pytest.mark.parametrize("fmt", ["markdown", "myst"])
@pytest.mark.parametrize("case", CASES)
def test_chinese_has_no_english_prose(case, fmt):
    text = document(case, fmt, "zh").split("\n", 1)[1]  # after the stamp, a comment no reader sees
    allowed = {"SymPy", "NumPy", "derivgen", "softmax", "MyST", "Jupyter", "Book", "mystmd", "sphinxcontrib", "mermaid"}
    allowed |= set(derivation(case).spec.name.split("_"))  # the network's own name, in the title
    words = set(re.findall(r"[A-Za-z]{2,}", _outside_code_and_maths(text))) - allowed
    assert not words, words
    for inside in re.findall(r"\\text\{([^{}]*)\}", text):  # prose within maths: reasons, cases
        assert not re.search(r"[A-Za-z]{2,}", inside), inside


@pytest.mark.parametrize("fmt", rd.FORMATS)
def test_no_english_sentence_is_left_in_chinese(fmt):
    text = document("smooth-hidden", fmt, "zh")
    for phrase in ("The network", "The loss", "chain rule", "otherwise", "for every layer", "Forward pass",
                   "derivative", "units", "gradient of", "Batch form", "the output", "verified", "subgradient"):
        assert phrase not in text, phrase


# ---------------------------------------------------------------- Markdown for KaTeX and MathJax

KATEX_COMMANDS = {
    "Delta", "begin", "end", "bigl", "bigr", "boldsymbol", "boxed", "cdot", "delta", "dots", "ell", "eta", "frac",
    "ge", "hat", "in", "left", "right", "leftarrow", "log", "exp", "mathbb", "mathbf", "mathrm", "ne", "odot",
    "operatorname", "partial", "pi", "qquad", "quad", "sqrt", "sum", "tag", "tanh", "sinh", "cosh", "text",
    "textstyle", "tfrac", "times", "top", "varphi", "max", "min", "le", "lt", "gt", "infty",
}


@pytest.mark.parametrize("lang", messages.LANGUAGES)
@pytest.mark.parametrize("case", CASES)
def test_markdown_uses_only_what_katex_and_mathjax_know(case, lang):
    text = re.sub(r"```mermaid.*?```", "", document(case, "markdown", lang), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    commands = set(re.findall(r"(?<!\\)\\([A-Za-z]+)", text.replace("\\\\", " ")))
    assert commands <= KATEX_COMMANDS, commands - KATEX_COMMANDS
    assert set(re.findall(r"\\begin\{([^}]*)\}", text)) <= {"aligned", "cases"}


# ---------------------------------------------------------------- LaTeX

XELATEX = shutil.which("xelatex")


def _compile(engine: str, tex: str, folder) -> str:
    (folder / "doc.tex").write_text(tex, encoding="utf-8")
    result = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
                            cwd=folder, capture_output=True, text=True, timeout=300)
    log = (folder / "doc.log").read_text(errors="replace")
    assert result.returncode == 0, "\n".join(line for line in log.splitlines() if line.startswith("!"))
    assert (folder / "doc.pdf").stat().st_size > 0
    return log


def test_latex_chooses_its_engine_and_class():
    english, chinese = (document("xor-sigmoid-mse", "latex", lang).split("\n", 1)[1] for lang in ("en", "zh"))
    assert english.startswith("% !TEX program = pdflatex\n") and r"{article}" in english
    assert chinese.startswith("% !TEX program = xelatex\n") and r"{ctexart}" in chinese
    assert r"\usepackage{tikz}" in english and r"\usepackage{tikz}" in chinese


@pytest.mark.skipif(XELATEX is None, reason="xelatex is not installed (Debian: texlive-xetex, texlive-lang-chinese, "
                    "texlive-pictures, texlive-fonts-recommended); CI installs it")
@pytest.mark.parametrize("case", ["mnist-default-ce", "smooth-hidden", "toml-custom-names"])
def test_chinese_latex_compiles_with_xelatex(case, tmp_path):
    log = _compile(XELATEX, document(case, "latex", "zh"), tmp_path)
    assert "Missing character" not in log
    overfull = re.findall(r"Overfull \\hbox \((\d+\.\d+)pt too wide", log)
    assert all(float(points) < 5 for points in overfull), f"lines too wide: {overfull}"


# ---------------------------------------------------------------- the command line

@pytest.mark.parametrize("fmt, marker", [("latex", r"\documentclass"), ("markdown", "```mermaid"),
                                         ("myst", "```{math}\n:label: eq-output-delta")])
@pytest.mark.parametrize("lang", messages.LANGUAGES)
def test_cli_writes_every_format_in_every_language(fmt, marker, lang, tmp_path):
    path = tmp_path / f"doc.{fmt}"
    result = run("derive", SMALL, "--loss", "mse", "--format", fmt, "--lang", lang, "-o", str(path))
    assert result.exit_code == 0, result.output
    text = path.read_text(encoding="utf-8")
    assert marker in text
    assert ("反向传播" in text) == (lang == "zh")
    assert text == rd.render(derivation("xor-sigmoid-mse"), fmt, lang)


def test_cli_refuses_an_unknown_language():
    result = run("derive", SMALL, "--lang", "fr")
    assert result.exit_code == 2 and "fr" in result.output


def test_pdf_needs_an_output_file_and_latex():
    result = run("derive", SMALL, "--pdf")
    assert result.exit_code == 2 and "--pdf needs -o FILE.pdf" in result.output
    result = run("derive", SMALL, "--pdf", "--format", "markdown", "-o", "x.pdf")
    assert result.exit_code == 2 and "--pdf builds the LaTeX document" in result.output


@pytest.mark.parametrize("lang, install", [
    ("en", "apt-get install texlive-latex-base texlive-latex-recommended"),
    ("zh", "apt-get install texlive-xetex texlive-lang-chinese"),
])
def test_pdf_says_what_to_install_when_the_engine_is_missing(lang, install, tmp_path):
    result = run("derive", SMALL, "--pdf", "--lang", lang, "-o", str(tmp_path / "d.pdf"),
                 env={"PATH": str(tmp_path)})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and install in lines[0], result.output
    assert not (tmp_path / "d.pdf").exists()


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed; CI installs it")
def test_cli_builds_the_pdf(tmp_path):
    path = tmp_path / "tiny.pdf"
    result = run("derive", SMALL, "--loss", "mse", "--pdf", "-o", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_bytes().startswith(b"%PDF") and sorted(os.listdir(tmp_path)) == ["tiny.pdf"]


@pytest.mark.skipif(XELATEX is None, reason="xelatex is not installed; CI installs it")
def test_cli_builds_the_chinese_pdf(tmp_path):
    path = tmp_path / "tiny.zh.pdf"
    result = run("derive", SMALL, "--loss", "mse", "--pdf", "--lang", "zh", "-o", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_bytes().startswith(b"%PDF")


# ---------------------------------------------------------------- the Python API

def test_api_derive_gives_every_format():
    d = derivgen.derive(SMALL, loss="mse")
    expected = derivation("xor-sigmoid-mse")
    assert isinstance(d, derivgen.Document) and d.spec == expected.spec
    assert d.to_latex() == rd.render(expected, "latex")
    assert d.to_markdown() == rd.render(expected, "markdown") == d._repr_markdown_()
    assert d.to_myst(lang="zh") == rd.render(expected, "myst", "zh")
    assert d.to_latex(lang="zh") == rd.render(expected, "latex", "zh")


def test_api_repr_latex_is_the_key_equations():
    shown = derivgen.derive(MNIST)._repr_latex_()
    assert shown.startswith("$$\n\\begin{aligned}") and shown.endswith("\\end{aligned}\n$$")
    assert r"\delta^{(L)}_{k} &= a^{(L)}_{k} - y_{k}" in shown and r"\boldsymbol{\delta}^{(1)}" in shown
    deep = derivgen.derive(DEEP_TANH, loss="mse")._repr_latex_()
    assert deep.count(r"\\") < 6  # the recursion once, not a line per layer


def test_api_language_and_custom_definitions(tmp_path):
    d = derivgen.derive("3-4:sq-2:identity", activations={"sq": "x*x"}, losses={"half": "(a - y)**2/2"},
                        loss="half", lang="zh")
    assert "反向传播" in d._repr_markdown_() and r"\mathrm{sq}" in d.to_latex()
    toml = tmp_path / "net.toml"
    toml.write_text('name = "tiny"\ninput = 2\nloss = "mse"\n[[layers]]\nunits = 1\nactivation = "sigmoid"\n')
    assert "tiny" in derivgen.derive(toml).to_markdown()
    with pytest.raises(derivgen.errors.DerivgenError, match="unknown activation|not a known"):
        derivgen.derive("3-4:nope-2:identity")
    with pytest.raises(ValueError, match="zh"):
        derivgen.derive(SMALL, lang="fr")


def test_api_writes_documents(tmp_path):
    d = derivgen.derive(SMALL, loss="mse")
    assert (tmp_path / "d.md").exists() is False
    d.write(tmp_path / "d.md")
    assert (tmp_path / "d.md").read_text(encoding="utf-8") == d.to_markdown()
    d.write(tmp_path / "d.myst.md", fmt="myst")
    assert "```{math}" in (tmp_path / "d.myst.md").read_text(encoding="utf-8")
    if shutil.which("pdflatex"):
        assert d.to_pdf(tmp_path / "d.pdf").endswith("d.pdf")
        assert (tmp_path / "d.pdf").read_bytes().startswith(b"%PDF")


def test_api_generate_is_the_cli_module(tmp_path):
    source = derivgen.generate(MNIST, loss="ce")
    assert isinstance(source, str)
    assert source == run("generate", MNIST, "--loss", "ce").stdout
    path = source.write(tmp_path / "mnist.py")
    assert open(path, encoding="utf-8").read() == source
    module = source.load()
    import numpy as np

    rng = np.random.default_rng(0)
    params = module.init_params(seed=1)
    X, Y = rng.standard_normal((4, 784)), np.eye(10)[rng.integers(0, 10, 4)]
    loss, grads = module.loss_and_grad(params, X, Y)
    assert set(grads) == set(params) and np.isfinite(loss)


def test_api_generate_with_a_custom_activation_records_it():
    source = derivgen.generate("3-4:sq-2:identity", activations={"sq": "x*x"})
    assert "--activation=sq=x*x" in source
    assert source.load().ACTIVATIONS == ("sq", "identity")


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_derivgen_does_not_import_sympy():
    assert _python("""
        import sys, derivgen
        print("sympy" in sys.modules, derivgen.__version__)
    """).split()[0] == "False"


@pytest.mark.parametrize("first", ["import derivgen.derive", "from derivgen.derive import derive",
                                   "from derivgen import derive", "import derivgen"])
def test_derive_is_the_api_and_the_engine_module(first):
    out = _python(f"""
        {first}
        import derivgen
        import derivgen.derive as engine_module
        from derivgen.derive import derive as engine
        from derivgen import derive as module
        from derivgen.spec import parse_inline
        assert module is engine_module is derivgen.derive and engine is module.derive
        assert engine(parse_inline("2-1:sigmoid", "mse")).spec.depth == 1
        print(type(derivgen.derive("2-1:sigmoid", loss="mse")).__name__)
    """)
    assert out.strip() == "Document"


# ---------------------------------------------------------------- README and examples

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_picture_and_file_the_readme_links_exists():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [target for target in targets if "://" not in target and not target.startswith("#")]
    assert any(target.endswith(".png") for target in local)
    for target in local:
        assert os.path.exists(os.path.join(ROOT, target)), target


def test_vanishing_gradients_example(tmp_path):
    pytest.importorskip("matplotlib")
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import vanishing_gradients
    finally:
        sys.path.pop(0)
    results = vanishing_gradients.main(["--depth", "4", "-o", str(tmp_path / "plot.png")])
    sigmoid, relu = results["sigmoid"], results["relu"]
    assert len(sigmoid) == len(relu) == 5
    assert sigmoid[0] / sigmoid[-1] < relu[0] / relu[-1]  # the sigmoid network's first layers learn least
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")
