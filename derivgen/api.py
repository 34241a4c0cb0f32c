"""derivgen for notebooks and scripts: `derive` gives a document object, `generate` the
source of a NumPy module. Both take what the command line takes:

    import derivgen
    d = derivgen.derive("784-128:relu-10:softmax", loss="ce")
    d                                  # in Jupyter: the whole derivation, as Markdown
    d.to_latex(lang="zh")              # also .to_markdown(), .to_myst(), .to_pdf(path)
    source = derivgen.generate("784-128:relu-10:softmax")
    source.write("mnist.py")           # or: mlp = source.load(), a module object

SPEC is inline text (`784-128:relu-10:softmax`), the path of a TOML file, or a parsed
NetworkSpec; `activations` and `losses` map names to formulas ({"mish": "x*tanh(log(1 +
exp(x)))"}), as --activation and --loss-def do. Errors are DerivgenError with the same
one-line messages as the command line's.
"""

import os
import types

from .errors import DerivgenError

DOCUMENT_SUFFIXES = {".tex": "latex", ".md": "markdown", ".pdf": "pdf"}


def _spec(spec, loss, activations, losses, l2):
    from . import spec as spec_module

    if isinstance(spec, spec_module.NetworkSpec):
        if loss is not None or activations or losses or l2 is not None:
            raise DerivgenError("a parsed NetworkSpec already holds its loss and definitions; "
                                "give them when parsing it")
        return spec
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise DerivgenError(f"spec must be inline text, a TOML file's path or a NetworkSpec, got {type(spec).__name__}")
    return spec_module.load(spec, loss, spec_module.custom_definitions("activation", dict(activations or {})),
                            spec_module.custom_definitions("loss", dict(losses or {})), l2)


def _extra_args(activations, losses) -> list[str]:
    """The command-line options that add the same custom definitions (for headers)."""
    return ([f"--activation={name}={formula}" for name, formula in (activations or {}).items()]
            + [f"--loss-def={name}={formula}" for name, formula in (losses or {}).items()])


class Document:
    """A network's backpropagation, derived and proved, to be written in any format.

    `lang` ("en" or "zh") is the language Jupyter shows and the default of the to_*
    methods. Jupyter displays the Markdown document (_repr_markdown_); _repr_latex_ is
    the key equations only, as one display of maths (a whole LaTeX article is not
    something a notebook or MathJax can show). `derivation` holds the engine's results
    (derivgen.derivation.Derivation), `spec` the parsed network.
    """

    def __init__(self, derivation, lang: str = "en"):
        from .messages import check_language

        self.derivation = derivation
        self.spec = derivation.spec
        self.lang = check_language(lang)

    def render(self, fmt: str, lang: str | None = None) -> str:
        """The document as text: fmt "latex", "markdown" or "myst"."""
        from .render import render

        return render(self.derivation, fmt, lang or self.lang)

    def to_latex(self, lang: str | None = None) -> str:
        """A complete LaTeX article (pdflatex; xelatex for lang="zh")."""
        return self.render("latex", lang)

    def to_markdown(self, lang: str | None = None) -> str:
        """Markdown with $...$ maths and a Mermaid diagram (GitHub, Obsidian, Jupyter)."""
        return self.render("markdown", lang)

    def to_myst(self, lang: str | None = None) -> str:
        """MyST Markdown for Jupyter Book: ```{math} blocks with :label: eq-...."""
        return self.render("myst", lang)

    def to_pdf(self, path, lang: str | None = None) -> str:
        """Build the PDF (pdflatex; xelatex for Chinese) and write it to `path`."""
        from . import pdf
        from .cli import write_atomic
        from .render import LATEX_ENGINE

        lang = lang or self.lang
        engine = LATEX_ENGINE[lang]
        pdf.require(engine)
        path = os.fspath(path)
        write_atomic(path, pdf.build(self.to_latex(lang), engine))
        return path

    def write(self, path, fmt: str | None = None, lang: str | None = None) -> str:
        """Write the document to `path`; the format follows the suffix (.tex, .md, .pdf)
        unless `fmt` is given ("latex", "markdown", "myst", "pdf")."""
        from .cli import write_atomic

        path = os.fspath(path)
        fmt = fmt or DOCUMENT_SUFFIXES.get(os.path.splitext(path)[1].lower())
        if fmt is None:
            raise DerivgenError(f"cannot tell the format of {path!r} from its suffix; give fmt=")
        if fmt == "pdf":
            return self.to_pdf(path, lang)
        write_atomic(path, self.render(fmt, lang))
        return path

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_latex_(self) -> str:
        from .render import summary

        return summary(self.derivation, self.lang)

    def __repr__(self) -> str:
        return f"<derivgen.Document {self.spec.source!r}, loss {self.spec.loss.name!r}, lang {self.lang!r}>"


def derive(spec, loss=None, activations=None, losses=None, *, lang: str = "en", l2=None) -> Document:
    """Derive the backpropagation of SPEC (inline, a TOML path, or a NetworkSpec)."""
    from .derive import derive as run

    return Document(run(_spec(spec, loss, activations, losses, l2)), lang)


class GeneratedModule(str):
    """The source text of a generated NumPy module (a str), with `name`, `write(path)`
    and `load()`."""

    def __new__(cls, source: str, name: str = "generated"):
        text = super().__new__(cls, source)
        text.name = name
        return text

    def write(self, path) -> str:
        """Write the module to `path` (all at once: never a half-written file)."""
        from .cli import write_atomic

        path = os.fspath(path)
        write_atomic(path, str(self))
        return path

    def load(self, name: str | None = None) -> types.ModuleType:
        """The module, imported from this text (not from a file, and not put in sys.modules)."""
        module = types.ModuleType(name or self.name)
        module.__file__ = f"<derivgen: {module.__name__}>"
        exec(compile(str(self), module.__file__, "exec"), module.__dict__)
        return module


def generate(spec, loss=None, activations=None, losses=None, *, l2=None) -> GeneratedModule:
    """The NumPy module for SPEC, the same text `derivgen generate` writes."""
    from .cli import command_line
    from .codegen import generate as run
    from .derive import derive as engine

    network = _spec(spec, loss, activations, losses, l2)
    source = run(engine(network), command_line("generate", network, _extra_args(activations, losses)))
    name = network.name if network.name.isidentifier() and network.name != "network" else "generated"
    return GeneratedModule(source, name)
