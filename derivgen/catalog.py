"""Built-in activations and losses: forward definitions only, as formulas.

Every entry is a formula in the same language users write (see formula.py) and goes
through the same parser and engine as a user's own definition: there is one way in.
An activation is a formula in x; a loss is a per-output-unit formula in a (prediction)
and y (target), summed over the output units and averaged over the batch.
Softmax is the one vector activation: a_k = exp(z_k) / sum_j exp(z_j).
Nothing here is a derivative: the engine derives those.
"""

import functools
import re
from dataclasses import dataclass, field

import sympy as sp

from . import naming
from .errors import DerivgenError
from .formula import FormulaError, parse_formula

SOFTMAX = "softmax"


@dataclass(frozen=True)
class Definition:
    """A named activation or loss: its formula text and the SymPy expression it parses to."""

    kind: str  # "activation" or "loss"
    name: str
    formula: str  # the text; for softmax a description only
    expr: sp.Expr | None = field(compare=False, default=None)  # None only for softmax
    builtin: bool = True

    @property
    def is_softmax(self) -> bool:
        return self.kind == "activation" and self.expr is None


# name: (formula, aliases)
ACTIVATIONS = {
    "identity": ("x", ("linear", "none")),
    "sigmoid": ("1/(1 + exp(-x))", ("logistic",)),
    "tanh": ("tanh(x)", ()),
    "relu": ("max(0, x)", ()),
    "leaky_relu": ("where(x > 0, x, 0.01*x)", ("lrelu", "leakyrelu")),
    "elu": ("where(x > 0, x, exp(x) - 1)", ()),
    "softplus": ("log(1 + exp(x))", ()),
    "swish": ("x/(1 + exp(-x))", ("silu",)),
    "gelu": ("x*(1 + erf(x/sqrt(2)))/2", ()),
    SOFTMAX: ("exp(z_k) / sum_j exp(z_j)", ()),
}
LOSSES = {
    "mse": ("(a - y)**2/2", ("squared_error", "l2", "sse")),
    "bce": ("-(y*log(a) + (1 - y)*log(1 - a))", ("binary_cross_entropy", "logloss", "log_loss")),
    "ce": ("-y*log(a)", ("cross_entropy", "categorical_cross_entropy", "nll")),
}
# The loss used when none is given, by output activation (a convention, not a result).
DEFAULT_LOSS = {SOFTMAX: "ce", "sigmoid": "bce"}
FALLBACK_LOSS = "mse"

ACTIVATION_VARIABLES = {"x": naming.X}
LOSS_VARIABLES = {"a": naming.A, "y": naming.Y}
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _aliases(table: dict) -> dict[str, str]:
    out = {name: name for name in table}
    for name, (_, aliases) in table.items():
        out.update((alias, name) for alias in aliases)
    return out


_ACTIVATION_ALIASES = _aliases(ACTIVATIONS)
_LOSS_ALIASES = _aliases(LOSSES)


def normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def parse_definition(kind: str, name: str, formula: str, builtin: bool = False) -> Definition:
    """Parse a formula into a Definition; user errors become DerivgenError."""
    variables = ACTIVATION_VARIABLES if kind == "activation" else LOSS_VARIABLES
    if builtin and name == SOFTMAX:
        return Definition(kind, name, formula, None, True)
    try:
        expr = parse_formula(formula, variables)
    except FormulaError as exc:
        raise DerivgenError(f"{kind} '{name}': {exc}") from None
    missing = [v for v in variables if variables[v] not in expr.free_symbols]
    if kind == "activation" and missing:
        raise DerivgenError(f"activation '{name}': the formula must use x")
    if kind == "loss" and naming.A not in expr.free_symbols:
        raise DerivgenError(f"loss '{name}': the formula must use a (the prediction)")
    return Definition(kind, name, formula, expr, builtin)


@functools.cache
def _builtin(kind: str, name: str) -> Definition:
    table = ACTIVATIONS if kind == "activation" else LOSSES
    return parse_definition(kind, name, table[name][0], builtin=True)


def check_custom_name(kind: str, name: str) -> str:
    """A custom definition's name: a short identifier that does not shadow a built-in."""
    key = normalise(name)
    if not NAME_PATTERN.fullmatch(key):
        raise DerivgenError(
            f"{kind} name {name!r} is not allowed: use a lower-case identifier "
            "(letters, digits, underscores; at most 32 characters)"
        )
    if key in (_ACTIVATION_ALIASES if kind == "activation" else _LOSS_ALIASES):
        raise DerivgenError(f"{kind} name '{key}' is built in; choose another name")
    return key


def lookup(kind: str, name: str, custom: dict[str, Definition] | None = None) -> Definition:
    """Resolve a name (built-in, alias or custom) to its Definition."""
    key = normalise(name)
    custom = custom or {}
    if key in custom:
        return custom[key]
    aliases = _ACTIVATION_ALIASES if kind == "activation" else _LOSS_ALIASES
    if key not in aliases:
        known = ", ".join(sorted(set(aliases.values()) | set(custom)))
        raise DerivgenError(f"unknown {kind} {name!r}; known: {known}")
    return _builtin(kind, aliases[key])


def default_loss(output_activation: str) -> str:
    return DEFAULT_LOSS.get(output_activation, FALLBACK_LOSS)


def listing() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(kind, name, formula, aliases) for every built-in, for `derivgen list`."""
    return [("activation", name, f, al) for name, (f, al) in ACTIVATIONS.items()] + [
        ("loss", name, f, al) for name, (f, al) in LOSSES.items()
    ]
