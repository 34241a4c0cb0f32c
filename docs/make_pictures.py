"""Remake the README's pictures in docs/ (needs pdflatex, xelatex, pdftoppm and Pillow):

    python docs/make_pictures.py

mnist-page3.png and mnist-zh-page3.png: page 3 of the MNIST derivation's PDF, English and
Chinese; mnist-diagram.png: its TikZ network diagram, cropped. The gradient-norm plot is
made by examples/vanishing_gradients.py -o docs/vanishing-gradients.png.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

import derivgen
from derivgen import diagram, pdf
from derivgen.render import _Latex

HERE = Path(__file__).resolve().parent
SPEC, LOSS = "784-128:relu-10:softmax", "ce"


def page(pdf_path: Path, number: int, png: Path, dpi: int = 110) -> None:
    stem = png.with_suffix("")
    subprocess.run(["pdftoppm", "-png", "-singlefile", "-r", str(dpi), "-f", str(number), "-l", str(number),
                    str(pdf_path), str(stem)], check=True)


def cropped(png: Path, margin: int = 12) -> None:
    image = Image.open(png).convert("RGB")
    box = ImageChops.difference(image, Image.new("RGB", image.size, "white")).getbbox()
    left, top, right, bottom = box
    image.crop((max(left - margin, 0), max(top - margin, 0), min(right + margin, image.width),
                min(bottom + margin, image.height))).save(png, optimize=True)


def main() -> None:
    document = derivgen.derive(SPEC, loss=LOSS)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for lang, name in (("en", "mnist-page3.png"), ("zh", "mnist-zh-page3.png")):
            document.to_pdf(folder / f"{lang}.pdf", lang=lang)
            page(folder / f"{lang}.pdf", 3, HERE / name)
        tex = "\n".join([r"\documentclass{article}", r"\usepackage{amsmath}", r"\usepackage{amssymb}",
                         diagram.TIKZ_PREAMBLE, r"\pagestyle{empty}", r"\begin{document}",
                         diagram.tikz(document.spec, "en", _Latex().code), r"\end{document}", ""])
        (folder / "diagram.pdf").write_bytes(pdf.build(tex, "pdflatex"))
        page(folder / "diagram.pdf", 1, HERE / "mnist-diagram.png", dpi=200)
        cropped(HERE / "mnist-diagram.png")
    print("wrote", ", ".join(str(HERE / name) for name in ("mnist-page3.png", "mnist-zh-page3.png",
                                                           "mnist-diagram.png")), file=sys.stderr)


if __name__ == "__main__":
    main()
