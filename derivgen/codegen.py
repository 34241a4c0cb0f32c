"""The generated NumPy module: printed from the derivation, laid out by a template.

Every forward and backward line is printed from a derived SymPy expression by
printing.CodePrinter and carries the label of the equation it implements. The batch
convention folds the one 1/B of the mean loss into the output delta, once.
"""

from dataclasses import dataclass

import sympy as sp

from . import __version__
from . import naming as nm
from .derivation import Derivation
from .inplace import emit
from .printing import numpy_code, sigmoid_form, with_out
from .stamp import stamp
from .templating import render_template

SCRATCH = ("T", "U", "V", "S")  # temporaries of one layer in the workspace
HE_INIT = "he"
GLOROT_INIT = "glorot"


@dataclass(frozen=True)
class Line:
    code: str
    label: str = ""


def _names(layer: int, target: str = "Y") -> dict[str, str]:
    return {"a": f"A{layer}", "z": f"Z{layer}", "y": target}


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


def _forward(derivation: Derivation, helpers: set[str], saved: list[str]) -> list[Line]:
    """Z = A @ W.T + b into the workspace, the bias added in place, then the activation,
    written over Z when backward needs only a (one array per layer instead of two)."""
    lines = []
    for l, rule in enumerate(derivation.activations, start=1):
        lines.append(Line(f'Z{l} = np.matmul(A{l - 1}, W{l}.T, out=ws["Z{l}"])', nm.eq_forward(l)))
        lines.append(Line(f"Z{l} += b{l}"))
        if rule.is_softmax:
            helpers.add("_softmax")
            code = f"_softmax(Z{l})"
        else:
            code = _code(rule.forward, l, helpers)
        if code == f"Z{l}":
            lines.append(Line(f"A{l} = Z{l}"))
            continue
        single_call = with_out(code, f"Z{l}" if f"Z{l}" not in saved else f'ws["A{l}"]')
        lines.append(Line(f"A{l} = {single_call or code}"))
    return lines


def _in_place(expr: sp.Expr, layer: int, target: str, helpers: set[str], label: str = "") -> list[Line] | None:
    """Lines computing expr into the workspace buffer `target` (an array of layer `layer`)
    with one ufunc call per operation, or None when it needs the ordinary printer."""
    emitted = emit(sigmoid_form(expr, nm.Z), _names(layer), target, [f"{t}{layer}" for t in SCRATCH if t != target[0]])
    if emitted is None:
        return None
    calls, used = emitted
    if any("_sigmoid(" in call for call in calls):
        helpers.add("_sigmoid")
    lines = [Line(f'{name} = ws["{name}"]') for name in [target] + used]
    lines += [Line(call) for call in calls]
    lines[len(used) + 1] = Line(lines[len(used) + 1].code, label)
    return lines


def _saved(derivation: Derivation) -> list[str]:
    """What backward needs: every activation; a pre-activation only where a derivative
    (or the stable loss) is expressed in z."""
    depth = derivation.spec.depth
    keep = [f"A{l}" for l in range(depth + 1)]
    keep += [f"Z{l}" for l, rule in enumerate(derivation.activations[:-1], start=1) if rule.in_output is None]
    out = derivation.output
    if out.uses_z or out.loss_from_logits is not None:
        keep.append(f"Z{depth}")
    return keep


def _loss_lines(derivation: Derivation, helpers: set[str]) -> tuple[list[Line], str]:
    """(lines, array): the per-unit loss of every output unit, in a workspace buffer when
    it can be computed in place; summed and divided by B by the caller."""
    out, L = derivation.output, derivation.spec.depth
    per_unit = out.loss_from_logits
    if per_unit is None:  # per unit in the scalars a, y: the same for softmax's units
        per_unit = derivation.loss.per_unit
    lines = _in_place(per_unit, L, f"T{L}", helpers, nm.EQ_LOSS)
    if lines is not None:
        return lines, f"T{L}"
    return [], numpy_code(per_unit, _names(L), helpers)


def _l2(derivation: Derivation) -> sp.Rational:
    return sp.Rational(repr(derivation.spec.l2))


def _penalty(derivation: Derivation) -> str:
    """The weight decay summed over layers, or '' without one."""
    penalty = derivation.penalty
    if penalty is None:
        return ""
    per_layer = penalty.per_layer.subs(penalty.strength, _l2(derivation))
    return " + ".join(numpy_code(per_layer, {"W": nm.weight(l)}) for l in range(1, derivation.spec.depth + 1))


def _backward(derivation: Derivation, helpers: set[str]) -> list[Line]:
    out, L = derivation.output, derivation.spec.depth
    label = f"{nm.EQ_OUTPUT_DELTA}, {nm.EQ_BATCH_DELTA}"
    delta = out.result
    if out.collapsed is not None:  # the proved c (a - y): fused
        delta = out.collapsed * ((out.activation.forward if out.uses_z else nm.A) - nm.Y)
    if out.activation.is_softmax:
        delta = delta.subs({nm.a[nm.k]: nm.A, nm.y[nm.k]: nm.Y}) if not delta.has(sp.Sum) else delta
    lines = _in_place(delta, L, f"D{L}", helpers, label) or [Line(f"D{L} = {_code(delta, L, helpers)}", label)]
    lines.append(Line(f"D{L} /= B", "the batch mean's 1/B, once"))
    penalty = derivation.penalty
    for l in range(L, 0, -1):
        lines.append(Line(f'grads["W{l}"] = np.matmul(D{l}.T, A{l - 1}, out=out["W{l}"])',
                          f"{nm.eq_grad_w(l)}, {nm.EQ_BATCH_GRAD_W}"))
        if penalty is not None:
            decay = penalty.grad_weight.subs(penalty.strength, _l2(derivation))
            lines.append(Line(f'grads["W{l}"] += {numpy_code(decay, {"W": f"W{l}"})}', nm.EQ_GRAD_PENALTY))
        lines.append(Line(f'grads["b{l}"] = np.sum(D{l}, axis=0, out=out["b{l}"])',
                          f"{nm.eq_grad_b(l)}, {nm.EQ_BATCH_GRAD_B}"))
        if l == 1:
            break
        rule = derivation.activations[l - 2]
        lines.append(Line(f'D{l - 1} = np.matmul(D{l}, W{l}, out=ws["D{l - 1}"])',
                          f"{nm.eq_delta(l - 1)}, {nm.EQ_HIDDEN_DELTA}"))
        factor = rule.backward_form
        if factor == 1:
            continue
        in_place = _in_place(factor, l - 1, f"T{l - 1}", helpers, nm.eq_activation(rule.name))
        if in_place is None:
            lines.append(Line(f"D{l - 1} *= {_code(factor, l - 1, helpers)}", nm.eq_activation(rule.name)))
        else:
            lines += in_place + [Line(f"D{l - 1} *= T{l - 1}")]
    return lines


def generate(derivation: Derivation, command: str) -> str:
    """The module's source text. `command` is the derivgen command line that makes it."""
    spec = derivation.spec
    helpers: set[str] = set()
    saved = _saved(derivation)
    forward = _forward(derivation, helpers, saved)
    backward = _backward(derivation, helpers)
    loss_lines, loss = _loss_lines(derivation, helpers)
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
        depth=spec.depth,
        forward=forward,
        backward=backward,
        saved=saved,
        shapes=[shape for l in range(1, spec.depth + 1)
                for shape in ((spec.sizes[l], spec.sizes[l - 1]), (spec.sizes[l],))],
        loss=loss,
        loss_lines=loss_lines,
        collapsed=derivation.output.collapsed is not None,
        assumptions=assumptions,
        targets_sum_to_one=bool(derivation.output.assumptions),
        helpers=sorted(helpers),
        l2=derivation.spec.l2,
        penalty=_penalty(derivation),
    )
    return stamp(render_template("module.py.j2", context), "python")
