"""The generated NumPy module: printed from the derivation, laid out by a template.

Every forward and backward line is printed from a derived SymPy expression by
printing.CodePrinter and carries the label of the equation it implements. The batch
convention folds the one 1/B of the mean loss into the output delta, once.
"""

import re
from dataclasses import dataclass

import sympy as sp

from . import __version__
from . import naming as nm
from .derivation import Derivation
from .inplace import CONSTANTS, Call, constant, emit, uses_constants
from .printing import extremum, numpy_code, prepare, sigmoid_form, with_out
from .stamp import stamp
from .templating import render_template

SCRATCH = ("T", "U", "V", "S")  # temporaries of one layer in the workspace
HE_INIT = "he"
GLOROT_INIT = "glorot"


@dataclass(frozen=True)
class Line:
    code: str
    label: str = ""
    call: Call | None = None  # the elementwise call the line makes, if it is one


def _call(call: Call, label: str = "") -> Line:
    return Line(call.code(), label, call)


def _calls(calls: list[Call], label: str = "") -> list[Line]:
    """A line per call, the label on the first."""
    return [_call(call, label if i == 0 else "") for i, call in enumerate(calls)]


def _names(layer: int, target: str = "Y") -> dict[str, str]:
    return {"a": f"A{layer}", "z": f"Z{layer}", "y": target, nm.LOG_NORMALIZER.name: f"R{layer}"}


def _code(expr: sp.Expr, layer: int, helpers: set[str]) -> str:
    return numpy_code(sigmoid_form(expr, nm.Z), _names(layer), helpers)


def _relu_like(rule) -> bool:
    """He initialisation suits activations that are zero (or nearly) for negative inputs
    and the identity for positive ones: f(z) = z at z = 2 and |f(-2)| < 0.1."""
    if rule.is_softmax:
        return False
    f = rule.forward
    try:
        return abs(float(f.subs(nm.Z, 2)) - 2) < 1e-12 and abs(float(f.subs(nm.Z, -2))) < 0.1
    except (TypeError, ValueError):
        return False


def _product(name: str, left: str, right: str, out: str) -> str:
    """name = left @ right, written into out: the method left.dot(right, out=) costs about
    110 ns less than np.dot (no __array_function__ dispatch), and both a third of
    np.matmul on small arrays. np.dot where left is A0, the caller's X, which the quick
    check lets be any array NumPy converts."""
    if left == "A0":
        return f"{name} = np.dot({left}, {right}, out={out})"
    return f"{name} = {left}.dot({right}, out={out})"


def _activation(rule, layer: int, target: str) -> list[Call] | None:
    """The calls writing a = f(z) of one elementwise function, or max(z, c) or min(z, c)
    of z and a number (relu), into target (Z{layer} itself, or another buffer) one ufunc
    at a time, or None. Only these are safe written over z: their first call reads z,
    and no later one does."""
    forward = prepare(sigmoid_form(rule.forward, nm.Z))
    pair = extremum(forward)
    if pair is not None:
        if nm.Z not in pair[1:] or not any(term.is_Number for term in pair[1:]):
            return None
    elif not (isinstance(forward, sp.Function) and forward.args == (nm.Z,)):
        return None
    emitted = emit(forward, _names(layer), target, [])
    return None if emitted is None else emitted[0]


def _forward(derivation: Derivation, helpers: set[str], saved: list[str]) -> list[Line]:
    """Z = A @ W.T + b into the workspace (the bias added as a (1, n) row: on small arrays
    that costs half of a 1-D bias), then the activation, written over Z when backward
    needs only a (one array per layer instead of two)."""
    lines = []
    for l, rule in enumerate(derivation.activations, start=1):
        lines.append(Line(_product(f"Z{l}", f"A{l - 1}", f"W{l}.T", f'ws["Z{l}"]'), nm.eq_forward(l)))
        lines.append(_call(Call("np.add", (f"Z{l}", f"b{l}[None]"), f"Z{l}")))
        if rule.is_softmax:
            helpers.add("_softmax")
            lines.append(Line(f'R{l} = ws["R{l}"]'))
            lse = ", lse=True" if f"R{l}" in saved else ""
            lines.append(Line(f'A{l} = _softmax(Z{l}, ws["A{l}"], ws["r{l}"], R{l}, ws["ones{l}"]{lse})',
                              "a = softmax(z)" + (f"; R{l} = log sum exp(z)" if lse else "")))
            continue
        code = _code(rule.forward, l, helpers)
        if code == f"Z{l}":
            lines.append(Line(f"A{l} = Z{l}"))
            continue
        target = f"Z{l}" if f"Z{l}" not in saved else f"A{l}"
        calls = _activation(rule, l, target)
        if calls is None:
            single_call = with_out(code, target if target == f"Z{l}" else f'ws["{target}"]')
            lines.append(Line(f"A{l} = {single_call or code}"))
            continue
        if target != f"Z{l}":
            lines.append(Line(f'A{l} = ws["A{l}"]'))
        if len(calls) == 1 and derivation.spec.sizes[l] > 1:
            lines.append(Line(f"A{l} = {calls[0].code()}"))
        else:
            lines += _calls(calls, f"a = {rule.name}(z)")
            lines.append(Line(f"A{l} = {target}"))
    return lines


def _in_place(expr: sp.Expr, layer: int, target: str, label: str = "") -> list[Line] | None:
    """Lines computing expr into the workspace buffer `target` (an array of layer `layer`)
    with one ufunc call per operation, or None when it needs the ordinary printer."""
    emitted = emit(sigmoid_form(expr, nm.Z), _names(layer), target, [f"{t}{layer}" for t in SCRATCH if t != target[0]])
    if emitted is None:
        return None
    calls, used = emitted
    lines = [Line(f'{name} = ws["{name}"]') for name in [target] + used]
    return lines + _calls(calls, label)


def _loss_expression(derivation: Derivation) -> sp.Expr:
    """The per-unit loss the code evaluates: from the logits where that is stabler (its
    log-sum-exp as the softmax's saved log-normalizer), else in a and y."""
    per_unit = derivation.output.loss_from_logits
    if per_unit is None:  # per unit in the scalars a, y: the same for softmax's units
        return derivation.loss.per_unit
    log_sum_exp = sp.log(sp.Sum(sp.exp(nm.z[nm.j]), (nm.j, 1, nm.n)))
    return per_unit.xreplace({log_sum_exp: nm.LOG_NORMALIZER})


def _saved(derivation: Derivation, loss: sp.Expr) -> list[str]:
    """What backward needs: every activation; a pre-activation only where a derivative
    (or the stable loss) is expressed in z; the softmax's log-normalizer where the loss is."""
    depth = derivation.spec.depth
    keep = [f"A{l}" for l in range(depth + 1)]
    keep += [f"Z{l}" for l, rule in enumerate(derivation.activations[:-1], start=1) if rule.in_output is None]
    out = derivation.output
    if out.uses_z or out.loss_from_logits is not None:
        keep.append(f"Z{depth}")
    if loss.has(nm.LOG_NORMALIZER):
        keep.append(f"R{depth}")
    return keep


def _is_target(e: sp.Expr) -> bool:
    return e == nm.Y or (isinstance(e, sp.Indexed) and e.base == nm.y)


def _scaled(coeff: sp.Expr, code: str) -> str:
    return code if coeff == 1 else f"{float(coeff)!r} * {code}"


def _operand(expr: sp.Expr, layer: int) -> tuple[list[Line], str] | None:
    """(lines, name): a batch array's name as it is, anything else computed into T{layer}."""
    if isinstance(expr, (sp.Symbol, sp.Indexed)) and expr != nm.LOG_NORMALIZER:  # R is (B, 1)
        return [], numpy_code(expr, _names(layer))
    lines = _in_place(expr, layer, f"T{layer}")
    return None if lines is None else (lines, f"T{layer}")


def _total(per_unit: sp.Expr, layer: int, helpers: set[str]) -> tuple[list[Line], str]:
    """(lines, code): code is a float, per_unit summed over the batch and the units; one
    dot product where per_unit is c u^2 (vdot(U, U)) or c y u (vdot(Y, U))."""
    coeff, rest = sp.factor_terms(per_unit).as_coeff_Mul()
    base, power = rest.as_base_exp()
    targets = [f for f in sp.Mul.make_args(rest) if _is_target(f)]
    pair = None
    if power == 2:
        pair = (None, base)
    elif len(targets) == 1 and not (rest / targets[0]).has(nm.Y, nm.y):
        pair = (numpy_code(targets[0], _names(layer)), rest / targets[0])
    operand = pair and _operand(pair[1], layer)
    if operand:
        lines, name = operand
        return lines, _scaled(coeff, f"float(np.vdot({pair[0] or name}, {name}))")
    lines = _in_place(per_unit, layer, f"T{layer}")
    if lines is not None:
        return lines, f"float(np.sum(T{layer}))"
    return [], f"float(np.sum({numpy_code(per_unit, _names(layer), helpers)}))"


def _shared_error(per_unit: sp.Expr, delta: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(c, g) with per_unit = c (a - y)^2 and delta = (a - y) g, both proved by
    simplification (g with no y in a denominator); None when they do not share a - y."""
    error = nm.A - nm.Y
    if delta.has(sp.Sum, sp.Indexed) or per_unit.has(sp.Indexed):
        return None
    c = sp.simplify(per_unit / error ** 2)
    g = sp.cancel(delta / error)
    if not c.is_number or c == 0 or sp.denom(g).has(nm.Y) or sp.simplify(delta - g * error) != 0:
        return None
    return c, g


def _output_delta(derivation: Derivation) -> sp.Expr:
    """The output delta the code evaluates: the proved c (a - y), fused, where it collapses."""
    out = derivation.output
    delta = out.result
    if out.collapsed is not None:
        delta = out.collapsed * ((out.activation.forward if out.uses_z else nm.A) - nm.Y)
    if out.activation.is_softmax and not delta.has(sp.Sum):
        delta = delta.subs({nm.a[nm.k]: nm.A, nm.y[nm.k]: nm.Y})
    return delta


def _output(derivation: Derivation, per_unit: sp.Expr, helpers: set[str]) -> list[Line]:
    """The batch's summed loss into `value`, and the output delta D{L} with the batch
    mean's 1/B. Where the loss is c (a - y)^2 and the delta (a - y) g they start from one
    A - Y, and the loss is c times its squared norm."""
    L = derivation.spec.depth
    label = f"{nm.EQ_OUTPUT_DELTA}, {nm.EQ_BATCH_DELTA}"
    delta = _output_delta(derivation)
    shared = _shared_error(per_unit, delta)
    scale = ("np.divide", constant("B"))
    if shared is not None:
        c, g = shared
        lines = [Line(f'D{L} = np.subtract(A{L}, Y, out=ws["D{L}"])', f"{label}: a - y, shared with the loss"),
                 Line(f"value = {_scaled(c, f'float(np.vdot(D{L}, D{L}))')}", f"{nm.EQ_LOSS}: c (a - y)^2")]
        if g.is_number:
            scale = scale if g == 1 else ("np.multiply", constant(f"{float(g)!r} / B"))
        else:
            lines += _multiply_delta(g, L, helpers, nm.EQ_OUTPUT_DELTA)
    else:
        loss_lines, total = _total(per_unit, L, helpers)
        lines = loss_lines + [Line(f"value = {total}", nm.EQ_LOSS)]
        lines += _in_place(delta, L, f"D{L}", label) or [Line(f"D{L} = {_code(delta, L, helpers)}", label)]
    lines.append(_call(Call(scale[0], (f"D{L}", scale[1]), f"D{L}"), "the batch mean's 1/B, once"))
    return lines


def _multiply_delta(factor: sp.Expr, layer: int, helpers: set[str], label: str) -> list[Line]:
    """Lines multiplying D{layer} by factor in place: a 0/1 indicator (relu') through the
    boolean mask M{layer}, an eighth of a float64 buffer's memory traffic; anything else
    through T{layer}, or printed as one expression when the emitter cannot do it."""
    indicator = isinstance(factor, sp.Piecewise) and [value for value, _ in factor.args] == [1, 0]
    target = f"{'M' if indicator else 'T'}{layer}"
    lines = _in_place(factor, layer, target, label)
    factor_code = target if lines is not None else _code(factor, layer, helpers)
    return (lines or []) + [_call(Call("np.multiply", (f"D{layer}", factor_code), f"D{layer}"), "" if lines else label)]


def _with_constants(lines: list[Line]) -> list[Line]:
    """lines, after binding the workspace's constants when they use any."""
    if any(uses_constants(line.code) for line in lines):
        return [Line(f"{CONSTANTS} = ws.constants")] + lines
    return lines


_BUFFER = re.compile(r"[A-Z](\d+)$")  # a workspace buffer of one layer: T2, D2, Z2


def _out_of_place(lines: list[Line], narrow: set[int]) -> list[Line]:
    """lines, where no elementwise call on a buffer of a width-1 layer writes over its own
    input: it writes the other buffer of a pair (ws["T2"], ws["t2"]) and binds the name
    to it. NumPy takes about 300 ns longer for a call that writes over its input when the
    arrays have one element, as a width-1 layer's do at batch size 1 (2.9 of the 14.5 us
    of a 2-2-1 step); a second (B, 1) buffer costs nothing. Lines that bind a name anew
    (`T2 = ws["T2"]`) start it from its own buffer."""
    moved: set[str] = set()  # the names now bound to their pair's other buffer
    result = []
    for line in lines:
        call = line.call
        buffer = call and _BUFFER.match(call.out)
        if call is not None and call.in_place and buffer and int(buffer.group(1)) in narrow:
            other = call.out if call.out in moved else call.out.lower()
            moved ^= {call.out}
            line = Line(call.elsewhere(f'ws["{other}"]'), line.label)
        elif call is None and (bound := re.match(r"(\w+) = ", line.code)):
            moved.discard(bound.group(1))
        result.append(line)
    return result


def _l2(derivation: Derivation) -> sp.Rational:
    return sp.Rational(repr(derivation.spec.l2))


def _penalty(derivation: Derivation) -> str:
    """The weight decay summed over layers, or '' without one."""
    penalty = derivation.penalty
    if penalty is None:
        return ""
    per_layer = penalty.per_layer.subs(penalty.strength, _l2(derivation))
    return " + ".join(numpy_code(per_layer, {"W": nm.weight(l)}) for l in range(1, derivation.spec.depth + 1))


def _backprop(derivation: Derivation, helpers: set[str]) -> list[Line]:
    """From the output delta down: each layer's gradients (the bias gradient as ones @ D,
    a matrix-vector product that is cheaper than np.sum(axis=0)), then the delta below."""
    L = derivation.spec.depth
    lines = []
    penalty = derivation.penalty
    for l in range(L, 0, -1):
        dW, db = nm.gradient(nm.weight(l)), nm.gradient(nm.bias(l))
        lines.append(Line(_product(dW, f"D{l}.T", f"A{l - 1}", dW), f"{nm.eq_grad_w(l)}, {nm.EQ_BATCH_GRAD_W}"))
        if penalty is not None:
            decay = penalty.grad_weight.subs(penalty.strength, _l2(derivation))
            lines.append(Line(f"{dW} += {numpy_code(decay, {'W': f'W{l}'})}", nm.EQ_GRAD_PENALTY))
        lines.append(Line(_product(db, "ones", f"D{l}", db), f"{nm.eq_grad_b(l)}, {nm.EQ_BATCH_GRAD_B}"))
        if l == 1:
            break
        rule = derivation.activations[l - 2]
        lines.append(Line(_product(f"D{l - 1}", f"D{l}", f"W{l}", f'ws["D{l - 1}"]'),
                          f"{nm.eq_delta(l - 1)}, {nm.EQ_HIDDEN_DELTA}"))
        if rule.backward_form != 1:
            lines += _multiply_delta(rule.backward_form, l - 1, helpers, nm.eq_activation(rule.name))
    return lines


def generate(derivation: Derivation, command: str) -> str:
    """The module's source text. `command` is the derivgen command line that makes it."""
    spec = derivation.spec
    helpers: set[str] = set()
    per_unit_loss = _loss_expression(derivation)
    saved = _saved(derivation, per_unit_loss)
    narrow = {l for l in range(1, spec.depth + 1) if spec.sizes[l] == 1}
    forward, output, backprop = (_with_constants(_out_of_place(lines, narrow)) for lines in (
        _forward(derivation, helpers, saved), _output(derivation, per_unit_loss, helpers), _backprop(derivation, helpers)))
    init = [HE_INIT if _relu_like(rule) else GLOROT_INIT for rule in derivation.activations]
    assumptions = [str(a.lhs.function) + " summed over units = " + str(a.rhs) for a in derivation.output.assumptions]
    context = dict(
        name=spec.name,
        source=spec.source,
        loss_name=spec.loss.name,
        loss_was_given=spec.loss_was_given,
        version=__version__,
        command=command,
        sizes=spec.sizes,
        activations=[layer.activation.name for layer in spec.layers],
        init=init,
        params=nm.param_names(spec.depth),
        gradients=[nm.gradient(name) for name in nm.param_names(spec.depth)],
        depth=spec.depth,
        forward=forward,
        output=output,
        backprop=backprop,
        saved=saved,
        shapes=[shape for l in range(1, spec.depth + 1)
                for shape in ((spec.sizes[l], spec.sizes[l - 1]), (spec.sizes[l],))],
        assumptions=assumptions,
        targets_sum_to_one=bool(derivation.output.assumptions),
        helpers=sorted(helpers),
        l2=derivation.spec.l2,
        penalty=_penalty(derivation),
    )
    return stamp(render_template("module.py.j2", context), "python")
