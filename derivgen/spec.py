"""Network specifications: inline text (`784-128:relu-10:softmax`) or a TOML file.

Parsing validates everything a user can get wrong and raises DerivgenError with one
clear line; what comes out is a frozen NetworkSpec whose names are all resolved.
"""

import os
import tomllib
from dataclasses import dataclass

from . import catalog
from .catalog import Definition
from .errors import DerivgenError

# Limits (issue 7). Nothing derivgen does depends on widths: a 1,000,000-wide network derives
# and generates as fast as a 2-wide one, and the width limit only keeps sizes sane. Cost grows
# linearly with depth: at MAX_LAYERS, `generate` takes about 5 s and writes ~0.6 MB of code,
# `derive` ~1.2 MB of LaTeX (2-core machine, a mix of built-in and custom activations).
MAX_LAYERS = 1000
MAX_WIDTH = 1_000_000
MAX_SPEC_LENGTH = 20_000
MAX_SPEC_FILE_BYTES = MAX_SPEC_LENGTH * 50


@dataclass(frozen=True)
class Layer:
    units: int
    activation: Definition


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    input: int
    layers: tuple[Layer, ...]
    loss: Definition
    loss_was_given: bool  # False when the loss followed the output activation
    source: str  # the spec as the user gave it (inline text or file name)
    l2: float = 0.0  # L2 weight decay lambda: (lambda/2) sum ||W||^2 is added to the loss

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.input,) + tuple(layer.units for layer in self.layers)

    @property
    def depth(self) -> int:
        return len(self.layers)


def _width(text, where: str) -> int:
    """A width from inline text (a digit string) or from TOML (an integer, never a string)."""
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise DerivgenError(f"{where}: width must be a positive integer, got {text!r}")
    if isinstance(text, str):
        text = text.strip()
        if not text.isascii() or not text.isdigit():
            raise DerivgenError(f"{where}: width must be a positive integer, got {text!r}")
        digits = text.lstrip("0") or "0"
        if len(digits) > len(str(MAX_WIDTH)):  # before int(), which refuses over 4300 digits
            raise DerivgenError(f"{where}: width must be between 1 and {MAX_WIDTH}, got a {len(digits)}-digit number")
        text = int(digits)
    if not 1 <= text <= MAX_WIDTH:
        raise DerivgenError(f"{where}: width must be between 1 and {MAX_WIDTH}, got {text}")
    return text


MAX_L2 = 1e3


def _l2(value, where: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_L2:
        raise DerivgenError(f"{where}: the L2 weight decay must be a number from 0 to {MAX_L2:g}, got {value!r}")
    return float(value)


def custom_definitions(kind: str, items: dict[str, str]) -> dict[str, Definition]:
    """Parse user definitions {name: formula} of one kind."""
    out = {}
    for name, formula in items.items():
        key = catalog.check_custom_name(kind, name)
        if key in out:
            raise DerivgenError(f"{kind} '{key}' is defined twice")
        out[key] = catalog.parse_definition(kind, key, formula)
    return out


def _build(name, input_width, layer_items, loss_name, activations, losses, source, l2=0.0) -> NetworkSpec:
    if not layer_items:
        raise DerivgenError("the spec has no layers: give at least one 'width:activation' after the input width")
    if len(layer_items) > MAX_LAYERS:
        raise DerivgenError(f"the spec has {len(layer_items)} layers; derivgen supports at most {MAX_LAYERS}, "
                            "which keeps derive and generate to seconds and their files to about a megabyte")
    layers = []
    for number, (units, act_name) in enumerate(layer_items, start=1):
        where = f"layer {number}"
        units = _width(units, where)
        if not isinstance(act_name, str):
            raise DerivgenError(f"{where}: the activation must be a name such as \"relu\", got {act_name!r}")
        if not act_name.strip():
            raise DerivgenError(f"{where}: needs an activation, as 'width:activation'")
        activation = catalog.lookup("activation", act_name, activations)
        if activation.is_softmax and number != len(layer_items):
            raise DerivgenError(f"{where}: softmax is allowed only in the output layer")
        layers.append(Layer(units, activation))
    output = layers[-1].activation
    given = loss_name is not None
    loss_key = loss_name if given else catalog.default_loss(output.name)
    if not isinstance(loss_key, str) or not loss_key.strip():
        raise DerivgenError(f"the loss must be a name, got {loss_name!r}")
    loss = catalog.lookup("loss", loss_key, losses)
    return NetworkSpec(name, _width(input_width, "input"), tuple(layers), loss, given, source, l2)


def parse_inline(text: str, loss: str | None = None, activations=None, losses=None, l2=None) -> NetworkSpec:
    """`784-128:relu-10:softmax`: the input width, then `width:activation` per layer."""
    text = text.strip()
    if not text:
        raise DerivgenError("the spec is empty; expected e.g. 784-128:relu-10:softmax")
    if len(text) > MAX_SPEC_LENGTH:
        raise DerivgenError(f"the spec is longer than {MAX_SPEC_LENGTH} characters")
    head, *rest = text.split("-")
    if ":" in head:
        raise DerivgenError(f"the spec must start with the input width, as in 784-128:relu-10:softmax; got {head!r}")
    items = []
    for part in rest:
        number = len(items) + 1
        if not part.strip():
            raise DerivgenError(f"layer {number} is empty (a stray '-'?): widths are positive integers, "
                                "layers are 'width:activation', as in 784-128:relu-10:softmax")
        units, sep, activation = part.partition(":")
        if not sep and items and not part.strip()[0].isdigit():
            # a '-' inside an activation's name, as in 2:leaky-relu
            items[-1] = (items[-1][0], f"{items[-1][1]}-{part}")
            continue
        if not sep:
            raise DerivgenError(f"layer {number}: {part!r} must be 'width:activation', as in 128:relu")
        items.append((units, activation))
    return _build("network", head, items, loss, activations or {}, losses or {}, text, _l2(l2, "--l2"))


LAYER_KEYS = {"units", "activation"}
TOP_KEYS = {"name", "input", "loss", "l2", "layers", "activations", "losses"}


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise DerivgenError(f"{where} must be a table")
    return value


def _formulas(doc: dict, key: str) -> dict[str, str]:
    out = {}
    kind = {"activations": "activation", "losses": "loss"}[key]
    for name, entry in _table(doc.get(key, {}), f"[{key}]").items():
        catalog.check_custom_name(kind, name)  # before the name goes into a message
        entry = _table(entry, f"[{key}.{name}]")
        extra = set(entry) - {"expr"}
        if extra or not isinstance(entry.get("expr"), str):
            raise DerivgenError(f"[{key}.{name}] needs exactly one key, expr = \"formula\"")
        out[name] = entry["expr"]
    return out


def parse_toml_text(text: str, source: str, loss: str | None = None,
                    activations=None, losses=None, l2=None) -> NetworkSpec:
    """A TOML spec (see DESIGN.md); definitions given on the command line are added."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DerivgenError(f"{source}: not valid TOML: {exc}") from None
    except ValueError:  # int() refuses a literal of more than 4300 digits
        raise DerivgenError(f"{source}: a number in the file has too many digits") from None
    except RecursionError:
        raise DerivgenError(f"{source}: arrays or tables nested too deeply") from None
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise DerivgenError(f"{source}: unknown key(s) {', '.join(map(repr, sorted(unknown)))}; "
                            f"allowed: {', '.join(sorted(TOP_KEYS))}")
    name = doc.get("name", "network")
    if not isinstance(name, str) or not name.isascii() or not catalog.NAME_PATTERN.fullmatch(name.lower()):
        raise DerivgenError(f"{source}: name must be a short identifier (letters, digits, underscores), got {name!r}")
    if "input" not in doc:
        raise DerivgenError(f"{source}: missing key 'input' (the input width)")
    layers = doc.get("layers")
    if not isinstance(layers, list) or not layers:
        raise DerivgenError(f"{source}: needs at least one [[layers]] table with units and activation")
    if not isinstance(doc["input"], int) or isinstance(doc["input"], bool):
        raise DerivgenError(f"{source}: input must be a positive integer, got {doc['input']!r}")
    items = []
    for number, layer in enumerate(layers, start=1):
        layer = _table(layer, f"{source}: [[layers]] number {number}")
        if set(layer) != LAYER_KEYS:
            raise DerivgenError(f"{source}: [[layers]] number {number} needs exactly the keys units and activation")
        if not isinstance(layer["units"], int) or isinstance(layer["units"], bool):
            raise DerivgenError(f"{source}: layer {number}: units must be a positive integer, got {layer['units']!r}")
        items.append((layer["units"], layer["activation"]))
    acts = custom_definitions("activation", _formulas(doc, "activations")) | (activations or {})
    loss_defs = custom_definitions("loss", _formulas(doc, "losses")) | (losses or {})
    file_loss = doc.get("loss")
    decay = _l2(l2, "--l2") if l2 is not None else _l2(doc.get("l2"), f"{source}: l2")
    return _build(name, doc["input"], items, loss if loss is not None else file_loss, acts, loss_defs, source, decay)


def load(spec: str, loss: str | None = None, activations=None, losses=None, l2=None) -> NetworkSpec:
    """An inline spec, or the path of a TOML file (anything ending in .toml or naming a file)."""
    if spec.endswith(".toml") or os.path.isfile(spec):
        try:
            with open(spec, "rb") as handle:
                raw = handle.read(MAX_SPEC_FILE_BYTES + 1)
        except OSError as exc:
            raise DerivgenError(f"cannot read spec file {spec!r}: {exc.strerror}") from None
        if len(raw) > MAX_SPEC_FILE_BYTES:  # never parse a silently truncated file
            raise DerivgenError(f"spec file {spec!r} is larger than {MAX_SPEC_FILE_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DerivgenError(f"spec file {spec!r} is not UTF-8 text") from None
        return parse_toml_text(text, _file_name(spec), loss, activations, losses, l2)
    return parse_inline(spec, loss, activations, losses, l2)


def _file_name(path: str) -> str:
    """The spec file's name, which every output quotes as its source (module docstring,
    document comment, the command that regenerates it). A name holding a quote, a backslash
    or a character that is not printable (control, line-breaking, format characters, bytes
    that are not UTF-8) could break out of those places, so it is refused, not escaped."""
    name = os.path.basename(path)
    bad = next((c for c in name if c in '"\\' or not c.isprintable()), None)
    if bad is not None:
        raise DerivgenError(f"spec file name {name!r} contains {bad!r}, which derivgen does not copy into "
                            "the files it writes; rename the file")
    return name
