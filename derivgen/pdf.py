"""A LaTeX document built into a PDF: latexmk when installed, else the engine run twice
(so that equation references resolve), in a temporary folder that is removed after."""

import os
import re
import shutil
import subprocess
import tempfile

from .errors import DerivgenError

# What to install (Debian, Ubuntu) for each engine, with everything the documents load.
INSTALL = {
    "pdflatex": "apt-get install texlive-latex-base texlive-latex-recommended texlive-pictures",
    "xelatex": "apt-get install texlive-xetex texlive-lang-chinese texlive-pictures texlive-fonts-recommended",
}
TIMEOUT = 300  # seconds for the whole build


def require(engine: str) -> str:
    """The engine's path, or a DerivgenError saying what to install."""
    path = shutil.which(engine)
    if path is None:
        raise DerivgenError(f"building a PDF needs {engine}, which is not installed; install it with: "
                            f"{INSTALL[engine]}")
    return path


def _first_error(log: str) -> str:
    missing = re.search(r"File `([^']+)' not found", log)
    if missing:
        return f"the LaTeX package file {missing[1]} is missing"
    for line in log.splitlines():
        if line.startswith("!"):
            return line[1:].strip()
    return "see its log for the reason"


# A comment after %%EOF (readers ignore it) that tells `-o` the file is derivgen's to replace.
MARK = b"%derivgen\n"


def build(tex: str, engine: str) -> bytes:
    """The PDF of a complete LaTeX document, compiled with `engine` (pdflatex, xelatex)."""
    program = require(engine)
    latexmk = shutil.which("latexmk")
    flags = ["-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape"]
    if latexmk:
        mode = "-xelatex" if engine == "xelatex" else "-pdf"
        runs = [[latexmk, mode, "-quiet", *flags, "doc.tex"]]
    else:
        runs = [[program, *flags, "doc.tex"]] * 2
    with tempfile.TemporaryDirectory(prefix="derivgen-pdf-") as folder:
        with open(os.path.join(folder, "doc.tex"), "w", encoding="utf-8") as handle:
            handle.write(tex)
        for command in runs:
            try:
                result = subprocess.run(command, cwd=folder, stdin=subprocess.DEVNULL, capture_output=True,
                                        timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                raise DerivgenError(f"{engine} did not finish within {TIMEOUT} s") from None
            if result.returncode != 0:
                try:
                    with open(os.path.join(folder, "doc.log"), encoding="utf-8", errors="replace") as handle:
                        log = handle.read()
                except OSError:
                    log = result.stdout.decode(errors="replace")
                reason = _first_error(log)
                hint = f"; install what is missing with: {INSTALL[engine]}" if "missing" in reason else ""
                raise DerivgenError(f"{engine} could not build the PDF: {reason}{hint}")
        try:
            with open(os.path.join(folder, "doc.pdf"), "rb") as handle:
                return handle.read() + MARK
        except OSError:
            raise DerivgenError(f"{engine} wrote no PDF") from None
