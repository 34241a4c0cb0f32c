"""A worked example: one sample through one step of gradient descent, with real numbers.

`compute` evaluates the derivation's own expressions at concrete numbers: each layer's
activation (ActivationRule.forward), the per-unit loss (LossRule.per_unit), the output delta
(OutputDelta.result) and each hidden layer's derivative factor (ActivationRule.backward_form).
Sums over units (softmax's normaliser, a sum in an output delta) are written out at the
network's widths. Only the dense layer's linear algebra (W a + b, W^T delta, delta a^T and
the update W - eta dW) is plain arithmetic. Numbers are SymPy Floats carried at PRECISION
decimal digits and rounded to float64 once, at the end; nothing is compiled from text.

`render` lays a WorkedExample out as a LaTeX or Markdown handout, each number beside its
symbol and the tag of the derivation document's equation that produced it. Numbers are
formatted here; the templates (templates/example.*.j2) only loop.
"""

import functools
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import sympy as sp

from . import naming as nm
from .derivation import Derivation
from .errors import DerivgenError
from .printing import latex
from .render import latex_text, math_name
from .stamp import stamp
from .templating import render_template

PRECISION = 30  # decimal digits carried through the computation
MAX_PARAMETERS = 10_000  # a worked example lists every parameter several times
MAX_UNITS = 1_000  # ... and evaluates SymPy expressions for every unit
MAX_DIGITS = 15  # float64 holds about 15-17 significant digits
DEFAULT_DIGITS = 6
DEFAULT_RATE = 0.5
MAX_PARAMS_FILE_BYTES = 10_000_000
FORMATS = ("latex", "markdown")
TEMPLATES = {"latex": "example.tex.j2", "markdown": "example.md.j2"}
SUM_TO_ONE_TOLERANCE = 1e-9

_UNIT_INDICES = frozenset((nm.i, nm.j, nm.k))
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


# ---------------------------------------------------------------- the numbers

@dataclass(frozen=True)
class LayerNumbers:
    """Layer l's numbers; index 0 is unit 1. W[i][j] is the weight from unit j of the layer
    below to unit i of this layer."""

    W: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    z: tuple[float, ...]
    a: tuple[float, ...]
    normaliser: float | None  # the value of the sum in the activation (softmax), else None
    backprop: tuple[float, ...] | None  # ((W^(l+1))^T delta^(l+1))_j; None for the output layer
    slope: tuple[float, ...] | None  # the derivative factor of the activation; None for the output layer
    delta: tuple[float, ...]
    grad_W: tuple[tuple[float, ...], ...]
    grad_b: tuple[float, ...]
    W_after: tuple[tuple[float, ...], ...]
    b_after: tuple[float, ...]
    z_after: tuple[float, ...]
    a_after: tuple[float, ...]


@dataclass(frozen=True)
class WorkedExample:
    """Every number of one sample's forward pass, loss, backward pass, gradient-descent step
    and loss after the step, as float64."""

    sizes: tuple[int, ...]
    x: tuple[float, ...]
    y: tuple[float, ...]
    rate: float
    layers: tuple[LayerNumbers, ...]
    loss_terms: tuple[float, ...]  # the per-unit losses, summed to `loss`
    loss: float
    loss_terms_after: tuple[float, ...]
    loss_after: float
    stable_loss: bool  # a per-unit loss was evaluated through the derivation's form in z


class _NotANumber(Exception):
    def __init__(self, value):
        super().__init__(str(value))
        self.value = value


def _high(value) -> sp.Float:
    """A number (int, float, decimal text, Decimal) as a Float of PRECISION digits; decimal
    text is taken exactly, a float as the binary value it holds."""
    if isinstance(value, Decimal):
        value = str(value)
    return sp.Float(value, PRECISION)


class _Evaluator:
    """Values of derived expressions for the units of one layer. Sums over units are written
    out at the layer's width, each distinct sum once; then the values are substituted and
    the result is evaluated to PRECISION digits."""

    def __init__(self, width: int, indexed: dict):
        self.width = width
        self.indexed = indexed  # {z[t]: Float, a[t]: ..., y[t]: ...}
        self.sums: dict = {}

    def unit(self, expr: sp.Expr, unit: int, scalars: dict) -> sp.Float:
        """expr for unit `unit` (1-based): a free unit index in expr is set to it, the
        scalars (z, a, y of that unit) are substituted."""
        expr = _with_float_constants(expr).xreplace({nm.n: sp.Integer(self.width)})
        free = expr.free_symbols & _UNIT_INDICES
        if free:
            expr = expr.xreplace({index: sp.Integer(unit) for index in free})
        return self._value(self._write_out_sums(expr, scalars), scalars)

    def _value(self, expr: sp.Expr, scalars: dict) -> sp.Float:
        values = dict(scalars)
        if expr.has(sp.Indexed):
            values.update(self.indexed)
        result = expr.xreplace(values).evalf(PRECISION)
        if not (result.is_Number and result.is_finite is True):  # not nan, zoo, oo or complex
            raise _NotANumber(result)
        return sp.Float(result, PRECISION)

    def _write_out_sums(self, expr: sp.Expr, scalars: dict) -> sp.Expr:
        if isinstance(expr, sp.Sum):
            if expr not in self.sums:
                (index, low, high), = expr.limits
                if not (low.is_Integer and high.is_Integer):
                    raise AssertionError(f"a sum with open limits in a derived expression: {expr}")
                terms = [self._value(self._write_out_sums(expr.function.xreplace({index: sp.Integer(t)}), scalars),
                                     scalars) for t in range(int(low), int(high) + 1)]
                self.sums[expr] = sp.Add(*terms)
            return self.sums[expr]
        if not expr.args or not expr.has(sp.Sum):
            return expr
        return expr.func(*(self._write_out_sums(arg, scalars) for arg in expr.args))


@functools.lru_cache(maxsize=256)
def _with_float_constants(expr: sp.Expr) -> sp.Expr:
    """sqrt(2), pi, e as Floats of PRECISION digits, so that substituting Floats evaluates
    most of the expression at once (erf(0.7071... z) evaluates itself; erf(sqrt(2) z/2)
    waits for evalf): three times faster, the same value."""
    expr = expr.xreplace({c: sp.Float(c, PRECISION) for c in expr.atoms(sp.NumberSymbol)})
    return expr.replace(lambda e: e.is_Pow and e.is_number and not e.is_Rational, lambda e: e.evalf(PRECISION))


def _indexed(**vectors) -> dict:
    """{z[t]: value, ...} (t from 1) for the indexed form of softmax and its output delta."""
    bases = {"z": nm.z, "a": nm.a, "y": nm.y}
    return {bases[name][t]: value for name, values in vectors.items() for t, value in enumerate(values, start=1)}


def _scalars(**values) -> dict:
    symbols = {"z": nm.Z, "a": nm.A, "y": nm.Y}
    return {symbols[name]: value for name, value in values.items()}


def _fail(where: str, value) -> DerivgenError:
    return DerivgenError(f"{where} is {value}, not a finite real number, so there is no worked example "
                         "for these numbers (try other inputs or parameters)")


def _forward(derivation: Derivation, W: list, b: list, x: list) -> list[tuple[list, list, sp.Float | None]]:
    """(z, a, normaliser) per layer, by the dense layer and the derived activation forms."""
    out, previous = [], x
    for l, rule in enumerate(derivation.activations, start=1):
        z = [sp.Add(*(w * p for w, p in zip(row, previous))) + bias for row, bias in zip(W[l - 1], b[l - 1])]
        evaluate = _Evaluator(len(z), _indexed(z=z))
        a = []
        for unit, value in enumerate(z, start=1):
            try:
                a.append(evaluate.unit(rule.forward, unit, _scalars(z=value)))
            except _NotANumber as exc:
                raise _fail(f"layer {l}, unit {unit}: the activation {rule.name} at z = {_plain(value)}",
                            exc.value) from None
        sums = list(evaluate.sums.values())
        out.append((z, a, sums[0] if len(sums) == 1 else None))
        previous = a
    return out


def _loss_terms(derivation: Derivation, z: list, a: list, y: list) -> tuple[list, bool]:
    """The per-unit losses (LossRule.per_unit); where one is not finite at PRECISION digits
    (a rounded to 0 or 1) the derivation's stable form in z is used, when it has one."""
    output = derivation.output
    evaluate = _Evaluator(len(a), _indexed(z=z, a=a, y=y))
    terms, stable = [], False
    for unit, (zk, ak, yk) in enumerate(zip(z, a, y), start=1):
        scalars = _scalars(z=zk, a=ak, y=yk)
        try:
            terms.append(evaluate.unit(derivation.loss.per_unit, unit, scalars))
            continue
        except _NotANumber as exc:
            problem = exc.value
        if output.loss_from_logits is not None:
            try:
                terms.append(evaluate.unit(output.loss_from_logits, unit, scalars))
                stable = True
                continue
            except _NotANumber as exc:
                problem = exc.value
        raise _fail(f"the loss of output unit {unit} (a = {_plain(ak)}, y = {_plain(yk)})", problem)
    return terms, stable


def _check_assumptions(derivation: Derivation, y: list) -> None:
    """The output delta may rest on an assumption about the targets (softmax with
    cross-entropy: they sum to one); the worked example holds only when these targets meet it."""
    evaluate = _Evaluator(len(y), _indexed(y=y))
    for equation in derivation.output.assumptions:
        gap = evaluate.unit(equation.lhs - equation.rhs, 1, {})
        if abs(gap) > SUM_TO_ONE_TOLERANCE:
            total = evaluate.unit(equation.lhs, 1, {})
            raise DerivgenError(
                f"the output delta of {derivation.output.activation.name} with {derivation.loss.name} was derived "
                f"assuming the targets sum to {equation.rhs} (a probability distribution, such as a one-hot "
                f"label), but the --y values sum to {_plain(total)}")


def _numbers(values, count: int, where: str, text: bool = True) -> list[sp.Float]:
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise DerivgenError(f"{where} must be a list of {count} numbers")
    if len(values) != count:
        raise DerivgenError(f"{where} has {_count(len(values), 'number')}; expected {count}")
    return [_number(value, f"{where}[{index}]", text) for index, value in enumerate(values)]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _number(value, where: str, text: bool = True) -> sp.Float:
    """One user number, checked: an int, float, Decimal or (when `text`) decimal text,
    finite in float64."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal) + ((str,) if text else ())):
        raise DerivgenError(f"{where} is {json.dumps(value) if _jsonable(value) else repr(value)}, not a number")
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        raise DerivgenError(f"{where} is {_shown(value)}, not a number")
    if not math.isfinite(float(value)):
        raise DerivgenError(f"{where} is {value}, not a finite number (it must fit a float64)")
    return _high(value.strip() if isinstance(value, str) else value)


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def check_params(params: dict, sizes: tuple[int, ...], source: str = "params",
                 text: bool = True) -> tuple[list, list]:
    """(W, b) as lists of high-precision numbers, after checking names and shapes:
    exactly W1, b1, ..., WL, bL; W{l} a list of n_l rows of n_{l-1} numbers; b{l} n_l numbers.
    `text`: whether decimal text counts as a number (not in a JSON file, where "0.5" is a string)."""
    depth = len(sizes) - 1
    names = nm.param_names(depth)
    if not isinstance(params, dict):
        raise DerivgenError(f"{source} must be a JSON object with the keys {', '.join(names)}")
    missing = [name for name in names if name not in params]
    if missing:
        raise DerivgenError(f"{source} is missing {', '.join(missing)}; a {'-'.join(map(str, sizes))} network "
                            f"needs exactly {', '.join(names)}")
    extra = [str(name) for name in params if name not in names]
    if extra:
        raise DerivgenError(f"{source} has unexpected key(s) {', '.join(sorted(extra))}; a "
                            f"{'-'.join(map(str, sizes))} network needs exactly {', '.join(names)}")
    W, b = [], []
    for l in range(1, depth + 1):
        n, m = sizes[l], sizes[l - 1]
        name = nm.weight(l)
        rows = params[name]
        if isinstance(rows, np.ndarray):
            rows = rows.tolist()
        if not isinstance(rows, (list, tuple)) or len(rows) != n:
            got = _count(len(rows), "row") if isinstance(rows, (list, tuple)) else "not a list of rows"
            raise DerivgenError(f"{source}: {name} has {got}; expected {n} rows of {m} numbers "
                                f"(row i holds the weights into unit i of layer {l})")
        matrix = []
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple)) or len(row) != m:
                got = _count(len(row), "number") if isinstance(row, (list, tuple)) else "not a list"
                raise DerivgenError(f"{source}: {name}[{i}] has {got}; expected {m} (one weight from each unit "
                                    f"of layer {l - 1})")
            matrix.append([_number(value, f"{source}: {name}[{i}][{j}]", text) for j, value in enumerate(row)])
        W.append(matrix)
        b.append(_numbers(params[nm.bias(l)], n, f"{source}: {nm.bias(l)}", text))
    return W, b


def random_params(derivation: Derivation, seed: int = 0) -> dict[str, np.ndarray]:
    """The generated module's init_params(seed) in float64: He initialisation before
    ReLU-like activations, Glorot otherwise; zero biases."""
    from .codegen import _relu_like

    rng = np.random.default_rng(seed)
    sizes, params = derivation.spec.sizes, {}
    for l, rule in enumerate(derivation.activations, start=1):
        fan_in, fan_out = sizes[l - 1], sizes[l]
        scale = math.sqrt(2.0 / fan_in) if _relu_like(rule) else math.sqrt(2.0 / (fan_in + fan_out))
        params[nm.weight(l)] = (rng.standard_normal((fan_out, fan_in)) * scale).astype(np.float64)
        params[nm.bias(l)] = np.zeros(fan_out, dtype=np.float64)
    return params


def check_size(sizes: tuple[int, ...]) -> None:
    """A worked example lists every parameter several times and evaluates the derived formulas
    unit by unit (milliseconds each): refuse networks too big to read or to wait for."""
    count = sum(sizes[l] * sizes[l - 1] + sizes[l] for l in range(1, len(sizes)))
    if count > MAX_PARAMETERS:
        raise DerivgenError(f"this network has {count:,} parameters; a worked example lists every one of them "
                            f"several times, so it is limited to {MAX_PARAMETERS:,} (use a smaller network; "
                            "`derivgen derive` has no such limit)")
    units = sum(sizes[1:])
    if units > MAX_UNITS:
        raise DerivgenError(f"this network has {units:,} units; a worked example evaluates the derived formulas "
                            f"unit by unit, so it is limited to {MAX_UNITS:,} (use a smaller network; "
                            "`derivgen derive` has no such limit)")


def compute(derivation: Derivation, x, y, params: dict, rate=DEFAULT_RATE) -> WorkedExample:
    """The worked example for one sample (x, y): forward pass, loss, deltas, gradients, the
    parameters after one gradient-descent step with learning rate `rate`, and the loss after
    it. Numbers may be ints, floats, Decimals or decimal text (taken exactly); params maps
    W1, b1, ... to nested lists or arrays, W{l}[i][j] the weight from unit j below to unit i."""
    sizes = derivation.spec.sizes
    check_size(sizes)
    if derivation.spec.l2 or getattr(derivation, "penalty", None) is not None:
        raise DerivgenError(f"worked examples do not cover L2 weight decay yet (this spec sets l2 = "
                            f"{derivation.spec.l2:g}); remove l2 for the example")
    x = _numbers(x, sizes[0], "x")
    y = _numbers(y, sizes[-1], "y")
    eta = _number(rate, "the learning rate")
    if not eta > 0:
        raise DerivgenError(f"the learning rate must be positive, got {_plain(eta)}")
    W, b = check_params(params, sizes)
    _check_assumptions(derivation, y)
    depth, output = derivation.spec.depth, derivation.output

    forward = _forward(derivation, W, b, x)
    z_out, a_out, _ = forward[-1]
    loss_terms, stable = _loss_terms(derivation, z_out, a_out, y)

    # The output delta, unit by unit, from OutputDelta.result.
    evaluate = _Evaluator(sizes[-1], _indexed(z=z_out, a=a_out, y=y))
    delta = []
    for unit, (zk, ak, yk) in enumerate(zip(z_out, a_out, y), start=1):
        try:
            delta.append(evaluate.unit(output.result, unit, _scalars(z=zk, a=ak, y=yk)))
        except _NotANumber as exc:
            raise _fail(f"the output delta of unit {unit}", exc.value) from None
    deltas, backprops, slopes = [delta], [None], [None]
    # Hidden deltas: ((W^(l+1))^T delta^(l+1)) times the derived factor, in a (or z).
    for l in range(depth - 1, 0, -1):
        rule, (z, a, _) = derivation.activations[l - 1], forward[l - 1]
        above, weights = deltas[0], W[l]
        backprop = [sp.Add(*(weights[i][j] * above[i] for i in range(len(above)))) for j in range(len(z))]
        slope = []
        for unit, (zj, aj) in enumerate(zip(z, a), start=1):
            try:
                slope.append(_Evaluator(len(z), {}).unit(rule.backward_form, unit, _scalars(z=zj, a=aj)))
            except _NotANumber as exc:
                raise _fail(f"layer {l}, unit {unit}: the derivative of {rule.name}", exc.value) from None
        deltas.insert(0, [g * s for g, s in zip(backprop, slope)])
        backprops.insert(0, backprop)
        slopes.insert(0, slope)

    grads_W, grads_b, W_after, b_after = [], [], [], []
    previous = x
    for l in range(1, depth + 1):
        d = deltas[l - 1]
        grad_W = [[di * p for p in previous] for di in d]
        grads_W.append(grad_W)
        grads_b.append(list(d))
        W_after.append([[w - eta * g for w, g in zip(row, grow)] for row, grow in zip(W[l - 1], grad_W)])
        b_after.append([bias - eta * g for bias, g in zip(b[l - 1], d)])
        previous = forward[l - 1][1]

    after = _forward(derivation, W_after, b_after, x)
    loss_terms_after, stable_after = _loss_terms(derivation, after[-1][0], after[-1][1], y)

    layers = []
    for l in range(1, depth + 1):
        z, a, normaliser = forward[l - 1]
        layers.append(LayerNumbers(
            W=_matrix(W[l - 1]), b=_vector(b[l - 1]), z=_vector(z), a=_vector(a),
            normaliser=None if normaliser is None else _float(normaliser),
            backprop=None if backprops[l - 1] is None else _vector(backprops[l - 1]),
            slope=None if slopes[l - 1] is None else _vector(slopes[l - 1]),
            delta=_vector(deltas[l - 1]), grad_W=_matrix(grads_W[l - 1]), grad_b=_vector(grads_b[l - 1]),
            W_after=_matrix(W_after[l - 1]), b_after=_vector(b_after[l - 1]),
            z_after=_vector(after[l - 1][0]), a_after=_vector(after[l - 1][1])))
    return WorkedExample(
        sizes=tuple(sizes), x=_vector(x), y=_vector(y), rate=_float(eta), layers=tuple(layers),
        loss_terms=_vector(loss_terms), loss=_float(sp.Add(*loss_terms)),
        loss_terms_after=_vector(loss_terms_after), loss_after=_float(sp.Add(*loss_terms_after)),
        stable_loss=stable or stable_after)


def _float(value: sp.Float) -> float:
    result = float(value)
    if not math.isfinite(result):
        raise DerivgenError(f"a number of the worked example, {_plain(value)}, does not fit a float64 "
                            "(try smaller inputs or parameters)")
    return result


def _vector(values) -> tuple[float, ...]:
    return tuple(_float(v) for v in values)


def _matrix(rows) -> tuple[tuple[float, ...], ...]:
    return tuple(_vector(row) for row in rows)


def _plain(value) -> str:
    """A number for an error message: ten significant digits."""
    if isinstance(value, sp.Float) and value.is_finite:
        text = str(sp.Float(value, 10))
        return text if "e" in text or "." not in text else text.rstrip("0").rstrip(".")
    return str(value)


# ---------------------------------------------------------------- user input

def _shown(text: str, limit: int = 40) -> str:
    """User text for a one-line message, quoted and cut short."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_numbers(text: str, option: str, count: int | None = None) -> list[str]:
    """'0.05,0.10' as decimal texts (kept exact), checked; `count` numbers when given."""
    parts = [part.strip() for part in text.split(",")]
    if count is not None and len(parts) != count:
        example = ",".join(["0.5"] * min(count, 3)) + (",..." if count > 3 else "")
        raise DerivgenError(f"{option} has {_count(len(parts), 'number')}; the network needs {count} "
                            f"(comma-separated, as in {example})")
    for part in parts:
        if not _NUMBER.fullmatch(part):
            raise DerivgenError(f"{option}: {_shown(part)} is not a number (use decimals such as 0.05 or 1e-3, "
                                "separated by commas)")
        if not math.isfinite(float(part)):
            raise DerivgenError(f"{option}: {_shown(part)} is not a finite number (it must fit a float64)")
    return parts


def parse_integer(text: str, option: str, low: int, high: int | None = None) -> int:
    text = text.strip()
    if not re.fullmatch(r"[+-]?\d{1,18}", text) or not (low <= int(text) and (high is None or int(text) <= high)):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise DerivgenError(f"{option} must be a whole number {bounds}, got {_shown(text)}")
    return int(text)


def read_params(path: str, sizes: tuple[int, ...]) -> dict:
    """The parameter file: JSON {"W1": [[...], ...], "b1": [...], ...}; numbers kept exact."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PARAMS_FILE_BYTES + 1)
    except OSError as exc:
        raise DerivgenError(f"cannot read the params file {path!r}: {exc.strerror}") from None
    if len(raw) > MAX_PARAMS_FILE_BYTES:
        raise DerivgenError(f"params file {path!r} is larger than {MAX_PARAMS_FILE_BYTES:,} bytes")

    def constant(name):
        raise DerivgenError(f"params file {path!r} contains {name}; every parameter must be a finite number")

    try:
        params = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_int=Decimal,
                            parse_constant=constant)
    except UnicodeDecodeError:
        raise DerivgenError(f"params file {path!r} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DerivgenError(f"params file {path!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise DerivgenError(f"params file {path!r} is nested too deeply") from None
    check_params(params, sizes, f"params file {path!r}", text=False)
    return params


# ---------------------------------------------------------------- the document

def format_number(value: float, digits: int) -> str:
    """`digits` significant digits, trailing zeros dropped, powers of ten as LaTeX."""
    text = format(value, f".{digits}g")
    if text in ("-0", "0"):
        return "0"
    mantissa, _, exponent = text.partition("e")
    if not exponent:
        return text
    return rf"{mantissa} \times 10^{{{int(exponent)}}}"


class _Numbers:
    """Number formatting at the document's precision."""

    def __init__(self, digits: int):
        self.digits = digits

    def __call__(self, value: float) -> str:
        return format_number(value, self.digits)

    def factor(self, value: float) -> str:
        """A number inside a product or after a minus: negatives and powers of ten bracketed."""
        text = self(value)
        return f"({text})" if text.startswith("-") or r"\times" in text else text


def _visible_width(tex: str) -> float:
    """A rough width of maths in characters: commands count one, scripts less."""
    tex = re.sub(r"\\(left|right|big|Big|bigl|bigr|Bigl|Bigr|mathrm|boldsymbol|mathbf|textstyle)\b", "", tex)
    scripts = sum(len(s) for s in re.findall(r"[_^]\{([^{}]*)\}", tex))
    tex = re.sub(r"\\[a-zA-Z]+", "x", tex)
    plain = len(re.sub(r"[{}_^\s&]", "", tex))
    return plain - 0.4 * scripts


class _LatexWriter:
    WIDTH = 62  # characters of maths per line (see _visible_width), leaving room for the tag
    TAG_PLACE = "the tag on the right of a line"
    BEFORE_DISPLAY = "\n"

    def text(self, s: str) -> str:
        return latex_text(s)

    def code(self, s: str) -> str:
        # -{} stops the -- ligature; a spec may break after the dash before a width, a list after a comma.
        text = re.sub(r"(?<=[0-9a-z:])-(?=[0-9])", "-\x00", latex_text(s)).replace("-", "-{}").replace(",", ",\x00")
        return r"\texttt{" + text.replace("\x00", r"\allowbreak{}") + "}"

    def tag(self, label: str) -> str:
        return rf"\mbox{{({latex_text(label)})}}"

    CHUNK = 40  # lines per align*: TeX keeps a whole alignment in memory

    def display(self, lines: list[tuple[str, bool, bool]], label: str = "") -> str:
        """align*: every line that ends in a value carries the tag, so every number sits
        beside its equation. Long blocks are split (between entries) into several align*."""
        tag = rf" \tag{{{latex_text(label)}}}" if label else ""
        entries = any(final for _, final, _ in lines)  # else a grid, which may split anywhere
        chunks, current = [], []
        for text, final, gap in lines:
            current.append((text + (tag if final and tag else r" \notag"), gap))
            if len(current) >= self.CHUNK and (final or not entries):
                chunks.append(current)
                current = []
        if current:
            chunks.append(current)
        return "\n".join("\\begin{align*}\n" + _join_lines([t for t, _ in chunk], [g for _, g in chunk])
                         + "\n\\end{align*}" for chunk in chunks)


def _join_lines(texts: list[str], gaps: list[bool]) -> str:
    out = texts[:1]
    for text, gap in zip(texts[1:], gaps[1:]):
        out[-1] += " \\\\[0.8ex]\n" if gap else " \\\\\n"
        out.append(text)
    return "".join(out)


class _MarkdownWriter:
    WIDTH = 62
    TAG_PLACE = "the tag beside a block of lines"
    BEFORE_DISPLAY = "\n\n"  # a $$ block is a paragraph of its own

    def text(self, s: str) -> str:
        return s

    def code(self, s: str) -> str:
        return f"`{s}`"

    def tag(self, label: str) -> str:
        return f"({label})"

    def display(self, lines: list[tuple[str, bool, bool]], label: str = "") -> str:
        """One block per equation: the tag stands once, beside the whole block."""
        tag = "\n" + rf"\tag{{{label}}}" if label else ""
        body = _join_lines([text for text, _, _ in lines], [gap for _, _, gap in lines])
        return "$$\n\\begin{aligned}\n" + body + "\n\\end{aligned}" + tag + "\n$$"


@dataclass(frozen=True)
class _Entry:
    """One computed number: `lhs = symbolic = numeric = value`. `numeric` is the arithmetic
    with numbers: one string, or the terms of a sum (which may wrap over several lines)."""

    lhs: str
    symbolic: str | None
    numeric: str | tuple[str, ...] | None
    value: str
    relation: str = "="

    def lines(self, level: int, width: float) -> list[tuple[str, bool, bool]]:
        """(maths, ends with the value, space before) for layout `level` (see _Sheet.show)."""
        head = f"{self.lhs} &{self.relation} "
        numeric = " + ".join(self.numeric) if isinstance(self.numeric, tuple) else self.numeric
        parts = [p for p in (self.symbolic, numeric) if p]
        if level == 0 or not parts:
            return [(head + " = ".join(parts + [self.value]), True, False)]
        if level == 1 and self.symbolic and numeric:
            out = [(head + self.symbolic, False, False)]
            terms = self.numeric if isinstance(self.numeric, tuple) else (self.numeric,)
            line = "&= " + terms[0]
            for term in terms[1:]:
                if _visible_width(f"{line} + {term}") > width:
                    out.append((line, False, False))
                    line = r"&\phantom{=}\ + " + term
                else:
                    line += f" + {term}"
            return out + [(f"{line} = {self.value}", True, False)]
        if level <= 2:
            return [(head + f"{parts[0]} = {self.value}", True, False)]
        if level == 3:
            return [(head + parts[0], False, False), (f"&= {self.value}", True, False)]
        return [(head + self.value, True, False)]


def _sub(*indices: int) -> str:
    return "".join(map(str, indices)) if all(i < 10 for i in indices) else ",".join(map(str, indices))


class _Sheet:
    """Builds the template's context: every display and sentence as a finished string."""

    def __init__(self, derivation: Derivation, example: WorkedExample, writer, digits: int, command: str,
                 params_from: str):
        self.d, self.e, self.w = derivation, example, writer
        self.num = _Numbers(digits)
        self.digits = digits
        self.command = command
        self.params_from = params_from
        self.sizes = example.sizes
        self.depth = len(example.sizes) - 1

    # -------------------------------------------------------- symbols

    def a(self, l: int, i: int) -> str:
        return f"x_{{{i}}}" if l == 0 else f"a^{{({l})}}_{{{i}}}"

    @staticmethod
    def z(l: int, i: int) -> str:
        return f"z^{{({l})}}_{{{i}}}"

    def W(self, l: int, i: int, j: int) -> str:
        return f"W^{{({l})}}_{{{_sub(i, j)}}}"

    @staticmethod
    def b(l: int, i: int) -> str:
        return f"b^{{({l})}}_{{{i}}}"

    @staticmethod
    def delta(l: int, i: int) -> str:
        return rf"\delta^{{({l})}}_{{{i}}}"

    @staticmethod
    def row(lhs: str, symbolic: str | None, numeric: str | None, value: str,
            relation: str = "=") -> list["_Entry"]:
        """One computed number: `lhs = symbolic = numeric = value` (parts may be None)."""
        return [_Entry(lhs, symbolic, numeric, value, relation)]

    def show(self, entries: list["_Entry"], label: str = "") -> str:
        """A display of computed numbers in the first layout that fits every line of it, so the
        lines of one block look alike: all on one line; broken before the numbers; the
        numbers left out; the value on a line of its own; the value only."""
        width = self.w.WIDTH
        for level in range(5):
            lines = [line for entry in entries for line in entry.lines(level, width)]
            if all(_visible_width(text) <= width for text, _, _ in lines):
                break
        return self.w.display(lines, label)

    def grid(self, entries: list[tuple[str, str]], gap: bool = False) -> list[tuple[str, bool, bool]]:
        """`symbol = value` pairs, as many to a line as fit (no tag: grids hold given numbers);
        `gap` puts a little space before the first line when the entries take several lines."""
        if not entries:
            return []
        widest = max(_visible_width(f"{s} = {v}") for s, v in entries) + 3
        per_line = max(1, min(4, int((self.w.WIDTH + 14) // widest)))
        lines = []
        for start in range(0, len(entries), per_line):
            chunk = entries[start:start + per_line]
            lines.append((" & ".join(f"{s} &= {v}" for s, v in chunk), False,
                          gap and start == 0 and len(entries) > per_line))
        return lines

    # -------------------------------------------------------- the sections

    def context(self) -> dict:
        d, w = self.d, self.w
        architecture = f"{d.spec.input}-" + "-".join(f"{layer.units}:{layer.activation.name}"
                                                     for layer in d.spec.layers)
        name = "" if d.spec.name == "network" else w.text(d.spec.name) + ": "
        return {
            "title": f"A worked example of backpropagation for {name}{w.code(architecture)} "
                     f"with the loss {w.code(d.spec.loss.name)}",
            "source_comment": " ".join(self.command.split()),
            "intro": self.intro(),
            "network": self.network(),
            "convention": self.convention(),
            "start": self.start(),
            "forward": [self.forward_layer(l) for l in range(1, self.depth + 1)],
            "loss": self.loss(),
            "output_delta": self.output_delta(),
            "hidden": [self.hidden_layer(l) for l in range(self.depth - 1, 0, -1)],
            "gradients": [self.gradients(l) for l in range(self.depth, 0, -1)],
            "update_intro": self.update_intro(),
            "updates": [self.update(l) for l in range(1, self.depth + 1)],
            "after": self.after(),
            "command": w.code(self.command),
        }

    def intro(self) -> list[str]:
        w, e = self.w, self.e
        derive = f"derivgen derive {self.d.spec.source}"
        if self.d.spec.loss_was_given:
            derive += f" --loss {self.d.spec.loss.name}"
        return [
            f"This sheet follows one training sample through one step of gradient descent with learning rate "
            f"$\\eta = {self.num(e.rate)}$: the forward pass, the loss, the errors $\\delta$ of the backward pass, "
            f"the gradient of every parameter, the parameters after the step and the loss after it.",
            f"Each number is computed from the formulas of the derivation document ({w.code(derive)}); "
            f"{w.TAG_PLACE}, such as {w.tag(nm.eq_forward(1))} or {w.tag(nm.EQ_OUTPUT_DELTA)}, names the "
            f"equation of that document that gives it. The numbers are shown to {self.digits} significant "
            f"digits, but every one is computed from the unrounded values before it (to {PRECISION} digits), "
            f"so redoing a line with the rounded numbers shown can differ in the last digit.",
        ]

    def network(self) -> list[dict]:
        rows = [{"l": "0", "units": str(self.sizes[0]), "activation": "input", "params": ""}]
        for l, layer in enumerate(self.d.spec.layers, start=1):
            rows.append({"l": str(l), "units": str(layer.units), "activation": self.w.code(layer.activation.name),
                         "params": f"{layer.units * self.sizes[l - 1] + layer.units:,}"})
        return rows

    def convention(self) -> str:
        w, e = self.w, self.e
        j = 2 if self.sizes[0] >= 2 else 1
        value = self.num(e.layers[0].W[0][j - 1])
        source = ("In the parameter file" if self.params_from == "file"
                  else f"In a parameter file ({w.code('--params')})")
        return (
            f"$W^{{(l)}}_{{ij}}$ is the weight from unit $j$ of layer $l-1$ to unit $i$ of layer $l$: the first "
            f"index is the unit the weight feeds into, so $z^{{(l)}}_i = \\sum_j W^{{(l)}}_{{ij}} a^{{(l-1)}}_j + "
            f"b^{{(l)}}_i$, and layer 0 is the input, $a^{{(0)}}_j = x_j$. Units are counted from 1. "
            f"{source}, row {w.code('W1[i]')} lists the weights into one unit of layer 1, and "
            f"entries count from 0: {w.code(f'W1[0][{j - 1}]')} is ${self.W(1, 1, j)}$, the weight from "
            f"input ${self.a(0, j)}$ into unit 1 of layer 1 (here ${value}$). "
            "Hand-worked examples in circulation number the weights $w_1, w_2, \\dots$ or write $w_{jk}$ for the "
            "weight from $j$ to $k$; compare weights by the two units they connect, not by their names."
        )

    def start(self) -> dict:
        e, num = self.e, self.num
        given = ("They are given in the parameter file." if self.params_from == "file"
                 else f"They are drawn at random with {self.params_from}, as the generated module's "
                      f"{self.w.code('init_params')} does (He initialisation before ReLU-like activations, "
                      "Glorot otherwise; zero biases).")
        inputs = self.w.display(self.grid([(self.a(0, j), num(v)) for j, v in enumerate(e.x, start=1)])
                                + self.grid([(f"y_{{{k}}}", num(v)) for k, v in enumerate(e.y, start=1)]))
        layers = []
        for l, numbers in enumerate(e.layers, start=1):
            rows = []
            for i, (weights, bias) in enumerate(zip(numbers.W, numbers.b), start=1):
                rows += self.grid([(self.W(l, i, j), num(v)) for j, v in enumerate(weights, start=1)]
                                  + [(self.b(l, i), num(bias))], gap=i > 1)
            layers.append({"l": str(l), "display": self.w.display(rows)})
        return {"inputs": inputs, "given": given, "layers": layers}

    def forward_layer(self, l: int) -> dict:
        num, numbers = self.num, self.e.layers[l - 1]
        rule = self.d.activations[l - 1]
        below = self.e.x if l == 1 else self.e.layers[l - 2].a
        m = len(below)
        z_rows = []
        for i, (row, bias, value) in enumerate(zip(numbers.W, numbers.b, numbers.z), start=1):
            if m <= 4:
                symbolic = " + ".join(f"{self.W(l, i, j)} {self.a(l - 1, j)}" for j in range(1, m + 1))
                numeric = tuple(f"{num.factor(wij)} \\cdot {num.factor(aj)}" for wij, aj in zip(row, below))
                symbolic, numeric = f"{symbolic} + {self.b(l, i)}", numeric + (num.factor(bias),)
            else:
                symbolic = (f"\\sum_{{j=1}}^{{{m}}} W^{{({l})}}_{{{i}j}} "
                            f"{'x_{j}' if l == 1 else f'a^{{({l - 1})}}_{{j}}'} + {self.b(l, i)}")
                numeric = None
            z_rows += self.row(self.z(l, i), symbolic, numeric, num(value))
        label = nm.eq_forward(l)
        name = math_name(rule.name)
        a_rows = []
        if rule.is_softmax:
            total = rule.forward.atoms(sp.Sum)
            normaliser = latex(next(iter(total)).xreplace({nm.n: sp.Integer(len(numbers.z))}), layer=l)
            a_rows += self.row(normaliser, None, None, num(numbers.normaliser))
            for i, value in enumerate(numbers.a, start=1):
                form = rule.forward.xreplace({nm.n: sp.Integer(len(numbers.z)), nm.j: sp.Integer(i)})
                a_rows += self.row(self.a(l, i), latex(form, layer=l), None, num(value))
            definition = (f"The activation is softmax, which couples the units: $a^{{({l})}}_{{j}} = "
                          f"{latex(rule.forward, layer=l)}$; the sum is computed once.")
        else:
            for i, (zi, ai) in enumerate(zip(numbers.z, numbers.a), start=1):
                a_rows += self.row(self.a(l, i), f"{name}({self.z(l, i)})", f"{name}({num(zi)})", num(ai))
            definition = f"The activation is ${name}(z) = {latex(rule.forward)}$."
        return {"l": str(l), "z": self.show(z_rows, label), "definition": definition,
                "a": self.show(a_rows, label)}

    def loss(self) -> dict:
        e, num, L = self.e, self.num, self.depth
        per_unit = self.d.loss.per_unit
        rows = []
        for k, value in enumerate(e.loss_terms, start=1):
            rows += self.row(rf"\ell_{{{k}}}", latex(per_unit, layer=L, index=k), None, num(value))
        terms = tuple(num.factor(t) if n else num(t) for n, t in enumerate(e.loss_terms))
        symbolic = " + ".join(rf"\ell_{{{k}}}" for k in range(1, len(e.loss_terms) + 1)) \
            if len(e.loss_terms) <= 4 else rf"\sum_{{k=1}}^{{{len(e.loss_terms)}}} \ell_{{k}}"
        rows += self.row(r"\ell", symbolic, terms if len(e.loss_terms) <= 4 else None, num(e.loss))
        note = ""
        if e.stable_loss:
            note = ("Where an output rounds to 0 or 1 even at "
                    f"{PRECISION} digits, the per-unit loss was evaluated through the derivation's equivalent form "
                    "in the pre-activation $z$.")
        return {"display": self.show(rows, nm.EQ_LOSS), "note": note}

    def output_delta(self) -> dict:
        out, L, num = self.d.output, self.depth, self.num
        numbers = self.e.layers[-1]
        rows = []
        for k, value in enumerate(numbers.delta, start=1):
            if out.activation.is_softmax:
                form = latex(out.result.xreplace({nm.k: sp.Integer(k), nm.n: sp.Integer(len(numbers.delta))}),
                             layer=L)
            else:
                form = latex(out.result, layer=L, index=k)
            rows += self.row(self.delta(L, k), form, None, num(value))
        note = ""
        if out.assumptions:
            total = sum(self.e.y)
            note = (f"The derivation proved this form assuming the targets sum to one; here "
                    f"$\\sum_k y_k = {num(total)}$.")
        return {"display": self.show(rows, nm.EQ_OUTPUT_DELTA), "note": note}

    FACTOR_WIDTH = 24  # a longer derivative is written by name, phi'(z), and given once below the block

    def _factor(self, l: int, i: int) -> str:
        """The derivative factor of layer l's activation for unit i, printed from the derived
        form, or by name when that is long."""
        rule = self.d.activations[l - 1]
        form = rule.backward_form
        if isinstance(form, sp.Piecewise) and len(form.args) == 2 and form.args[0][0] == 1 \
                and form.args[1][0] == 0 and form.args[1][1] is sp.true:
            tex = f"[{latex(form.args[0][1], layer=l, index=i)}]"
        else:
            tex = latex(form, layer=l, index=i)
            if isinstance(form, (sp.Add, sp.Piecewise)):
                tex = rf"\left({tex}\right)"
        if _visible_width(tex) > self.FACTOR_WIDTH:
            return f"{math_name(rule.name)}'({self.z(l, i)})"
        return tex

    def hidden_layer(self, l: int) -> dict:
        num, rule = self.num, self.d.activations[l - 1]
        numbers, above = self.e.layers[l - 1], self.e.layers[l]
        n_above = len(above.delta)
        form = rule.backward_form
        rows, by_name = [], False
        for j, (g, s, value) in enumerate(zip(numbers.backprop, numbers.slope, numbers.delta), start=1):
            if n_above <= 4:
                total = " + ".join(f"{self.W(l + 1, i, j)} {self.delta(l + 1, i)}" for i in range(1, n_above + 1))
                numbers_in = tuple(f"{num.factor(above.W[i - 1][j - 1])} \\cdot {num.factor(above.delta[i - 1])}"
                                   for i in range(1, n_above + 1))
            else:
                total = rf"\sum_{{i=1}}^{{{n_above}}} W^{{({l + 1})}}_{{i{j}}} \delta^{{({l + 1})}}_{{i}}"
                numbers_in = None
            if form == 1:
                symbolic = total
                numeric = numbers_in if numbers_in else None
            else:
                bracket = rf"\left({total}\right)" if n_above > 1 or "+" in total else total
                factor = self._factor(l, j)
                by_name = by_name or factor.startswith(math_name(rule.name))
                symbolic = rf"{bracket} \cdot {factor}"
                numeric = rf"{num.factor(g)} \cdot {num.factor(s)}"
            rows += self.row(self.delta(l, j), symbolic, numeric, num(value))
        w, name, tag = self.w, self.w.code(rule.name), self.w.tag(nm.eq_activation(rule.name))
        if form == 1:
            factor = f"The derivative of {name} is 1, so nothing multiplies the sum."
        elif by_name:
            in_a = ", with $a = \\varphi(z)$" if rule.in_output is not None else ""
            formula = w.display([(f"{math_name(rule.name)}'(z) &= {latex(form)}", True, False)],
                                nm.eq_activation(rule.name))
            factor = (f"The last factor is the derivative of {name}, as derived in {tag}{in_a}; the numbers "
                      f"show the sum, then that factor:{w.BEFORE_DISPLAY}{formula}")
        else:
            where = "the output $a$" if rule.in_output is not None else "the pre-activation $z$"
            factor = (f"The last factor is the derivative of {name} written in {where}, "
                      f"as derived in {tag}; the numbers show the sum, then that factor.")
        return {"l": str(l), "display": self.show(rows, nm.eq_delta(l)), "factor": factor}

    def gradients(self, l: int) -> dict:
        num, numbers = self.num, self.e.layers[l - 1]
        below = self.e.x if l == 1 else self.e.layers[l - 2].a
        w_rows, b_rows = [], []
        for i, row in enumerate(numbers.grad_W, start=1):
            for j, value in enumerate(row, start=1):
                lhs = rf"\partial \ell / \partial {self.W(l, i, j)}"
                w_rows += self.row(lhs, f"{self.delta(l, i)} {self.a(l - 1, j)}",
                                   f"{num.factor(numbers.delta[i - 1])} \\cdot {num.factor(below[j - 1])}", num(value))
        for i, value in enumerate(numbers.grad_b, start=1):
            b_rows += self.row(rf"\partial \ell / \partial {self.b(l, i)}", self.delta(l, i), None, num(value))
        return {"l": str(l), "W": self.show(w_rows, nm.eq_grad_w(l)),
                "b": self.show(b_rows, nm.eq_grad_b(l))}

    def update_intro(self) -> str:
        return ("Every parameter moves against its gradient, "
                f"$W^{{(l)}}_{{ij}} \\leftarrow W^{{(l)}}_{{ij}} - \\eta\\, \\partial \\ell / \\partial W^{{(l)}}_{{ij}}$ "
                f"and $b^{{(l)}}_i \\leftarrow b^{{(l)}}_i - \\eta\\, \\partial \\ell / \\partial b^{{(l)}}_i$, with "
                f"$\\eta = {self.num(self.e.rate)}$. All gradients are taken before any parameter changes.")

    def update(self, l: int) -> dict:
        num, numbers, eta = self.num, self.e.layers[l - 1], self.num.factor(self.e.rate)
        rows = []
        for i, (row, grow, new) in enumerate(zip(numbers.W, numbers.grad_W, numbers.W_after), start=1):
            for j, (old, g, value) in enumerate(zip(row, grow, new), start=1):
                rows += self.row(self.W(l, i, j), None, f"{num(old)} - {eta} \\cdot {num.factor(g)}", num(value),
                                 relation=r"\leftarrow")
        for i, (old, g, value) in enumerate(zip(numbers.b, numbers.grad_b, numbers.b_after), start=1):
            rows += self.row(self.b(l, i), None, f"{num(old)} - {eta} \\cdot {num.factor(g)}", num(value),
                             relation=r"\leftarrow")
        return {"l": str(l), "display": self.show(rows)}

    def after(self) -> dict:
        e, num, L = self.e, self.num, self.depth
        output = e.layers[-1]
        rows = []
        for k, (new, old) in enumerate(zip(output.a_after, output.a), start=1):
            rows.append((rf"{self.a(L, k)} &= {num(new)} && \text{{(was }} {num(old)}\text{{)}}", True, False))
        loss_rows = [(rf"\ell &= {num(e.loss_after)} && \text{{(was }} {num(e.loss)}\text{{)}}", True, False)]
        change = e.loss_after - e.loss
        relative = f" (${format_number(100 * abs(change / e.loss), 3)}\\,\\%$)" if e.loss != 0 else ""
        verdict = "fell" if change < 0 else "rose" if change > 0 else "did not change"
        sentence = (f"The loss {verdict} by ${num(abs(change))}${relative}."
                    if change else "The loss did not change.")
        if change > 0:
            sentence += (" A step that raises the loss usually means the learning rate is too large for these "
                         f"parameters; try a smaller one with {self.w.code('--lr')}.")
        return {"outputs": self.w.display(rows, nm.eq_forward(L)), "loss": self.w.display(loss_rows, nm.EQ_LOSS),
                "sentence": sentence}


def render(derivation: Derivation, example: WorkedExample, fmt: str, digits: int = DEFAULT_DIGITS,
           command: str = "", params_from: str = "file") -> str:
    """The worked example as a LaTeX document (for pdflatex) or Markdown ($...$ and $$...$$
    maths). `params_from` is "file", or how random parameters were drawn ("seed 0")."""
    if fmt not in TEMPLATES:
        raise ValueError(f"unknown document format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not 1 <= digits <= MAX_DIGITS:
        raise DerivgenError(f"--digits must be from 1 to {MAX_DIGITS}, got {digits}")
    writer = _LatexWriter() if fmt == "latex" else _MarkdownWriter()
    return stamp(render_template(TEMPLATES[fmt], _Sheet(derivation, example, writer, digits, command, params_from).context()), fmt)


def example_document(derivation: Derivation, x: str, y: str, params_file: str | None, seed: str | None,
                     rate: str, digits: str, fmt: str, command: str) -> str:
    """`derivgen example`: the options as the user typed them, checked, and the document."""
    sizes = derivation.spec.sizes
    digits = parse_integer(digits, "--digits", 1, MAX_DIGITS)
    x_values = parse_numbers(x, "--x", sizes[0])
    y_values = parse_numbers(y, "--y", sizes[-1])
    (rate_value,) = parse_numbers(rate, "--lr", 1)
    if not float(rate_value) > 0:
        raise DerivgenError(f"--lr must be a positive number, got {rate_value}")
    if params_file is not None:
        if seed is not None:
            raise DerivgenError("--seed draws random parameters; it cannot be used with --params")
        params, params_from = read_params(params_file, sizes), "file"
    else:
        seed_value = parse_integer(seed if seed is not None else "0", "--seed", 0)
        params, params_from = random_params(derivation, seed_value), f"seed {seed_value}"
    example = compute(derivation, x_values, y_values, params, rate_value)
    return render(derivation, example, fmt, digits, command, params_from)
