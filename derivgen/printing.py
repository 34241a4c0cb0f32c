"""SymPy printers for the documents (LaTeX) and the generated code (NumPy).

LaTeX: layer superscripts on a, z, delta, W, b; the Iverson bracket [j = k] for the
Kronecker delta (so delta stays the error signal); phi for the activation; n and m (the
widths of this layer and the one below) as n_l, n_{l-1}. `shape="vector"` prints the
per-unit scalars a, z, y, delta as bold vectors of one sample and `shape="batch"` as the
batch matrices A, Z, Y, Delta (rows are samples); products of them become elementwise
(odot), and a 0/1 indicator becomes an Iverson bracket.
NumPy: per-unit scalars become batch arrays (rows are samples), a sum over units becomes
`np.sum(..., axis=1, keepdims=True)`; sigmoid, log(1 + e^u) and log-sum-exp are printed
as the generated module's stable helpers; constants as Python floats, so float32 stays
float32 (NumPy treats Python scalars as weak).
"""

import functools

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

_GREEK = {"delta": r"\delta"}
_LAYERED = {"a", "z", "W", "b", "delta"}
_WIDTHS = {"n": "layer", "m": "prev_layer"}
_UNIT = {"a", "z", "y"}
_SHAPED = {
    "vector": {"a": r"\mathbf{a}", "z": r"\mathbf{z}", "y": r"\mathbf{y}", "delta": r"\boldsymbol{\delta}"},
    "batch": {"a": "A", "z": "Z", "y": "Y", "delta": r"\Delta"},
}


class MathPrinter(LatexPrinter):
    """LaTeX for the documents. Settings: `layer` and `prev_layer` (None, an int, or a
    string such as 'l'); `shape` None (per unit), "vector" or "batch"; `index`, a unit
    index for the per-unit scalars a, z, y (a^{(L)}_k)."""

    _default_settings = {**LatexPrinter._default_settings, "layer": None, "prev_layer": None, "shape": None,
                         "index": None, "words": ("for", "otherwise")}

    def _sup(self, name: str, previous: bool = False) -> str:
        layer = self._settings["prev_layer" if previous else "layer"]
        base = _GREEK.get(name, name)
        return f"{base}^{{({layer})}}" if layer is not None and name in _LAYERED else base

    def _is_array(self, expr) -> bool:
        return self._settings["shape"] is not None and isinstance(expr, sp.Expr) and \
            any(s.name in _SHAPED["vector"] for s in expr.free_symbols)

    def _print_Symbol(self, expr, style="plain"):
        shape, layer = self._settings["shape"], self._settings["layer"]
        if shape is not None and expr.name in _SHAPED[shape]:
            base = _SHAPED[shape][expr.name]
            return f"{base}^{{({layer})}}" if layer is not None and expr.name != "y" else base
        if expr.name in _WIDTHS and self._settings[_WIDTHS[expr.name]] is not None:
            return f"n_{{{self._settings[_WIDTHS[expr.name]]}}}"
        if self._settings["index"] is not None and expr.name in _UNIT:
            return f"{self._sup(expr.name)}_{{{self._settings['index']}}}"
        if expr.name in _LAYERED and layer is not None:
            return self._sup(expr.name)
        return super()._print_Symbol(expr, style)

    @staticmethod
    def _factor_rank(factor) -> int:
        if factor.is_number:
            return 0
        if isinstance(factor, sp.Indexed) and factor.base.label.name in ("W", "delta"):
            return 1 if factor.base.label.name == "W" else 2
        if isinstance(factor, (sp.Function, sp.Sum)) and not isinstance(factor, sp.KroneckerDelta):
            return 4
        return 3

    def _reordered(self, expr) -> str | None:
        """The order a teacher writes: numbers, W, delta, plain factors, then functions and
        sums (W_ij delta_i, delta_i a_j, y_k log(a_k); SymPy prints a_j delta_i, log(a_k) y_k).
        Products without a denominator only; None when SymPy's order already is that."""
        sign = ""
        if expr.could_extract_minus_sign():
            sign, expr = "- ", -expr
        if not expr.is_Mul or any(f.is_Pow and f.exp.is_negative for f in expr.args):
            return None
        factors = expr.as_ordered_factors()
        ordered = sorted(factors, key=self._factor_rank)
        if ordered == factors:
            return None
        parts = []
        for index, factor in enumerate(ordered):
            tex = self._print(factor)
            if self._needs_mul_brackets(factor, first=index == 0, last=index == len(ordered) - 1):
                tex = rf"\left({tex}\right)"
            parts.append(tex)
        return sign + " ".join(parts)

    def _coefficient_of_sum(self, expr) -> str | None:
        """1/2 sum(...) rather than a fraction with the sum on top."""
        coeff, rest = expr.as_coeff_Mul()
        if not (coeff.is_Rational and not coeff.is_Integer and rest.has(sp.Sum)) or \
                any(f.is_Pow and f.exp.is_negative for f in sp.Mul.make_args(rest)):
            return None
        sign = "- " if coeff < 0 else ""
        body = self._print(rest) if isinstance(rest, sp.Sum) else self.parenthesize(rest, PRECEDENCE["Mul"])
        return f"{sign}{self._print(abs(coeff))} {body}"

    def _print_Mul(self, expr):
        # Each call sets the separator LatexPrinter reads on entry, so nested calls
        # never inherit an outer one.
        factors = expr.args
        arrays = [f for f in factors if self._is_array(f)]
        if len(arrays) < 2:
            if self._settings["shape"] is None:
                special = self._coefficient_of_sum(expr) or self._reordered(expr)
                if special is not None:
                    return special
            trailing_number = factors[0] is not sp.S.One and any(f.is_Number for f in factors[1:])
            self._settings["mul_symbol_latex"] = r" \cdot " if trailing_number else " "
            return super()._print_Mul(expr)
        numbers = [f for f in factors if not self._is_array(f)]
        self._settings["mul_symbol_latex"] = r" \odot "
        body = super()._print_Mul(sp.Mul(*arrays, evaluate=False))
        coeff = sp.Mul(*numbers)
        if coeff == 1:
            return body
        if coeff == -1:
            return "- " + body
        self._settings["mul_symbol_latex"] = " "
        return f"{self._print(coeff)} {body}"

    def _print_Piecewise(self, expr):
        if self._settings["shape"] is not None and len(expr.args) == 2 and \
                expr.args[0][0] == 1 and expr.args[1][0] == 0:
            return rf"[{self._print(expr.args[0][1])}]"
        # SymPy's cases, with the words of the document's language (setting `words`)
        word_for, word_otherwise = self._settings["words"]
        rows = []
        for value, condition in expr.args:
            if condition is sp.true:
                rows.append(rf"{self._print(value)} & \text{{{word_otherwise}}}")
            else:
                rows.append(rf"{self._print(value)} & \text{{{word_for}}}\: {self._print(condition)}")
        return r"\begin{cases} " + r" \\".join(rows) + r" \end{cases}"

    def _print_Indexed(self, expr):
        name = expr.base.label.name
        indices = "".join(self._print(i) for i in expr.indices)
        if name == "a_prev":
            return f"{self._sup('a', previous=True)}_{{{indices}}}"
        if name == "g":
            return f"g_{{{indices}}}"
        return f"{self._sup(name)}_{{{indices}}}"

    def _helper_print_standard_power(self, expr, template: str) -> str:
        # a layered entry W^{(l)}_{ij} squared needs brackets: W^{(l)}_{ij}^{2} is a double superscript
        if isinstance(expr.base, sp.Indexed) and "^" in self._print(expr.base):
            return template % (rf"\left({self._print(expr.base)}\right)", self._print(expr.exp))
        return super()._helper_print_standard_power(expr, template)

    def _print_KroneckerDelta(self, expr, exp=None):
        return rf"[{self._print(expr.args[0])} = {self._print(expr.args[1])}]"

    def _print_Function(self, expr, exp=None):
        name = expr.func.__name__
        if name == "phi":
            return rf"\varphi({self._print(expr.args[0])})"
        if name == "ell":
            return r"\ell"
        return super()._print_Function(expr, exp)

    def _print_Derivative(self, expr):
        func, (var, _) = expr.expr, expr.variable_count[0]
        if getattr(func, "func", None) is not None and getattr(func.func, "__name__", "") == "phi":
            return rf"\varphi'({self._print(var)})"
        top = r"\ell" if getattr(func.func, "__name__", "") == "ell" else self._print(func)
        return rf"\frac{{\partial {top}}}{{\partial {self._print(var)}}}"


def _constants_out_of_sums(expr):
    """-sum(-y_j) reads better as sum(y_j): a number multiplying a summand goes outside."""
    def numeric_factor(e):
        return isinstance(e, sp.Sum) and e.function.as_coeff_Mul()[0] != 1

    def pull(e):
        coeff, rest = e.function.as_coeff_Mul()
        return coeff * sp.Sum(rest, *e.limits)

    return expr.replace(numeric_factor, pull) if isinstance(expr, sp.Basic) and expr.has(sp.Sum) else expr


def latex(expr, layer=None, prev_layer=None, shape=None, index=None, words=("for", "otherwise")) -> str:
    """LaTeX for a document; see MathPrinter for the settings (`words`: the words of a
    case distinction, "for" and "otherwise" in English)."""
    printer = MathPrinter({"layer": layer, "prev_layer": prev_layer, "shape": shape, "index": index,
                           "words": tuple(words)})
    return printer.doprint(_constants_out_of_sums(expr))


# ---------------------------------------------------------------- NumPy

def _sigmoid_argument(expr: sp.Expr):
    """u when expr is 1 + exp(-u) (so that 1/expr is sigmoid(u)), else None."""
    if isinstance(expr, sp.Add) and len(expr.args) == 2 and sp.S.One in expr.args:
        other = expr.args[0] if expr.args[1] == 1 else expr.args[1]
        if isinstance(other, sp.exp):
            return -other.args[0]
    return None


@functools.lru_cache(maxsize=1024)
def sigmoid_form(expr: sp.Expr, variable: sp.Symbol) -> sp.Expr:
    """Rewrite e^{-v}, e^{v} through s = sigmoid(v) when the expression is built of
    1/(1 + e^{-v}) pieces, so that nothing overflows: e^{-v} = (1 - s)/s.
    Cached: a deep network asks for the same layer's expression once per layer, and the
    simplification costs up to a second for a custom activation."""
    s = sp.Symbol("_s")
    if not any(_sigmoid_argument(p.base) == variable for p in expr.atoms(sp.Pow)) and \
            not any(_sigmoid_argument(p.base) == -variable for p in expr.atoms(sp.Pow)):
        return expr
    rewritten = sp.simplify(expr.subs({sp.exp(-variable): (1 - s) / s, sp.exp(variable): s / (1 - s)}))
    if rewritten.has(sp.exp):
        return expr
    return rewritten.subs(s, 1 / (1 + sp.exp(-variable)))


# Functions the generated module defines itself (stable or NumPy-only spellings).
_sigmoid, _erf = sp.Function("_sigmoid"), sp.Function("_erf")
HELPERS = ("_sigmoid", "_erf", "_logsumexp", "_softmax")


def extremum(expr: sp.Expr) -> tuple[str, sp.Expr, sp.Expr] | None:
    """("np.maximum" or "np.minimum", p, q) for max(p, q) or min(p, q) in the form the
    formula parser and the catalog build them, Piecewise((p, p > q), (q, True)); else None."""
    if not isinstance(expr, sp.Piecewise) or len(expr.args) != 2 or expr.args[1][1] is not sp.true:
        return None
    (value, condition), (other, _) = expr.args
    if not (isinstance(condition, sp.core.relational.Relational) and condition.rel_op in ("<", ">")
            and {condition.lhs, condition.rhs} == {value, other}):
        return None
    bigger = (condition.rel_op == ">") == (condition.lhs == value)
    return ("np.maximum" if bigger else "np.minimum"), value, other


def _with_sigmoids(expr: sp.Expr) -> sp.Expr:
    """(1 + e^{-u})^{-p} -> sigmoid(u)^p, so the printer calls the stable helper."""
    def is_sigmoid_power(e):
        return e.is_Pow and e.exp.is_Integer and e.exp < 0 and _sigmoid_argument(e.base) is not None
    return expr.replace(is_sigmoid_power, lambda e: _sigmoid(_sigmoid_argument(e.base)) ** -e.exp)


class CodePrinter(NumPyPrinter):
    """NumPy for the generated module. `names` maps SymPy symbols and indexed bases to
    array names."""

    _default_settings = {**NumPyPrinter._default_settings, "names": {}, "fully_qualified_modules": False}

    def __init__(self, settings=None):
        super().__init__(settings)
        self.helpers: set[str] = set()

    def _module_format(self, fqn, register=True):
        return "np." + fqn.split(".")[-1] if fqn.startswith("numpy.") else super()._module_format(fqn, register)

    def _print_Symbol(self, expr):
        return self._settings["names"].get(expr.name, expr.name)

    def _print_Indexed(self, expr):
        return self._settings["names"][expr.base.label.name]

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return repr(float(expr)) if expr.q != 1 else str(expr.p)

    def _print_Integer(self, expr):
        return str(expr.p)

    def _operand(self, expr) -> str:
        """A ufunc's argument: a number as a float, which NumPy converts faster than an int."""
        return repr(float(expr)) if expr.is_Number else self._print(expr)

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_Sum(self, expr):
        if len(expr.limits) > 1:  # over every index: a number
            body = expr.function
            if body.is_Pow and body.exp == 2 and isinstance(body.base, sp.Indexed):
                name = self._print(body.base)
                return f"np.vdot({name}, {name})"
            return f"np.sum({self._print(body)})"
        return f"np.sum({self._print(expr.function)}, axis=1, keepdims=True)"

    def _print_Function(self, expr):
        name = expr.func.__name__
        if name in HELPERS:
            self.helpers.add(name)
            return f"{name}({', '.join(self._print(arg) for arg in expr.args)})"
        return super()._print_Function(expr)

    def _print_Pow(self, expr, rational=False):
        if expr.exp == sp.Rational(1, 2):
            return f"np.sqrt({self._print(expr.base)})"
        return super()._print_Pow(expr, rational=rational)

    def _print_log(self, expr):
        arg = expr.args[0]
        if isinstance(arg, sp.Sum) and isinstance(arg.function, sp.exp):
            self.helpers.add("_logsumexp")
            return f"_logsumexp({self._print(arg.function.args[0])})"
        if isinstance(arg, sp.Add) and len(arg.args) == 2 and 1 in arg.args:
            other = arg.args[0] if arg.args[1] == 1 else arg.args[1]
            if isinstance(other, sp.exp):
                return f"np.logaddexp(0.0, {self._print(other.args[0])})"
        return f"np.log({self._print(arg)})"

    def _print_erf(self, expr):
        return self._print_Function(_erf(*expr.args))

    def _print_ComplexInfinity(self, expr):
        # SymPy's derivative of abs(y/a) carries conditions such as zoo*y < 0 (at a = 0):
        # undefined, so NaN, whose comparisons are all false
        return "np.nan"

    def _print_sign(self, expr):
        return f"np.sign({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        (value, condition), rest = expr.args[0], expr.args[1:]
        if len(rest) == 1 and rest[0][1] is sp.true:
            other = rest[0][0]
            # A 0/1 indicator is a boolean mask: multiplying by it keeps the array's dtype.
            if value == 1 and other == 0:
                return self._print(condition)
            pair = extremum(expr)
            if pair is not None:
                function, first, second = pair
                return f"{function}({self._operand(first)}, {self._operand(second)})"
            other_text = self._print(other)
        else:
            other_text = self._print(sp.Piecewise(*rest))
        return f"np.where({self._print(condition)}, {self._print(value)}, {other_text})"


def prepare(expr: sp.Expr) -> sp.Expr:
    """Irrational constants as floats (Python floats keep float32 arrays float32), and
    1/(1 + e^{-u}) as the stable sigmoid helper."""
    numeric = expr.xreplace({c: sp.Float(c, 17) for c in expr.atoms(sp.NumberSymbol)})
    numeric = numeric.replace(lambda e: e.is_Pow and e.is_number and not e.is_Rational,
                              lambda e: e.evalf(17))
    return _with_sigmoids(numeric)


def numpy_code(expr, names: dict[str, str], helpers: set[str] | None = None) -> str:
    """Print expr as a NumPy expression over batch arrays; helper functions it needs are
    added to `helpers`."""
    printer = CodePrinter({"names": names})
    text = printer.doprint(prepare(expr))
    if helpers is not None:
        helpers |= printer.helpers
    return text


# NumPy ufuncs (and the module's own helpers) that can write into an existing array.
_WRITES_OUT = {"np.maximum", "np.minimum", "np.tanh", "np.exp", "np.log", "np.logaddexp", "np.sqrt",
               "np.sinh", "np.cosh", "np.abs", "np.sign", "_sigmoid", "_softmax"}


def with_out(code: str, target: str) -> str | None:
    """`f(args)` as `f(args, out=target)` when the whole of `code` is one call of a function
    that can write in place; None otherwise."""
    name, paren, rest = code.partition("(")
    if not paren or name not in _WRITES_OUT or not code.endswith(")"):
        return None
    depth = 0
    for position, char in enumerate(code):
        depth += (char == "(") - (char == ")")
        if depth == 0 and position >= len(name) and position != len(code) - 1:
            return None  # the first call closes before the end: not a single call
    return f"{code[:-1]}, out={target})"
