"""Safe formulas for custom activations and losses: text to SymPy, never ``eval``.

The text is parsed with ``ast.parse(text, mode="eval")`` and the tree is walked; only the
node types in the tables below become SymPy, anything else is refused with a one-line
:class:`FormulaError` saying what is wrong and at which column.

The language
    numbers    int and float literals, read exactly from their text (``0.01`` is 1/100,
               ``1e-3`` is 1/1000); at most 20 significant digits, magnitude 1e-12 to 1e12, or 0
    names      the caller's variables (``x``; ``a`` and ``y``), then the constants ``pi``, ``e``
    operators  ``+ - * / **``, unary ``-`` and ``+``, parentheses
    functions  exp, log (natural), sqrt, tanh, sigmoid, softplus, erf, abs, cosh, sinh (one
               argument each); max(p, q); min(p, q); where(cond, p, q), where cond is a single
               comparison ``<``, ``<=``, ``>`` or ``>=`` (comparisons appear nowhere else)

Limits, so that no formula can keep SymPy busy for long: one line of printable ASCII, at
most MAX_LENGTH characters; AST nesting at most MAX_DEPTH, calls inside one another at most
MAX_CALL_DEPTH; every constant subexpression a
finite real number of magnitude at most 1e12; a constant exponent at most 64 in magnitude and
with denominator at most 1000 (``x**0.5``, ``x**(1/3)``, not ``x**0.3333``).  A power of
two constants is estimated with logarithms before SymPy computes it, so ``9**9**9**9`` is
refused at once.  A comparison may not contain max/min/where (SymPy would solve inequalities
to rewrite it); max and min of a max/min/where are distributed over its branches instead,
so clamps such as ``min(max(0, x), 6)`` work.

The tie rule at kinks: ``where(cond, p, q)`` takes q wherever cond is false.  ``max`` and
``min`` with exactly one constant argument take the constant at the tie, so ``max(0, x)``
and ``max(x, 0)`` both become ``Piecewise((x, x > 0), (0, True))`` (relu'(0) = 0) and
``min(x, 6)`` becomes ``Piecewise((x, x < 6), (6, True))``.  Otherwise ``max(p, q)`` is
``Piecewise((p, p > q), (q, True))`` and ``min(p, q)`` is ``Piecewise((p, p < q), (q, True))``.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from collections.abc import Mapping
from decimal import Decimal

import sympy

MAX_LENGTH = 400  # characters
MAX_DEPTH = 40  # nesting depth of the AST's expression nodes
# Calls inside calls. SymPy's assumptions (is x real?) on sinh/tanh/sigmoid nested over a log
# or a sqrt cost exponentially in the nesting: 4 levels take at most ~0.5 s, 5 up to seconds,
# 8 minutes. Real activations nest 2 or 3 (x*tanh(log(1 + exp(x)))).
MAX_CALL_DEPTH = 4
# The argument of exp, sinh, cosh, tanh, erf (sigmoid, softplus are built from exp) applied to
# a constant: beyond it the value is 0, 1 or huge, and SymPy/mpmath work on exp(-1e12) can
# exhaust memory.
MAX_FUNCTION_ARGUMENT = 100
_GROWING = (sympy.exp, sympy.sinh, sympy.cosh, sympy.tanh, sympy.erf)
_PIECEWISE = ("max", "min", "where")
MAX_DIGITS = 20  # significant digits of a literal
MAX_MAGNITUDE = 10**12  # of any constant; a nonzero literal must also be at least 1e-12
MAX_EXPONENT = 64  # magnitude of a constant exponent
MAX_DENOMINATOR = 1000  # of a fractional constant exponent
MAX_BITS = 4096  # of any integer in the result: 0.1234567891**64 has 2100
# SymPy simplifies c**(p/q) by factoring a number about c**q: 999999999999**0.999 takes seconds
MAX_ROOT_BITS = 8192
MAX_BRANCHES = 64  # of one max or min, counted after distributing it over max/min/where


class _Refused(Exception):
    """Raised by a function's builder; the walker adds the formula and the column."""


class FormulaError(ValueError):
    """One-line, user-facing message saying what is wrong and where (column)."""


def _compare(relation, p, q):
    # SymPy rewrites a condition that holds a Piecewise by solving inequalities, which can
    # take minutes; max/min distribute over a Piecewise argument instead (see _extremum)
    if p.has(sympy.Piecewise) or q.has(sympy.Piecewise):
        raise _Refused("a comparison cannot contain max/min/where (except max/min nested directly)")
    return relation(p, q)


def _branches(expr) -> int:
    return sum(_branches(e) for e, _ in expr.args) if isinstance(expr, sympy.Piecewise) else 1


def _extremum(relation, p, q):
    """max (relation >) or min (<) of p and q, by the tie rule of the module docstring."""
    if _branches(p) * _branches(q) > MAX_BRANCHES:
        raise _Refused(f"max/min nested too deeply (more than {MAX_BRANCHES} branches)")
    if isinstance(p, sympy.Piecewise):  # min(max(0, x), 6): one min per branch of the max
        return sympy.Piecewise(*[(_extremum(relation, e, q), c) for e, c in p.args])
    if isinstance(q, sympy.Piecewise):
        return sympy.Piecewise(*[(_extremum(relation, p, e), c) for e, c in q.args])
    if not p.free_symbols and q.free_symbols:  # the constant branch takes the tie
        p, q = q, p
    return sympy.Piecewise((p, _compare(relation, p, q)), (q, True))


# name -> (parameters, builder); the parameter named "cond" is read as a comparison
_FUNCTIONS = {
    "exp": (("u",), sympy.exp),
    "log": (("u",), sympy.log),
    "sqrt": (("u",), sympy.sqrt),
    "tanh": (("u",), sympy.tanh),
    "sigmoid": (("u",), lambda u: 1 / (1 + sympy.exp(-u))),
    "softplus": (("u",), lambda u: sympy.log(1 + sympy.exp(u))),
    "erf": (("u",), sympy.erf),
    "abs": (("u",), sympy.Abs),
    "cosh": (("u",), sympy.cosh),
    "sinh": (("u",), sympy.sinh),
    "max": (("p", "q"), lambda p, q: _extremum(operator.gt, p, q)),
    "min": (("p", "q"), lambda p, q: _extremum(operator.lt, p, q)),
    "where": (("cond", "p", "q"), lambda cond, p, q: sympy.Piecewise((p, cond), (q, True))),
}
FUNCTIONS: tuple[str, ...] = tuple(_FUNCTIONS)

_CONSTANTS = {"pi": sympy.pi, "e": sympy.E}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_COMPARISONS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_REFUSED_OPERATORS = {
    ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
    ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.Not: "not",
    ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
    ast.NotIn: "not in",
}
_REFUSED_NODES = {
    ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Lambda: "lambda",
    ast.NamedExpr: "assignment (:=)", ast.Starred: "a starred argument",
    ast.IfExp: "'if ... else' (use where(cond, p, q))", ast.BoolOp: "'and'/'or'",
    ast.Compare: "a comparison outside where(cond, p, q)", ast.JoinedStr: "an f-string",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator",
    ast.Tuple: "a tuple (stray comma?)", ast.List: "a list", ast.Set: "a set", ast.Dict: "a dict",
}
_POSTFIX = (ast.Attribute, ast.Subscript)
_LITERAL_KINDS = {str: "a string", bytes: "bytes", bool: "True/False", type(None): "None",
                  complex: "a complex number"}
_NOT_FINITE = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)


def _shorten(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _bits(expr: sympy.Expr) -> list[int]:
    return [max(abs(r.p), r.q).bit_length() for r in expr.atoms(sympy.Rational)]


class _Builder:
    """Walks one parsed formula; `indent` shifts columns back to the caller's text."""

    def __init__(self, text: str, source: str, indent: int, symbols: Mapping[str, sympy.Symbol]):
        self.text, self.source, self.indent, self.symbols = text, source, indent, symbols

    def error(self, problem: str, column: int = 0, hint: str = "") -> FormulaError:
        where = f" (column {column})" if column else ""
        hint = f"; {hint}" if hint else ""
        return FormulaError(f"formula {_shorten(self.text)}: {problem}{where}{hint}")

    def fail(self, node: ast.AST, problem: str, hint: str = "") -> FormulaError:
        # x.a and x[i] are reported at the '.' or '[', not at x
        offset = node.value.end_col_offset if isinstance(node, _POSTFIX) else node.col_offset
        return self.error(problem, offset + 1 + self.indent, hint)

    def snippet(self, node: ast.AST) -> str:
        return _shorten(ast.get_source_segment(self.source, node) or "?", 30)

    def build(self, node: ast.AST) -> sympy.Expr:
        handler = _NODES.get(type(node))
        if handler is None:
            while isinstance(node, _POSTFIX) and isinstance(node.value, _POSTFIX):
                node = node.value  # x.__class__.__mro__[1]: the first '.' is the problem
            kind = _REFUSED_NODES.get(type(node), type(node).__name__)
            raise self.fail(node, f"{kind} is not allowed")
        expr = handler(self, node)
        if max(_bits(expr), default=0) > MAX_BITS:
            raise self.fail(node, f"{self.snippet(node)} needs numbers of more than {MAX_BITS} bits")
        if not expr.free_symbols:
            self.value(expr, node)  # refuses constants that are not finite, real and moderate
        return expr

    def value(self, expr: sympy.Expr, node: ast.AST) -> sympy.Expr:
        """The real value of a constant: exact for a rational, else a Float."""
        if expr.has(*_NOT_FINITE):
            raise self.fail(node, f"{self.snippet(node)} is not a finite number")
        for function in expr.atoms(*_GROWING):  # exp(-1e12) is a tiny number, but later
            if abs(function.args[0].evalf(20)) > MAX_FUNCTION_ARGUMENT:  # work on it takes gigabytes
                raise self.fail(node, f"{self.snippet(node)}: the argument of a function of a constant "
                                f"is at most {MAX_FUNCTION_ARGUMENT:g} in magnitude")
        real, imag = (expr, sympy.S.Zero) if expr.is_Rational else expr.evalf(20).as_real_imag()
        if not (real.is_Number and imag.is_Number):
            raise self.fail(node, f"{self.snippet(node)} cannot be evaluated")
        if abs(imag) > 1e-9 * (1 + abs(real)):
            raise self.fail(node, f"{self.snippet(node)} is not a real number")
        if abs(real) > MAX_MAGNITUDE:
            raise self.fail(node, f"{self.snippet(node)} is too large (constants are at most 1e12)")
        return real

    def number(self, node: ast.Constant) -> sympy.Expr:
        if type(node.value) not in (int, float):
            kind = _LITERAL_KINDS.get(type(node.value), repr(node.value)[:20])
            raise self.fail(node, f"{kind} is not allowed")
        out_of_range = self.fail(
            node, f"number {self.snippet(node)} is out of range (magnitude 1e-12 to 1e12, or 0)")
        literal = ast.get_source_segment(self.source, node) or repr(node.value)
        try:  # ints by value (0x1f), floats by their text, so that 0.1 is exactly 1/10
            number = Decimal(node.value if type(node.value) is int else literal.replace("_", ""))
        except ArithmeticError:  # an exponent too large even for Decimal
            raise out_of_range from None
        if len("".join(map(str, number.as_tuple().digits)).strip("0")) > MAX_DIGITS:
            raise self.fail(node, f"number {self.snippet(node)} has more than {MAX_DIGITS} significant digits")
        if number and not Decimal("1e-12") <= number.copy_abs() <= MAX_MAGNITUDE:
            raise out_of_range
        return sympy.Rational(*number.as_integer_ratio())

    def name(self, node: ast.Name) -> sympy.Expr:
        if node.id in self.symbols:
            return self.symbols[node.id]
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        allowed = ", ".join([*self.symbols, *(c for c in _CONSTANTS if c not in self.symbols)])
        call = f" ({node.id} is a function: {node.id}(...))" if node.id in _FUNCTIONS else ""
        raise self.fail(node, f"unknown name {node.id!r}", f"allowed: {allowed}{call}")

    def unary(self, node: ast.UnaryOp) -> sympy.Expr:
        if type(node.op) not in _UNARY:
            symbol = _REFUSED_OPERATORS[type(node.op)]
            raise self.fail(node, f"operator {symbol!r} is not allowed", "allowed: + - * / **")
        return _UNARY[type(node.op)](self.build(node.operand))

    def binary(self, node: ast.BinOp) -> sympy.Expr:
        if type(node.op) not in _BINARY:
            symbol = _REFUSED_OPERATORS[type(node.op)]
            raise self.fail(node, f"operator {symbol!r} is not allowed", "allowed: + - * / ** (power)")
        left, right = self.build(node.left), self.build(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise self.fail(node.right, "division by zero")
        if isinstance(node.op, ast.Pow) and not right.free_symbols:
            self.check_power(left, right, node)
        if isinstance(node.op, ast.Pow) and right.free_symbols:
            self.check_variable_exponent(right, node)
        return _BINARY[type(node.op)](left, right)

    def check_variable_exponent(self, exponent: sympy.Expr, node: ast.BinOp) -> None:
        """31**(952896 + a): SymPy's simplification computes 31**952896 exactly (minutes, and
        gigabytes); numbers in a variable exponent are limited like a constant exponent."""
        big = next((n for n in exponent.atoms(sympy.Number) if abs(n) > MAX_EXPONENT), None)
        if big is not None:
            raise self.fail(node.right, f"exponent {self.snippet(node.right)} is too large "
                            f"(numbers in an exponent are at most {MAX_EXPONENT})")

    def check_power(self, base: sympy.Expr, exponent: sympy.Expr, node: ast.BinOp) -> None:
        """Refuses a constant exponent that is too large or too fine, and a power of two
        constants that would be too large or too costly: all before SymPy computes it."""
        p, shown = self.value(exponent, node.right), self.snippet(node.right)
        if abs(p) > MAX_EXPONENT:
            raise self.fail(node.right, f"exponent {shown} is too large (at most {MAX_EXPONENT})")
        if exponent.is_Rational and exponent.q > MAX_DENOMINATOR:
            raise self.fail(node.right, f"exponent {shown} is too fine a fraction "
                            f"(denominator at most {MAX_DENOMINATOR}: write 1/3, not 0.3333)")
        if exponent.is_Rational and exponent.q * sum(_bits(base)) > MAX_ROOT_BITS:
            raise self.fail(node, f"{self.snippet(node)} is too costly to compute exactly")
        if base.free_symbols:
            return
        b = self.value(base, node.left)
        if b == 0 and p < 0:
            raise self.fail(node.right, "division by zero (0 to a negative power)")
        if b != 0 and p * sympy.log(sympy.Float(abs(b), 20)) > math.log(MAX_MAGNITUDE) + 1e-9:
            raise self.fail(node, f"{self.snippet(node)} is too large (constants are at most 1e12)")

    def call(self, node: ast.Call) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            if type(node.func) in _REFUSED_NODES:
                self.build(node.func)  # raises, saying what is wrong
            raise self.fail(node.func, "only named functions can be called")
        name = node.func.id
        if name not in _FUNCTIONS:
            raise self.fail(node.func, f"unknown function {name!r}", f"allowed: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise self.fail(node.keywords[0], f"keyword arguments are not allowed in {name}()")
        parameters, builder = _FUNCTIONS[name]
        if len(node.args) != len(parameters):
            raise self.fail(node, f"{name}() takes {len(parameters)} argument(s), got {len(node.args)}",
                            f"use {name}({', '.join(parameters)})")
        args = [self.condition(arg) if parameter == "cond" else self.build(arg)
                for parameter, arg in zip(parameters, node.args)]
        try:
            return builder(*args)
        except _Refused as refused:
            raise self.fail(node, str(refused)) from None

    def condition(self, node: ast.AST) -> sympy.Basic:
        if not isinstance(node, ast.Compare):
            raise self.fail(node, "the condition of where() must be a comparison such as x > 0")
        if len(node.ops) != 1:
            raise self.fail(node, "chained comparisons are not allowed")
        compare = _COMPARISONS.get(type(node.ops[0]))
        if compare is None:
            symbol = _REFUSED_OPERATORS[type(node.ops[0])]
            raise self.fail(node, f"comparison {symbol!r} is not allowed", "use <, <=, > or >=")
        try:
            return _compare(compare, self.build(node.left), self.build(node.comparators[0]))
        except _Refused as refused:
            raise self.fail(node, str(refused)) from None


_NODES = {ast.Constant: _Builder.number, ast.Name: _Builder.name, ast.UnaryOp: _Builder.unary,
          ast.BinOp: _Builder.binary, ast.Call: _Builder.call}


def _too_deep(tree: ast.Expression) -> tuple[ast.AST, str] | None:
    """The first expression node nested deeper than MAX_DEPTH, or the first call nested in
    more than MAX_CALL_DEPTH - 1 calls (max, min and where not counted: their branches are
    limited by MAX_BRANCHES), with the problem; found without recursion."""
    stack = [(tree.body, 1, 0)]
    while stack:
        node, depth, calls = stack.pop()
        if depth > MAX_DEPTH:
            return node, f"nested too deeply (more than {MAX_DEPTH} levels)"
        calls += isinstance(node, ast.Call) and getattr(node.func, "id", "") not in _PIECEWISE
        if calls > MAX_CALL_DEPTH:
            return node, f"functions nested too deeply (more than {MAX_CALL_DEPTH} calls inside one another)"
        stack.extend((child, depth + 1, calls) for child in ast.iter_child_nodes(node)
                     if isinstance(child, ast.expr))
    return None


def parse_formula(text: str, symbols: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    """Build a SymPy expression from `text`; `symbols` are the allowed variable names
    (e.g. ``{"x": X}`` for an activation, ``{"a": A, "y": Y}`` for a loss).

    Raises FormulaError (a ValueError) with a one-line message for anything else.
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be text, not {type(text).__name__}")
    source = text.lstrip(" ")  # Python refuses an indented expression
    builder = _Builder(text, source, len(text) - len(source), symbols)
    if len(text) > MAX_LENGTH:
        raise builder.error(f"too long ({len(text)} characters, at most {MAX_LENGTH})")
    if not text.strip():
        raise builder.error("empty formula")
    for column, char in enumerate(text, 1):
        if ord(char) > 127:  # also because Python folds 'ｘ' and '𝑥' into 'x'
            raise builder.error(f"non-ASCII character {char!r} is not allowed", column)
        if not char.isprintable():
            raise builder.error(f"control character {char!r} is not allowed (one line only)", column)
        if char == "#":
            raise builder.error("comments ('#') are not allowed", column)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for '1if x else 2'
            tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        column = (err.offset or len(source) + 1) + builder.indent  # offset 0: at the end
        message = (err.msg or "invalid syntax").splitlines()[0]
        raise builder.error(f"{message} at column {column}") from None
    except (RecursionError, MemoryError, ValueError):
        raise builder.error("too complex to parse") from None
    deep = _too_deep(tree)
    if deep is not None:
        raise builder.fail(*deep)
    try:
        expr = builder.build(tree.body)
    except FormulaError:
        raise
    except (RecursionError, MemoryError):
        raise builder.error("too complex to build") from None
    except Exception as err:  # SymPy refusing something: the caller still gets one line
        detail = (str(err).splitlines() or [type(err).__name__])[0][:80]
        raise builder.error(f"cannot be built: {detail}") from None
    if not isinstance(expr, sympy.Expr) or expr.has(*_NOT_FINITE):
        raise builder.error("the result is not a finite expression")
    return expr
