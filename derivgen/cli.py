"""The command line: the only place that reads arguments and writes files."""

import contextlib
import os
import shlex
import signal
import sys
import tempfile
import threading

import click

from . import __version__, catalog, spec as spec_module
from .errors import DerivgenError
from .stamp import untouched

FORMATS = ("latex", "markdown")
DOCUMENT_FORMATS = ("latex", "markdown", "myst")  # derive's; see render.FORMATS
LANGUAGES = ("en", "zh")  # see messages.LANGUAGES
TIME_LIMIT = float(os.environ.get("DERIVGEN_TIME_LIMIT", "60"))  # seconds for one command


@contextlib.contextmanager
def time_limit(seconds: float):
    """Stop a derivation that runs too long (a pathological formula) with a clear error.
    Uses SIGALRM, so only in the main thread of a Unix process; elsewhere no limit."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise DerivgenError(f"the derivation took longer than {seconds:g} s and was stopped; "
                            "simplify the formula (or set DERIVGEN_TIME_LIMIT)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fail(message: str, code: int = 2):
    # one line, whatever the message (an imported module's exception may span several)
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    click.echo(f"derivgen: error: {message}", err=True)
    sys.exit(code)


def _file_mode(path: str) -> int:
    """An existing file keeps its permissions; a new one gets 0666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def written_by_us(content: bytes) -> bool:
    """A text file derivgen wrote and nobody edited, or a PDF it built (pdfcreator tag)."""
    if content.startswith(b"%PDF-"):
        from .pdf import MARK

        return content.endswith(MARK)
    try:
        return untouched(content.decode("utf-8"))
    except UnicodeDecodeError:
        return False


def check_overwrite(path: str, force: bool) -> None:
    """Refuse to replace a file derivgen did not write, or one edited since it wrote it."""
    if force or not os.path.lexists(path):
        return
    if os.path.isdir(path):
        raise DerivgenError(f"cannot write {path!r}: it is a folder")
    try:
        with open(path, "rb") as handle:
            current = handle.read()
    except OSError:
        current = None
    if current is None or not written_by_us(current):
        raise DerivgenError(f"refusing to overwrite {path!r}: derivgen did not write it, or it was edited "
                            "since; use --force to replace it")


def write_atomic(path: str, text: str | bytes) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file.
    Text is written as UTF-8 with \\n line ends; bytes as they are."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DerivgenError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".derivgen-", suffix=".tmp")
    except OSError as exc:
        raise DerivgenError(f"cannot write {path!r}: {exc.strerror}") from None
    try:
        if isinstance(text, bytes):
            with os.fdopen(handle, "wb") as out:
                out.write(text)
        else:
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
        os.chmod(temporary, _file_mode(path))  # mkstemp makes 0600; give what open() would
        os.replace(temporary, path)
    except OSError as exc:
        os.unlink(temporary)
        raise DerivgenError(f"cannot write {path!r}: {exc.strerror}") from None
    except BaseException:
        os.unlink(temporary)
        raise


def _definitions(kind: str, items: tuple[str, ...]) -> dict:
    pairs = {}
    for item in items:
        name, sep, formula = item.partition("=")
        if not sep or not name.strip() or not formula.strip():
            raise DerivgenError(f"--{'activation' if kind == 'activation' else 'loss-def'} takes NAME=EXPR, got {item!r}")
        pairs[name.strip()] = formula
    return spec_module.custom_definitions(kind, pairs)


def load_spec(spec: str, loss, activation_defs, loss_defs, l2=None):
    return spec_module.load(spec, loss, _definitions("activation", activation_defs),
                            _definitions("loss", loss_defs), l2)


def command_line(name: str, spec, args: list[str]) -> str:
    """The command line that reproduces an output, for its header."""
    words = ["derivgen", name, spec.source] + args
    if spec.loss_was_given:
        words += ["--loss", spec.loss.name]
    if spec.l2:
        words += ["--l2", repr(spec.l2)]
    return shlex.join(words)


def _emit(text, output: str | None, force: bool = False) -> None:
    """Text to stdout, or to the file `output` (text or PDF bytes), which derivgen replaces
    only if it wrote it and nobody edited it since, unless force."""
    if output:
        check_overwrite(output, force)
        write_atomic(output, text)
    else:
        click.echo(text, nl=False)


def spec_options(function):
    """SPEC, --loss and the custom definitions, shared by the commands that take a network."""
    function = click.option("--loss-def", "loss_defs", multiple=True, metavar="NAME=EXPR",
                            help="A custom loss: a per-unit formula in a and y (repeatable).")(function)
    function = click.option("--activation", "activation_defs", multiple=True, metavar="NAME=EXPR",
                            help="A custom activation: a formula in x (repeatable).")(function)
    function = click.option("--loss", default=None, help="Loss name (overrides a TOML file's).")(function)
    return click.argument("spec")(function)


class Group(click.Group):
    """Turns every DerivgenError into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            with time_limit(TIME_LIMIT):
                return super().invoke(ctx)
        except DerivgenError as exc:
            fail(str(exc))
        except RecursionError:
            fail("the input is nested too deeply to process")
        except MemoryError:
            fail("the input needs more memory than this machine has; simplify it")
        except click.UsageError as exc:  # a bad option or value: one line, like every other error
            fail(exc.format_message())


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="derivgen")
def main():
    """derivgen: backpropagation derived by SymPy, written as documents and as NumPy code.

    SPEC is inline, as 784-128:relu-10:softmax (the input width, then width:activation
    per layer), or the path of a TOML file.
    """


@main.command()
@spec_options
@click.option("--format", "fmt", type=click.Choice(DOCUMENT_FORMATS), default="latex", show_default=True,
              help="latex, markdown (GitHub, Obsidian, KaTeX, MathJax) or myst (Jupyter Book).")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True,
              help="The language of the document: en (English) or zh (Chinese; LaTeX for xelatex).")
@click.option("--pdf", is_flag=True, help="Build the LaTeX into a PDF (pdflatex, or xelatex for zh); needs -o FILE.pdf.")
@click.option("--l2", type=float, default=None, help="L2 weight decay: adds (l2/2) sum ||W||^2 to the loss.")
@click.option("-o", "--output", default=None, help="Write to FILE instead of stdout.")
@click.option("--force", is_flag=True, help="Overwrite FILE even if derivgen did not write it or it was edited.")
def derive(spec, loss, activation_defs, loss_defs, fmt, lang, pdf, l2, output, force):
    """Write the derivation of SPEC's backpropagation as LaTeX, Markdown, MyST or a PDF."""
    from .derive import derive as run
    from .render import LATEX_ENGINE, render

    if pdf:
        from . import pdf as pdf_module

        if fmt != "latex":
            raise DerivgenError("--pdf builds the LaTeX document; leave out --format (or give --format latex)")
        if not output:
            raise DerivgenError("--pdf needs -o FILE.pdf, the file to write")
        pdf_module.require(LATEX_ENGINE[lang])  # before the derivation: fail fast
    network = load_spec(spec, loss, activation_defs, loss_defs, l2)
    text = render(run(network), fmt, lang)
    _emit(pdf_module.build(text, LATEX_ENGINE[lang]) if pdf else text, output, force)


@main.command()
@spec_options
@click.option("--l2", type=float, default=None, help="L2 weight decay: adds (l2/2) sum ||W||^2 to the loss.")
@click.option("-o", "--output", default=None, help="Write the module to FILE instead of stdout.")
@click.option("--check", is_flag=True, help="Exit 0 if FILE is exactly what would be generated, 1 if not; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite FILE even if derivgen did not write it or it was edited.")
def generate(spec, loss, activation_defs, loss_defs, l2, output, check, force):
    """Write a standalone NumPy module with forward and backward for SPEC."""
    from .codegen import generate as run
    from .derive import derive

    network = load_spec(spec, loss, activation_defs, loss_defs, l2)
    extra = [f"--activation={d}" for d in activation_defs] + [f"--loss-def={d}" for d in loss_defs]
    text = run(derive(network), command_line("generate", network, extra))
    if check:
        if not output:
            raise DerivgenError("--check needs -o FILE, the file to compare")
        try:
            with open(output, encoding="utf-8", newline="") as handle:
                current = handle.read()
        except OSError:
            current = None
        if current != text:
            click.echo(f"{output} is not what derivgen would generate now", err=True)
            sys.exit(1)
        click.echo(f"{output} is current")
        return
    _emit(text, output, force)


@main.command()
@spec_options
@click.option("--x", "x", required=True, metavar="NUMBERS", help="The input, comma-separated, as 0.05,0.10.")
@click.option("--y", "y", required=True, metavar="NUMBERS", help="The target, comma-separated, as 0.01,0.99.")
@click.option("--params", "params_file", default=None, metavar="FILE.json",
              help='Parameters {"W1": [[...], ...], "b1": [...], ...}; W1[i][j] is the weight from unit j '
                   "of the layer below to unit i. Default: random, from --seed.")
@click.option("--seed", default=None, metavar="N", help="Seed of the random parameters (no --params).  [default: 0]")
@click.option("--lr", default="0.5", show_default=True, metavar="RATE", help="Learning rate of the step.")
@click.option("--digits", default="6", show_default=True, metavar="N", help="Significant digits shown (1 to 15).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="latex", show_default=True)
@click.option("-o", "--output", default=None, help="Write to FILE instead of stdout.")
@click.option("--force", is_flag=True, help="Overwrite FILE even if derivgen did not write it or it was edited.")
def example(spec, loss, activation_defs, loss_defs, x, y, params_file, seed, lr, digits, fmt, output, force):
    """A worked example with numbers: one sample through one step of gradient descent."""
    from .derive import derive
    from .worked import check_size, example_document

    network = load_spec(spec, loss, activation_defs, loss_defs)
    check_size(network.sizes)
    extra = [f"--activation={d}" for d in activation_defs] + [f"--loss-def={d}" for d in loss_defs]
    extra += [f"--x={x}", f"--y={y}"] + (["--params", params_file] if params_file else [])
    extra += ([f"--seed={seed}"] if seed is not None else []) + [f"--lr={lr}", f"--digits={digits}"]
    command = command_line("example", network, extra)
    _emit(example_document(derive(network), x, y, params_file, seed, lr, digits, fmt, command), output, force)


@main.command()
@click.argument("module", type=click.Path(dir_okay=False))
@click.option("--tolerance", default=1e-6, show_default=True, help="Largest relative error accepted.")
@click.option("--batches", default=3, show_default=True, help="Random batches to check.")
@click.option("--seed", default=0, show_default=True)
def verify(module, tolerance, batches, seed):
    """Check a generated module's gradients against central finite differences."""
    from .verify import verify_module

    report, worst = verify_module(module, batches=batches, seed=seed)
    for name, error in report.items():
        click.echo(f"{name:>6}  {error:.3e}")
    verdict = "ok" if worst <= tolerance else "FAILED"
    click.echo(f"largest relative error {worst:.3e} (tolerance {tolerance:.0e}): {verdict}")
    if worst > tolerance:
        sys.exit(1)


@main.command(name="list")
def list_():
    """The built-in activations and losses, with their formulas."""
    for kind, name, formula, aliases in catalog.listing():
        also = f"  (also: {', '.join(aliases)})" if aliases else ""
        click.echo(f"{kind:<10} {name:<11} {formula}{also}")


if __name__ == "__main__":
    main()
