"""The engine: SymPy derives every derivative, delta and simplification, and proves them.

Each layer type is derived once at generic width (index notation) and cached; a network
is a composition of those results, so the cost does not depend on widths and grows
linearly with depth. Nothing here is keyed by activation or loss names.
"""

import functools
import math

import sympy as sp

from . import naming as nm
from .derivation import ActivationRule, Derivation, DenseRules, LossRule, OutputDelta, PenaltyRules, Step
from .spec import NetworkSpec

SAMPLE_POINTS = (-2.3, -1.1, -0.4, 0.3, 0.9, 1.7, 2.6)
CHECK_POINTS = (-3.7, -2.05, -1.3, -0.6, -0.15, 0.0, 0.2, 0.55, 1.2, 1.9, 3.3)
TOLERANCE = 1e-9


# ---------------------------------------------------------------- helpers

def contract(expr: sp.Expr) -> sp.Expr:
    """Evaluate sums against Kronecker deltas (index in range), and pull out factors
    that do not depend on the summation index."""

    def one(s: sp.Sum) -> sp.Expr:
        if len(s.limits) > 1:  # a double sum is a sum of sums
            return sp.Sum(one(sp.Sum(s.function, s.limits[0])), *s.limits[1:])
        (idx, lo, hi), = s.limits
        terms = sp.Add.make_args(sp.expand(s.function))
        out = []
        for term in terms:
            for d in term.atoms(sp.KroneckerDelta):
                if idx in d.args:
                    other = d.args[0] if d.args[1] == idx else d.args[1]
                    out.append((term / d).subs(idx, other))
                    break
            else:
                outer, inner = term.as_independent(idx, as_Add=False)
                out.append(outer * sp.Sum(inner, (idx, lo, hi)))
        return sp.Add(*out)

    previous = None
    while previous != expr:
        previous, expr = expr, expr.replace(lambda e: isinstance(e, sp.Sum), one)
    return expr


def _numeric(expr: sp.Expr, value: float) -> complex | None:
    try:
        result = complex(expr.subs(nm.Z, sp.Float(value, 30)).evalf(30))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return result if all(map(math.isfinite, (result.real, result.imag))) else None


def _equal_at_points(left: sp.Expr, right: sp.Expr, points=CHECK_POINTS) -> bool:
    for p in points:
        u, v = _numeric(left, p), _numeric(right, p)
        if u is None or v is None or abs(u - v) > TOLERANCE * (1 + abs(u)):
            return False
    return True


def _differ_at_points(left: sp.Expr, right: sp.Expr, tolerance: float = 1e-20) -> bool:
    """True when, at some check point where both are finite, left - right computed to 30
    digits is clearly not zero (equal expressions give ~1e-30; a rational fit of log(2)
    differs by ~1e-16)."""
    difference = left - right
    if not difference.free_symbols <= {nm.Z}:
        return False
    for p in CHECK_POINTS:
        u, d = _numeric(left, p), _numeric(difference, p)
        if u is not None and d is not None and abs(d) > tolerance * (1 + abs(u)):
            return True
    return False


def prove_equal(left: sp.Expr, right: sp.Expr) -> str:
    """'symbolic' when SymPy simplifies left - right to 0, 'numeric' when it only agrees
    at sample points (the fallback), '' when they differ."""
    difference = sp.piecewise_fold(left - right)
    if _differ_at_points(left, right):  # simplify could take minutes to fail (10**z vs a fit of log(10))
        return ""
    if sp.simplify(difference) == 0 or sp.simplify(difference.rewrite(sp.exp)) == 0:
        return "symbolic"
    return "numeric" if difference.free_symbols <= {nm.Z} and _equal_at_points(left, right) else ""


def _branches(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Basic]]:
    return list(expr.args) if isinstance(expr, sp.Piecewise) else [(expr, sp.true)]


def _holds(condition, point: float) -> bool:
    """Whether a branch's condition holds at z = point; False where it is not a real
    comparison there (max(x, log(x)) at x < 0 compares with a complex number)."""
    try:
        return bool(condition.subs(nm.Z, point))
    except TypeError:
        return False


def _polynomial_in(f: sp.Expr, fp: sp.Expr, condition) -> sp.Expr | None:
    """Find c0 + c1 a + c2 a^2 equal to fp where a = f (on the points that satisfy
    `condition`), by least squares; the caller proves the candidate."""
    import numpy as np

    points = [p for p in SAMPLE_POINTS if condition is sp.true or _holds(condition, p)]
    rows, rhs = [], []
    for p in points:
        fv, dv = _numeric(f, p), _numeric(fp, p)
        if fv is None or dv is None or fv.imag or dv.imag:
            return None
        rows.append([1.0, fv.real, fv.real ** 2])
        rhs.append(dv.real)
    if len(rows) < 3:
        return None
    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    if np.max(np.abs(np.array(rows) @ coef - rhs)) > 1e-8:
        return None
    c = [sp.nsimplify(float(v), rational=True, tolerance=1e-10) for v in coef]
    return sp.expand(c[0] + c[1] * nm.A + c[2] * nm.A ** 2)


def _condition_in_output(condition, f: sp.Expr):
    """Rewrite `z > c` (and <, >=, <=) as `a > f(c)`: valid for a non-decreasing f,
    which the caller's numeric check confirms."""
    if condition is sp.true:
        return sp.true
    if not isinstance(condition, sp.core.relational.Relational):
        return None
    lhs, rhs = condition.lhs, condition.rhs
    try:  # TypeError: another branch's condition is not real at that point
        if lhs == nm.Z and rhs.is_number:
            return condition.func(nm.A, f.subs(nm.Z, rhs))
        if rhs == nm.Z and lhs.is_number:
            return condition.func(f.subs(nm.Z, lhs), nm.A)
    except TypeError:
        return None
    return None


def in_terms_of_output(f: sp.Expr, fp: sp.Expr) -> tuple[sp.Expr | None, str]:
    """g with f'(z) = g(f(z)), branch by branch, proved; (None, '') when none is found."""
    f_branches, fp_branches = _branches(f), _branches(fp)
    if len(f_branches) != len(fp_branches):
        return None, ""
    pieces = []
    for (fi, ci), (di, di_cond) in zip(f_branches, fp_branches):
        if ci != di_cond:
            return None, ""
        candidate = _polynomial_in(fi, di, ci)
        condition = _condition_in_output(ci, f)
        if candidate is None or condition is None:
            return None, ""
        pieces.append((candidate, condition))
    g = pieces[0][0] if len(pieces) == 1 else sp.Piecewise(*pieces)
    # The proof: branch by branch symbolically, and the whole (conditions included) at
    # points on both sides of every kink and on it.
    kinds = {prove_equal(di, candidate.subs(nm.A, fi))
             for (fi, _), (di, _), (candidate, _) in zip(f_branches, fp_branches, pieces)}
    composed = g.subs(nm.A, f)
    kinks = [float(c.rhs if c.lhs == nm.Z else c.lhs) for _, c in f_branches if c is not sp.true]
    near = [k + d for k in kinks for d in (-1e-3, 0.0, 1e-3)]
    if "" in kinds or not _equal_at_points(composed, fp, CHECK_POINTS + tuple(near)):
        return None, ""
    return g, "numeric" if "numeric" in kinds else "symbolic"


def _tidy_factored(expr: sp.Expr) -> sp.Expr:
    expr = sp.factor(expr)
    coeff, factors = expr.as_coeff_mul()
    sign, out = (-1 if coeff < 0 else 1), []
    for factor in factors:
        base, power = factor.as_base_exp()
        if base.is_Add and base.could_extract_minus_sign() and power.is_integer and power % 2:
            sign, base = -sign, -base
        out.append((base, power))
    for index, (base, power) in enumerate(out):
        # -(a - 1) reads better as (1 - a): flip a factor whose constant becomes positive.
        if sign < 0 and base.is_Add and power.is_integer and power % 2 and base.as_coeff_Add()[0] < 0:
            sign, out[index] = 1, (-base, power)
    parts = [sp.Pow(base, power, evaluate=False) if power != 1 else base for base, power in out]
    numeric = sign * abs(coeff)
    if numeric != 1 or not parts:
        parts.insert(0, numeric)
    return sp.Mul(*parts, evaluate=False) if len(parts) > 1 else parts[0]


def tidy(expr: sp.Expr) -> sp.Expr:
    """The shorter of the factored and the expanded form, written as a teacher would:
    (a - y) rather than (-a + y), a(1 - a) rather than -a(a - 1), 1 - a^2. Unevaluated,
    so the printers keep the shape; Piecewise branch by branch."""
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*[(tidy(e), c) for e, c in expr.args])
    if expr.has(sp.Sum):
        return expr
    return min((_tidy_factored(expr), sp.expand(expr)), key=sp.count_ops)


# ---------------------------------------------------------------- activations

def _eq(lhs, rhs):
    return sp.Eq(lhs, rhs, evaluate=False)


@functools.lru_cache(maxsize=None)
def _elementwise(definition) -> ActivationRule:
    f = definition.expr.subs(nm.X, nm.Z)
    fp = sp.diff(f, nm.Z)
    fp = sp.piecewise_fold(fp)
    g, how = in_terms_of_output(f, fp)
    phi, dphi = sp.Function("phi")(nm.Z), sp.Derivative(sp.Function("phi")(nm.Z), nm.Z)
    steps = [Step(_eq(phi, f), "definition"), Step(_eq(dphi, fp), "differentiate")]
    if g is not None:
        g = tidy(g)
        steps.append(Step(_eq(dphi, g), f"with $a = \\varphi(z)$; verified {how}ally"))
    return ActivationRule(definition, f, fp, g, how, tuple(steps))


@functools.lru_cache(maxsize=None)
def _softmax(definition) -> ActivationRule:
    S = sp.Sum(sp.exp(nm.z[nm.i]), (nm.i, 1, nm.n))
    a_j = sp.exp(nm.z[nm.j]) / S
    raw = sp.diff(a_j, nm.z[nm.k])
    contracted = contract(raw)
    # exp(z_t) = a_t * S, from the definition.
    in_a = sp.expand(contracted.subs({sp.exp(nm.z[t]): nm.a[t] * S for t in (nm.j, nm.k)}))
    jacobian = sp.factor_terms(in_a)
    check = sp.simplify(in_a.subs({nm.a[t]: sp.exp(nm.z[t]) / S for t in (nm.j, nm.k)}) - contracted)
    if check != 0:
        raise AssertionError("softmax Jacobian failed its check")  # engine bug, not user input
    lhs = sp.Derivative(nm.a[nm.j], nm.z[nm.k])
    steps = (Step(_eq(nm.a[nm.j], a_j), "definition"),
             Step(_eq(lhs, contracted), "quotient rule; the sum contributes only at i = k"),
             Step(_eq(lhs, jacobian), "with $a_j = e^{z_j} / \\sum_i e^{z_i}$"))
    return ActivationRule(definition, a_j, jacobian, jacobian, "symbolic", steps)


def activation_rule(definition) -> ActivationRule:
    return _softmax(definition) if definition.is_softmax else _elementwise(definition)


@functools.lru_cache(maxsize=None)
def loss_rule(definition) -> LossRule:
    return LossRule(definition, definition.expr, sp.simplify(sp.diff(definition.expr, nm.A)))


# ---------------------------------------------------------------- output delta

def _conclude(steps: list[Step], result: sp.Expr, reason: str) -> None:
    """Add the proved result, or give the proof as the reason of an equal last step."""
    last = steps[-1]
    if not isinstance(last.expr, sp.Eq) and sp.simplify(last.expr - result) == 0:
        steps[-1] = Step(result, f"{last.reason}; {reason}")
    else:
        steps.append(Step(result, reason))


# Values for a quick look at delta / (a - y) before simplify is asked to prove it constant.
RATIO_POINTS = ((0.3, 0.2, 0.45, 1.3), (1.1, 0.7, 0.15, 0.6), (-0.7, 0.4, 0.8, 2.1))


def _clearly_not_constant(expr: sp.Expr) -> bool:
    """True when expr takes different values at RATIO_POINTS: simplify then need not try
    (for mish with a quartic loss it takes tens of seconds; with some piecewise losses under
    softmax it never ends). Sums and indexed entries are looked at as independent numbers,
    which leaves a constant constant. False when it may be constant, or cannot be told
    this way: the proof decides."""
    shown = expr
    for kind in (sp.Sum, sp.Indexed):  # in a fixed order: the same points every run
        shown = shown.xreplace({e: sp.Dummy() for e in sorted(shown.atoms(kind), key=sp.default_sort_key)})
    symbols = sorted(shown.free_symbols, key=sp.default_sort_key)
    if not 0 < len(symbols) <= len(RATIO_POINTS[0]):
        return False
    values = []
    for point in RATIO_POINTS:
        u = _value(shown, {s: sp.Float(v, 30) for s, v in zip(symbols, point)})
        if u is None:
            return False
        values.append(u)
    return any(abs(u - values[0]) > 1e-6 * (1 + abs(values[0])) for u in values)


def _value(expr: sp.Expr, point: dict) -> complex | None:
    try:  # TypeError also when a Piecewise condition is not real at the point
        result = complex(expr.subs(point).evalf(30))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return result if all(map(math.isfinite, (result.real, result.imag))) else None


def _collapse(delta: sp.Expr, a: sp.Expr, y: sp.Expr) -> sp.Expr | None:
    """The constant c with delta = c (a - y), proved by simplification, else None."""
    if _clearly_not_constant(delta / (a - y)):
        return None
    ratio = sp.simplify(sp.cancel(sp.together(delta / (a - y))))
    if ratio.free_symbols or ratio == 0 or not ratio.is_number:
        return None
    return ratio if sp.simplify(delta - ratio * (a - y)) == 0 else None


def _logs_are_stable(expr: sp.Expr) -> bool:
    """Every log left is log(1 + exp(u)) (printed as logaddexp) or log of a sum of exps."""
    for lg in expr.atoms(sp.log):
        arg = lg.args[0]
        if isinstance(arg, sp.Sum) and isinstance(arg.function, sp.exp):
            continue
        if isinstance(arg, sp.Add) and len(arg.args) == 2 and 1 in arg.args and \
                any(isinstance(t, sp.exp) for t in arg.args):
            continue
        return False
    return True


def _logits_form(per_unit: sp.Expr) -> sp.Expr | None:
    """The loss rewritten through logs of the activation's own terms, when that leaves only
    stable logs (log(1 + e^u), log-sum-exp); None when nothing was gained."""
    if not per_unit.atoms(sp.log):
        return None
    rewritten = per_unit.replace(lambda e: isinstance(e, sp.log), lambda e: sp.log(sp.together(e.args[0])))
    rewritten = sp.expand_log(rewritten, force=True)
    rewritten = sp.expand(rewritten)
    return rewritten if _logs_are_stable(rewritten) else None


@functools.lru_cache(maxsize=None)
def _elementwise_delta(act: ActivationRule, loss: LossRule) -> OutputDelta:
    dl_da = sp.Derivative(nm.ell(nm.A), nm.A)
    uses_z = act.in_output is None
    a = act.forward if uses_z else nm.A
    factor = act.derivative if uses_z else act.in_output
    grad = loss.gradient.subs(nm.A, a)
    chain = sp.Mul(tidy(grad), factor, evaluate=False)
    combined = sp.piecewise_fold(grad * factor)
    combined = tidy(combined if combined.has(sp.Piecewise) else sp.simplify(combined))
    simplified = min((chain, combined), key=sp.count_ops)
    steps = [Step(_eq(sp.Symbol(r"\delta"), sp.Mul(dl_da, sp.Derivative(sp.Function("phi")(nm.Z), nm.Z),
                                                 evaluate=False)), "chain rule, unit by unit"),
             Step(chain, "substitute the derivatives")]
    if simplified is not chain:
        steps.append(Step(simplified, "simplify"))
    c = _collapse(combined, a, nm.Y)
    result = simplified
    if c is not None:
        result = c * (a - nm.Y)
        _conclude(steps, result, "proved: the quotient by $(a - y)$ simplifies to a constant")
    from_logits = _logits_form(loss.per_unit.subs(nm.A, act.forward))
    return OutputDelta(act, loss, tuple(steps), result, c, (), uses_z, from_logits)


@functools.lru_cache(maxsize=None)
def _softmax_delta(act: ActivationRule, loss: LossRule) -> OutputDelta:
    j, k = nm.j, nm.k
    g = sp.IndexedBase("g", real=True)  # dl/da, kept opaque while the sum is contracted
    chain = sp.Sum(g[j] * act.in_output, (j, 1, nm.n))
    general = sp.factor_terms(contract(chain))
    grad = {g[t]: loss.gradient.subs({nm.A: nm.a[t], nm.Y: nm.y[t]}) for t in (j, k)}
    specific = general.xreplace(grad)
    factored = contract(sp.expand(specific))
    steps = [Step(chain, "chain rule through the Jacobian, with $g_j = \\partial \\ell / \\partial a_j$"),
             Step(general, "the Kronecker delta picks j = k"),
             Step(specific, "substitute g_j")]
    if sp.count_ops(factored) < sp.count_ops(specific):
        steps.append(Step(factored, "simplify"))
    assumptions = ()
    c = _collapse(factored, nm.a[k], nm.y[k])
    result = specific
    if c is None:
        # The one assumption a target distribution gives: its entries sum to one.
        total = sp.Eq(sp.Sum(nm.y[j], (j, 1, nm.n)), 1)
        assumed = factored.subs(total.lhs, total.rhs)
        if assumed != factored:
            c = _collapse(assumed, nm.a[k], nm.y[k])
            if c is not None:
                assumptions = (total,)
                steps.append(Step(assumed, "the targets sum to one"))
    if c is not None:
        result = c * (nm.a[k] - nm.y[k])
        _conclude(steps, result, "proved: the quotient by $(a_k - y_k)$ simplifies to a constant")
    # log a_k = z_k - log sum_j exp(z_j): from the definition.
    per_unit = loss.per_unit.subs({nm.A: nm.a[k], nm.Y: nm.y[k]})
    log_a = nm.z[k] - sp.log(sp.Sum(sp.exp(nm.z[j]), (j, 1, nm.n)))
    from_logits = None
    if per_unit.has(sp.log(nm.a[k])):
        candidate = sp.expand(sp.expand_log(per_unit, force=True).subs(sp.log(nm.a[k]), log_a))
        if not candidate.has(nm.a[k]) and _logs_are_stable(candidate):
            from_logits = candidate
    return OutputDelta(act, loss, tuple(steps), result, c, assumptions, False, from_logits)


def output_delta(act: ActivationRule, loss: LossRule) -> OutputDelta:
    return _softmax_delta(act, loss) if act.is_softmax else _elementwise_delta(act, loss)


# ---------------------------------------------------------------- dense layer

@functools.lru_cache(maxsize=None)
def dense_rules() -> DenseRules:
    r, s = sp.symbols("r s", integer=True, positive=True)
    z_r = sp.Sum(nm.W[r, s] * nm.a_prev[s], (s, 1, nm.m)) + nm.b[r]
    backprop = lambda wrt: contract(sp.Sum(nm.delta[r] * sp.diff(z_r, wrt), (r, 1, nm.n)))  # noqa: E731
    grad_w = backprop(nm.W[nm.i, nm.j])
    grad_b = backprop(nm.b[nm.i])
    grad_in = backprop(nm.a_prev[nm.j]).xreplace({r: nm.i})
    z_i = sp.Sum(nm.W[nm.i, nm.j] * nm.a_prev[nm.j], (nm.j, 1, nm.m)) + nm.b[nm.i]
    dl = lambda v: sp.Derivative(nm.ell(v), v)  # noqa: E731
    steps = (Step(_eq(nm.z[nm.i], z_i), "the dense layer"),
             Step(_eq(dl(nm.W[nm.i, nm.j]), grad_w), "chain rule; only $z_i$ depends on $W_{ij}$"),
             Step(_eq(dl(nm.b[nm.i]), grad_b), "chain rule"),
             Step(_eq(dl(nm.a_prev[nm.j]), grad_in), "chain rule; every $z_i$ depends on $a_j$"))
    return DenseRules(z_i, grad_w, grad_b, grad_in, steps)


# ---------------------------------------------------------------- L2 penalty

LAMBDA = sp.Symbol("lambda", positive=True)


@functools.lru_cache(maxsize=None)
def penalty_rules() -> PenaltyRules:
    """The weight decay (lambda/2) sum_ij W_ij^2 of one layer, differentiated once."""
    r, s = sp.symbols("r s", integer=True, positive=True)
    penalty = LAMBDA / 2 * sp.Sum(nm.W[r, s] ** 2, (r, 1, nm.n), (s, 1, nm.m))
    gradient = contract(sp.diff(penalty, nm.W[nm.i, nm.j]))
    dr = sp.Derivative(sp.Function("R")(nm.W[nm.i, nm.j]), nm.W[nm.i, nm.j])
    shown = LAMBDA / 2 * sp.Sum(nm.W[nm.i, nm.j] ** 2, (nm.i, 1, nm.n), (nm.j, 1, nm.m))
    steps = (Step(_eq(sp.Symbol("R"), shown), "weight decay of one layer"),
             Step(_eq(dr, gradient), "only the square of $W_{ij}$ itself depends on $W_{ij}$"))
    return PenaltyRules(LAMBDA, shown, gradient, steps)


# ---------------------------------------------------------------- a network

def derive(spec: NetworkSpec) -> Derivation:
    """Compose the cached per-layer results into the derivation of one network."""
    activations = tuple(activation_rule(layer.activation) for layer in spec.layers)
    loss = loss_rule(spec.loss)
    penalty = penalty_rules() if spec.l2 else None
    return Derivation(spec, activations, loss, output_delta(activations[-1], loss), dense_rules(), penalty)
