"""The example networks kept in generated/ (the benchmark workloads of PERFORMANCE.md),
and the one function that regenerates them: `python -m derivgen.examples [FOLDER]`."""

import sys
from pathlib import Path

DEEP = "32-" + "-".join(["64:tanh"] * 20) + "-8:identity"

# file stem: (inline spec, loss)
EXAMPLES = {
    "tiny": ("2-2:sigmoid-1:sigmoid", "mse"),
    "mnist": ("784-128:relu-10:softmax", "ce"),
    "wide": ("784-512:relu-512:relu-10:softmax", "ce"),
    "deep": (DEEP, "mse"),
}
# examples also kept as MyST and in Chinese (Markdown and LaTeX for xelatex)
MORE_DOCUMENTS = ("mnist",)


def outputs(stem: str) -> dict[str, str]:
    """{file name: text} for one example: its module and its documents."""
    from .cli import command_line
    from .codegen import generate
    from .derive import derive
    from .render import render
    from .spec import parse_inline

    text, loss = EXAMPLES[stem]
    network = parse_inline(text, loss)
    derivation = derive(network)
    files = {
        f"{stem}.py": generate(derivation, command_line("generate", network, [])),
        f"{stem}.tex": render(derivation, "latex"),
        f"{stem}.md": render(derivation, "markdown"),
    }
    if stem in MORE_DOCUMENTS:
        files.update({
            f"{stem}.myst.md": render(derivation, "myst"),
            f"{stem}.zh.md": render(derivation, "markdown", "zh"),
            f"{stem}.zh.tex": render(derivation, "latex", "zh"),
        })
    return files


def regenerate(folder: Path) -> list[str]:
    written = []
    for stem in EXAMPLES:
        for name, text in outputs(stem).items():
            (folder / name).write_text(text, encoding="utf-8")
            written.append(name)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "generated")
    print("\n".join(regenerate(target)))
