"""Derived expressions as sequences of in-place NumPy calls (`np.f(x, y, out=T)`, `T *= x`).

The hot path of a training step should allocate nothing: each elementwise expression of
the backward pass (an activation's derivative, an output delta, a per-unit loss) is
written into a preallocated buffer, one ufunc call per operation. Expressions this
emitter does not handle (sums over units, piecewise values, helper calls without `out`)
return None, and the caller prints them as one ordinary, allocating NumPy expression.
"""

import re
from dataclasses import dataclass

import sympy as sp

from .printing import CodePrinter, extremum, prepare

_FUNCTIONS = {"exp": "np.exp", "log": "np.log", "tanh": "np.tanh", "cosh": "np.cosh", "sinh": "np.sinh",
              "Abs": "np.abs", "sign": "np.sign"}
CONSTANTS = "const"  # the generated functions' name for their workspace's constants


def constant(code: str) -> str:
    """A number operand: const[code], the float `code` evaluates to as a 0-d array of the
    workspace's dtype. NumPy takes one about 120 ns faster than a Python float (which it
    converts on every call, under NEP 50's rules); the result is the same, the value
    rounded to the dtype."""
    return f"{CONSTANTS}[{code}]"


def uses_constants(code: str) -> bool:
    return re.search(rf"\b{CONSTANTS}\[", code) is not None


_OPERATORS = {"np.add": "+", "np.subtract": "-", "np.multiply": "*", "np.divide": "/"}


@dataclass(frozen=True)
class Call:
    """function(*args) written into the buffer named out."""
    function: str
    args: tuple[str, ...]
    out: str

    @property
    def in_place(self) -> bool:
        return self.out in self.args

    def code(self) -> str:
        """`out op= x` where a binary operation updates its first operand (about 40 ns
        cheaper than np.multiply(..., out=)), else the call with out=."""
        if self.function == "np.copyto":
            return f"np.copyto({self.out}, {self.args[0]})"
        if self.function in _OPERATORS and len(self.args) == 2 and self.args[0] == self.out:
            return f"{self.out} {_OPERATORS[self.function]}= {self.args[1]}"
        return f"{self.function}({', '.join(self.args)}, out={self.out})"

    def elsewhere(self, buffer: str) -> str:
        """The call written into `buffer` instead, the name out then bound to it."""
        return f"{self.out} = {self.function}({', '.join(self.args)}, out={buffer})"


_COMPARE = {">": "np.greater", ">=": "np.greater_equal", "<": "np.less", "<=": "np.less_equal"}


def _exp_plus_one(arg):
    """u when arg is 1 + e^u (so log(arg) is the stable logaddexp(0, u)), else None."""
    if isinstance(arg, sp.Add) and len(arg.args) == 2 and sp.S.One in arg.args:
        other = arg.args[0] if arg.args[1] == 1 else arg.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


class Unsupported(Exception):
    pass


class Emitter:
    """Writes `expr` into `target`, drawing temporaries from `scratch` (buffer names)."""

    def __init__(self, names: dict[str, str], scratch: list[str]):
        self.printer = CodePrinter({"names": names})
        self.scratch = list(scratch)
        self.used: list[str] = []
        self.lines: list[Call] = []

    def leaf(self, e) -> str | None:
        if e.is_Number:
            return constant(repr(float(e)))
        if isinstance(e, (sp.Symbol, sp.Indexed)):
            return self.printer._print(e)
        return None

    def temporary(self) -> str:
        if not self.scratch:
            raise Unsupported("out of scratch buffers")
        name = self.scratch.pop(0)
        self.used.append(name)
        return name

    def operand(self, e) -> str:
        """A leaf as it is, anything else computed into a fresh temporary."""
        leaf = self.leaf(e)
        if leaf is not None:
            return leaf
        target = self.temporary()
        self.into(e, target)
        return target

    def call(self, function: str, args: list[str], target: str) -> None:
        self.lines.append(Call(function, tuple(args), target))

    def into(self, e, target: str) -> None:
        if self.leaf(e) is not None:
            self.call("np.copyto", [self.leaf(e)], target)
        elif e.is_Add:
            self._sum(e, target)
        elif e.is_Mul:
            self._product(e, target)
        elif e.is_Pow:
            self._power(e, target)
        elif (pair := extremum(e)) is not None:
            function, first, second = pair
            self.call(function, [self._argument(first, target), self.operand(second)], target)
        elif isinstance(e, sp.Piecewise):
            self._indicator(e, target)
        elif isinstance(e, sp.log) and _exp_plus_one(e.args[0]) is not None:
            self.call("np.logaddexp", [constant("0.0"), self.operand(_exp_plus_one(e.args[0]))], target)
        elif type(e).__name__ == "_sigmoid":
            self._sigmoid(e.args[0], target)
        elif isinstance(e, sp.Function) and type(e).__name__ in _FUNCTIONS:
            (arg,) = e.args
            self.call(_FUNCTIONS[type(e).__name__], [self._argument(arg, target)], target)
        else:
            raise Unsupported(type(e).__name__)

    def _sigmoid(self, arg, target: str) -> None:
        """1 / (1 + e^-x) as exp(-log(1 + e^-x)), the log by logaddexp, which works from
        e^-|x|: nothing overflows and small values keep their relative precision."""
        self.call("np.negative", [self._argument(arg, target)], target)
        self.call("np.logaddexp", [constant("0.0"), target], target)
        self.call("np.negative", [target], target)
        self.call("np.exp", [target], target)

    def _argument(self, arg, target: str) -> str:
        """A function's argument: a leaf, or computed into the target itself first."""
        leaf = self.leaf(arg)
        if leaf is not None:
            return leaf
        self.into(arg, target)
        return target

    def _sum(self, e, target: str) -> None:
        """Start from a compound term (computed into the target) or from two leaves, then
        add or subtract the rest; negative terms are subtracted, never negated first."""
        terms = [(-t, -1) if t.could_extract_minus_sign() else (t, 1) for t in e.args]
        terms.sort(key=lambda pair: (self.leaf(pair[0]) is not None, -pair[1]))
        (first, sign), rest = terms[0], terms[1:]
        if self.leaf(first) is None:
            self.into(first, target)
        else:
            second, second_sign = rest.pop(0)
            if sign < 0 and second_sign > 0:
                (first, sign), (second, second_sign) = (second, second_sign), (first, sign)
            function = "np.add" if sign == second_sign else "np.subtract"
            self.call(function, [self.leaf(first), self.leaf(second)], target)
            sign = sign if sign > 0 or second_sign < 0 else 1
        if sign < 0:
            positive = next((i for i, (_, s) in enumerate(rest) if s > 0), None)
            if positive is None:
                self.call("np.negative", [target], target)
            else:
                term, _ = rest.pop(positive)
                self.call("np.subtract", [self.operand(term), target], target)
        for term, term_sign in rest:
            self.call("np.add" if term_sign > 0 else "np.subtract", [target, self.operand(term)], target)

    def _product(self, e, target: str) -> None:
        numerator, denominator = [], []
        for factor in e.args:
            base, power = factor.as_base_exp()
            if power.is_Number and power < 0 and not factor.is_Number:
                denominator.append(base ** -power)
            else:
                numerator.append(factor)
        numerator.sort(key=lambda t: self.leaf(t) is not None)
        first = numerator[0] if numerator else sp.S.One
        if self.leaf(first) is not None and len(numerator) > 1:
            self.call("np.multiply", [self.leaf(first), self.operand(numerator[1])], target)
            numerator = numerator[2:]
        elif self.leaf(first) is not None and denominator:
            self.call("np.divide", [self.leaf(first), self.operand(denominator[0])], target)
            numerator, denominator = [], denominator[1:]
        else:
            self.into(first, target)
            numerator = numerator[1:]
        for factor in numerator:
            self.call("np.multiply", [target, self.operand(factor)], target)
        for factor in denominator:
            self.call("np.divide", [target, self.operand(factor)], target)

    def _power(self, e, target: str) -> None:
        base, power = e.args
        if power == 2:
            self.call("np.square", [self._argument(base, target)], target)
        elif power == sp.Rational(1, 2):
            self.call("np.sqrt", [self._argument(base, target)], target)
        elif power == -1:
            self.call("np.divide", [constant("1.0"), self.operand(base)], target)
        elif power.is_Integer and power > 0:
            self.call("np.power", [self._argument(base, target), str(power)], target)
        else:
            raise Unsupported("power")

    def _indicator(self, e, target: str) -> None:
        """[condition] as 1.0 / 0.0: Piecewise((1, x > c), (0, True))."""
        if len(e.args) != 2 or e.args[0][0] != 1 or e.args[1][0] != 0:
            raise Unsupported("piecewise")
        condition = e.args[0][1]
        if not isinstance(condition, sp.core.relational.Relational) or condition.rel_op not in _COMPARE:
            raise Unsupported("condition")
        self.call(_COMPARE[condition.rel_op], [self.operand(condition.lhs), self.operand(condition.rhs)], target)


def emit(expr, names: dict[str, str], target: str, scratch: list[str]) -> tuple[list[Call], list[str]] | None:
    """(lines computing expr into target, scratch buffers used), or None when the
    expression needs the ordinary printer."""
    emitter = Emitter(names, scratch)
    try:
        emitter.into(prepare(expr), target)
    except Unsupported:
        return None
    return emitter.lines, emitter.used
