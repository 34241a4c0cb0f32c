"""The network as a diagram: TikZ in LaTeX, Mermaid in Markdown and MyST.

Both show the input, one box per layer (width, activation, forward formula) and the loss;
the activations a^(l) flowing forward, the error signal delta^(l) flowing back into each
layer, and the weight and bias gradients it gives there, with the symbols and the tags of
the equations that compute them. TikZ draws one column: forward arrows down its left
side, backward arrows up its right side, gradients beside each layer. Mermaid, whose
layout cannot be placed by hand, draws the forward pass down one column and the backward
pass up a second one. A run of identical hidden layers is one box ("x 20"); a network
with more boxes than fit shows the first and last ones and elides the middle.
"""

from dataclasses import dataclass

from . import naming as nm
from .messages import message

RUN = 3  # this many identical hidden layers in a row or more are drawn as one box
MOST_BLOCKS = 8  # layer boxes at most; beyond, the middle is elided


@dataclass(frozen=True)
class Block:
    """Layers first..last drawn as one box: one layer, a run of identical layers, or an
    elided stretch (units and activation None)."""

    first: int
    last: int
    units: int | None
    activation: str | None

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @property
    def elided(self) -> bool:
        return self.units is None


def blocks(spec) -> list[Block]:
    """The boxes of the diagram; the output layer is always a box of its own."""
    hidden: list[Block] = []
    for l, layer in enumerate(spec.layers[:-1], start=1):
        key = (layer.units, layer.activation.name)
        if hidden and (hidden[-1].units, hidden[-1].activation) == key:
            hidden[-1] = Block(hidden[-1].first, l, *key)
        else:
            hidden.append(Block(l, l, *key))
    out: list[Block] = []
    for block in hidden:
        if block.count >= RUN:
            out.append(block)
        else:
            out.extend(Block(l, l, block.units, block.activation) for l in range(block.first, block.last + 1))
    if len(out) + 1 > MOST_BLOCKS:
        keep = (MOST_BLOCKS - 2) // 2
        head, tail = out[:keep], out[len(out) - keep:]
        out = head + [Block(head[-1].last + 1, tail[0].first - 1, None, None)] + tail
    output = spec.layers[-1]
    return out + [Block(spec.depth, spec.depth, output.units, output.activation.name)]


# ---------------------------------------------------------------- notations

class _TeX:
    """Symbols as in the equations (LaTeX maths)."""

    def math(self, s: str) -> str:
        return f"${s}$"

    def vec(self, name: str, layer) -> str:
        base = r"\boldsymbol{\delta}" if name == "delta" else rf"\mathbf{{{name}}}"
        return f"{base}^{{({layer})}}"

    def mat(self, name: str, layer) -> str:
        return f"{name}^{{({layer})}}"

    def transpose(self, s: str) -> str:
        return rf"({s})^{{\top}}"

    def act(self, name: str) -> str:
        return r"\mathrm{" + name.replace("_", r"\_") + "}"

    def grad(self, of: str) -> str:
        return rf"\partial \ell / \partial {of}"

    def reals(self, n: int) -> str:
        return rf"\mathbb{{R}}^{{{n}}}"

    ell, x, y, yhat, dots, vdots = r"\ell", r"\mathbf{x}", r"\mathbf{y}", r"\hat{\mathbf{y}}", r"\dots", r"\vdots"
    eq, plus, isin, mul = " = ", " + ", r" \in ", " "


_SUP = str.maketrans("0123456789()-+lLT", "⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾⁻⁺ˡᴸᵀ")


class _Unicode:
    """The same symbols in plain Unicode, for Mermaid labels (no maths there)."""

    def math(self, s: str) -> str:
        return s

    def vec(self, name: str, layer) -> str:
        return ("δ" if name == "delta" else name) + f"({layer})".translate(_SUP)

    mat = vec

    def transpose(self, s: str) -> str:
        return s + "ᵀ"

    def act(self, name: str) -> str:
        return name

    def grad(self, of: str) -> str:
        return f"∂ℓ/∂{of}"

    def reals(self, n: int) -> str:
        return "ℝ" + str(n).translate(_SUP)

    ell, x, y, yhat, dots, vdots = "ℓ", "x", "y", "ŷ", "…", "⋮"
    eq, plus, isin, mul = " = ", " + ", " ∈ ", ""


# ---------------------------------------------------------------- what the boxes say

@dataclass(frozen=True)
class _Box:
    title: str  # what the layer box says: layers, width, activation
    name: str  # the layers alone ("layer 2", "layers 1-20")
    formula: str  # maths, or ""
    down: str  # label of the forward arrow that leaves the box
    delta: str  # the error signal of the block, maths
    delta_tag: str  # the equation that gives it
    up: str  # label of the backward arrow that enters the box (from below), maths
    up_tag: str
    passed: str  # what goes on to the block above: (W^(l))^T delta^(l), maths
    gradients: tuple[tuple[str, str], ...]  # (maths, tag)
    gradients_for: str  # text after the gradients ("for l = 1, ..., 20") or ""


def _boxes(spec, lang: str, s, code) -> tuple[str, list[_Box], str]:
    L = spec.depth
    x = s.math(f"{s.x}{s.eq}{s.vec('a', 0)}{s.isin}{s.reals(spec.input)}")
    input_text = message(lang, "diagram_input", x=x)
    boxes = []
    for block in blocks(spec):
        single = block.count == 1
        l = block.first if single else "l"
        prev = block.first - 1 if single else "l-1"
        if single:
            name = message(lang, "diagram_layer_name", l=block.first)
        else:
            name = message(lang, "diagram_elided", first=block.first, last=block.last)
        if block.elided:
            title, formula = name, s.vdots
        else:
            units = (message(lang, "diagram_one_unit") if block.units == 1
                     else message(lang, "diagram_units", n=f"{block.units:,}"))
            fields = {"units": units, "activation": code(block.activation)}
            if single:
                title = message(lang, "diagram_layer", l=block.first, **fields)
            else:
                title = message(lang, "diagram_layers", first=block.first, last=block.last, count=block.count,
                                **fields)
            formula = (f"{s.vec('a', l)}{s.eq}{s.act(block.activation)}"
                       f"({s.mat('W', l)}{s.mul}{s.vec('a', prev)}{s.plus}{s.vec('b', l)})")
        output = block.last == L
        down = s.yhat + s.eq + s.vec("a", L) if output else s.vec("a", block.last)
        up_tag = nm.EQ_OUTPUT_DELTA if output else nm.eq_delta(block.last)
        delta_tag = up_tag if single else nm.EQ_HIDDEN_DELTA
        passed = f"{s.transpose(s.mat('W', block.first))}{s.vec('delta', block.first)}"
        grad_w = f"{s.grad(s.mat('W', l))}{s.eq}{s.vec('delta', l)}{s.mul}{s.transpose(s.vec('a', prev))}"
        grad_b = f"{s.grad(s.vec('b', l))}{s.eq}{s.vec('delta', l)}"
        if single:
            gradients = ((grad_w, nm.eq_grad_w(block.first)), (grad_b, nm.eq_grad_b(block.first)))
            gradients_for = ""
        else:
            gradients = ((grad_w, nm.EQ_GRAD_W), (grad_b, nm.EQ_GRAD_B))
            gradients_for = message(lang, "diagram_for_layers",
                                    range=s.math(f"l = {block.first}, {s.dots}, {block.last}"))
        boxes.append(_Box(title, name, formula, down, s.vec("delta", l), delta_tag, s.vec("delta", block.last),
                          up_tag, passed, gradients, gradients_for))
    loss_text = message(lang, "diagram_loss", ell=s.math(s.ell), name=code(spec.loss.name), y=s.math(s.y))
    return input_text, boxes, loss_text


# ---------------------------------------------------------------- TikZ

def _tikz_tag(label: str) -> str:
    """An equation tag beside a symbol, small and grey."""
    escaped = label.replace("_", r"\_")
    return rf"{{\scriptsize\color{{black!65}}({escaped})}}"


TIKZ_PREAMBLE = r"\usepackage{tikz}" + "\n" + r"\usetikzlibrary{arrows.meta,positioning}"


def tikz(spec, lang: str, code) -> str:
    """A tikzpicture (needs TIKZ_PREAMBLE); `code` sets a name in typewriter type."""
    s = _TeX()
    input_text, boxes, loss_text = _boxes(spec, lang, s, code)
    lines = [
        r"\begin{tikzpicture}[font=\small, node distance=7mm and 7mm,",
        r"    box/.style={draw, rounded corners=2pt, align=center, inner sep=4pt, minimum width=60mm},",
        r"    layer/.style={box, fill=blue!5}, end/.style={box, fill=black!4},",
        r"    forward/.style={-{Stealth}, thick},",
        r"    backward/.style={-{Stealth}, thick, dashed, red!60!black},",
        r"    gradient/.style={align=left, anchor=west, text=red!50!black}]",
        rf"\node[end] (n0) {{{input_text}}};",
    ]
    for index, box in enumerate(boxes, start=1):
        text = box.title + (r"\\[1pt] " + s.math(box.formula) if box.formula else "")
        lines.append(rf"\node[layer, below=of n{index - 1}] (n{index}) {{{text}}};")
    last = len(boxes) + 1
    lines.append(rf"\node[end, below=of n{last - 1}] (n{last}) {{{loss_text}}};")
    labels = [s.vec("a", 0)] + [box.down for box in boxes]
    for index, label in enumerate(labels):
        lines.append(rf"\draw[forward] ([xshift=-14mm]n{index}.south) -- node[left] {{{s.math(label)}}} "
                     rf"([xshift=-14mm]n{index + 1}.north);")
    for index, box in enumerate(boxes, start=1):
        tag = _tikz_tag(box.up_tag)
        lines.append(rf"\draw[backward] ([xshift=14mm]n{index + 1}.north) -- node[right] "
                     rf"{{{s.math(box.up)}~{tag}}} ([xshift=14mm]n{index}.south);")
        rows = [f"{s.math(maths)}~{_tikz_tag(label)}" for maths, label in box.gradients]
        if box.gradients_for:
            rows.append(box.gradients_for)
        body = r" \\ ".join(rows)
        lines.append(rf"\node[gradient, right=7mm of n{index}] (g{index}) {{{body}}};")
        lines.append(rf"\draw[backward, dotted] (n{index}.east) -- (g{index}.west);")
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


# ---------------------------------------------------------------- Mermaid

def _quoted(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def mermaid(spec, lang: str) -> str:
    """A Mermaid flowchart (the lines inside the ```mermaid fence): the forward pass down
    the left column, the backward pass up the right one."""
    s = _Unicode()
    input_text, boxes, loss_text = _boxes(spec, lang, s, lambda name: name)
    last = len(boxes) + 1
    lines = ['%%{init: {"flowchart": {"wrappingWidth": 500}}}%%', "flowchart LR",
             f"    subgraph forward[{_quoted(message(lang, 'diagram_forward'))}]", "        direction TB",
             f"        n0([{_quoted(input_text)}])"]
    for index, box in enumerate(boxes, start=1):
        text = box.title + (f"<br/>{box.formula}" if box.formula else "")
        lines.append(f"        n{index}[{_quoted(text)}]")
    lines.append(f"        n{last}([{_quoted(loss_text)}])")
    labels = [s.vec("a", 0)] + [box.down for box in boxes]
    for index, label in enumerate(labels):
        lines.append(f"        n{index} -->|{_quoted(label)}| n{index + 1}")
    lines += ["    end", f"    subgraph backward[{_quoted(message(lang, 'diagram_backward'))}]", "        direction BT"]
    for index, box in reversed(list(enumerate(boxes, start=1))):
        title = message(lang, "diagram_backward_box", layers=box.name, delta=f"{box.delta} ({box.delta_tag})")
        rows = [title] + [f"{maths} ({label})" for maths, label in box.gradients]
        if box.gradients_for:
            rows.append(box.gradients_for)
        lines.append(f"        d{index}[{_quoted('<br/>'.join(rows))}]")
    for index in range(len(boxes), 1, -1):
        lines.append(f"        d{index} -.->|{_quoted(boxes[index - 1].passed)}| d{index - 1}")
    lines += ["    end", "    forward -.-> backward",
              "    classDef back fill:#fff5f5,stroke:#b55,color:#622",
              "    class " + ",".join(f"d{index}" for index in range(1, len(boxes) + 1)) + " back"]
    return "\n".join(lines)
