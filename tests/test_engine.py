"""The engine's claims, checked: every simplification symbolically and numerically,
no collapse claimed where there is none, derivatives in the output proved, and the
same result for a built-in under another name or spelling (DESIGN rule 1)."""

import random

import pytest
import sympy as sp

from derivgen import catalog, derive as engine, naming as nm
from derivgen.spec import custom_definitions, parse_inline

COLLAPSING = [("identity", "mse"), ("sigmoid", "bce"), ("softmax", "ce")]
NOT_COLLAPSING = [("sigmoid", "mse"), ("softmax", "mse"), ("tanh", "bce"), ("tanh", "mse"),
                  ("sigmoid", "ce"), ("softmax", "bce"), ("relu", "mse"), ("gelu", "mse")]


def delta(activation, loss):
    return engine.output_delta(engine.activation_rule(catalog.lookup("activation", activation)),
                               engine.loss_rule(catalog.lookup("loss", loss)))


def chain_rule_elementwise(activation, loss, z, y):
    """The unsimplified chain rule dl/da * phi'(z), straight from the definitions."""
    f = catalog.lookup("activation", activation).expr.subs(nm.X, nm.Z)
    l = catalog.lookup("loss", loss).expr
    value = sp.diff(l, nm.A).subs(nm.A, f) * sp.diff(f, nm.Z)
    return complex(value.subs({nm.Z: z, nm.Y: y}).evalf(30))


def chain_rule_softmax(loss, zs, ys):
    """The unsimplified chain rule through softmax at concrete width: differentiate the
    loss of the expanded softmax (fine at width 3, which is what the engine avoids)."""
    zsym = sp.symbols(f"z0:{len(zs)}", real=True)
    total = sum(sp.exp(v) for v in zsym)
    l = catalog.lookup("loss", loss).expr
    ell = sum(l.subs({nm.A: sp.exp(v) / total, nm.Y: y}) for v, y in zip(zsym, ys))
    return [complex(sp.diff(ell, v).subs(dict(zip(zsym, zs))).evalf(30)) for v in zsym]


@pytest.mark.parametrize("activation, loss", COLLAPSING)
def test_collapse_is_claimed_and_true(activation, loss):
    d = delta(activation, loss)
    assert d.collapsed == 1
    rng = random.Random(0)
    if activation == "softmax":
        assert d.assumptions and d.assumptions[0].rhs == 1  # sum of targets is one, stated
        for _ in range(5):
            zs = [rng.uniform(-3, 3) for _ in range(3)]
            raw = [rng.uniform(0.1, 1) for _ in range(3)]
            ys = [v / sum(raw) for v in raw]
            exps = [sp.exp(v) for v in zs]
            a = [complex((e / sum(exps)).evalf(30)) for e in exps]
            for k, expected in enumerate(chain_rule_softmax(loss, zs, ys)):
                assert abs((a[k] - ys[k]) - expected) < 1e-12
        return
    assert sp.simplify(d.result - (nm.A - nm.Y)) == 0
    f = catalog.lookup("activation", activation).expr.subs(nm.X, nm.Z)
    for _ in range(10):
        z, y = rng.uniform(-4, 4), rng.uniform(0, 1)
        collapsed = complex((f.subs(nm.Z, z) - y).evalf(30))
        assert abs(collapsed - chain_rule_elementwise(activation, loss, z, y)) < 1e-12


@pytest.mark.parametrize("activation, loss", NOT_COLLAPSING)
def test_no_collapse_where_there_is_none(activation, loss):
    d = delta(activation, loss)
    assert d.collapsed is None and not d.assumptions
    # and the factored form it presents is still the chain rule
    rng = random.Random(1)
    if activation == "softmax":
        zs, ys = [0.3, -1.2, 0.8], [0.2, 0.5, 0.3]
        exps = [sp.exp(v) for v in zs]
        a = [e / sum(exps) for e in exps]
        expected = chain_rule_softmax(loss, zs, ys)
        for k in range(3):
            concrete = d.result.subs(nm.n, 3).doit().subs(nm.k, k + 1)
            concrete = concrete.subs({nm.a[t + 1]: a[t] for t in range(3)}).subs({nm.y[t + 1]: ys[t] for t in range(3)})
            assert abs(complex(concrete.evalf(30)) - expected[k]) < 1e-12
        return
    f = catalog.lookup("activation", activation).expr.subs(nm.X, nm.Z)
    for _ in range(10):
        z, y = rng.uniform(0.1, 3), rng.uniform(0.05, 0.95)
        value = d.result.subs(nm.A, f).subs({nm.Z: z, nm.Y: y}) if not d.uses_z else d.result.subs({nm.Z: z, nm.Y: y})
        assert abs(complex(value.evalf(30)) - chain_rule_elementwise(activation, loss, z, y)) < 1e-12


@pytest.mark.parametrize("name, expected", [
    ("sigmoid", nm.A * (1 - nm.A)), ("tanh", 1 - nm.A ** 2), ("identity", sp.S.One),
    ("relu", sp.Piecewise((1, nm.A > 0), (0, True))),
    ("elu", sp.Piecewise((1, nm.A > 0), (nm.A + 1, True))),
    ("leaky_relu", sp.Piecewise((1, nm.A > 0), (sp.Rational(1, 100), True))),
])
def test_derivative_in_terms_of_output(name, expected):
    rule = engine.activation_rule(catalog.lookup("activation", name))
    assert rule.verified_by in ("symbolic", "numeric")
    assert sp.simplify(sp.piecewise_fold(rule.in_output - expected)) == 0
    f = rule.forward
    for z in (-2.5, -0.3, 0.4, 1.7):
        assert abs(complex(rule.in_output.subs(nm.A, f.subs(nm.Z, z)).evalf(25))
                   - complex(rule.derivative.subs(nm.Z, z).evalf(25))) < 1e-15


@pytest.mark.parametrize("name", ["softplus", "swish", "gelu"])
def test_no_output_form_falls_back_to_z(name):
    rule = engine.activation_rule(catalog.lookup("activation", name))
    assert rule.in_output is None and rule.backward_form == rule.derivative


def test_relu_subgradient_at_the_kink_is_zero():
    rule = engine.activation_rule(catalog.lookup("activation", "relu"))
    assert rule.derivative.subs(nm.Z, 0) == 0 and rule.in_output.subs(nm.A, 0) == 0


def test_softmax_jacobian_is_derived():
    rule = engine.activation_rule(catalog.lookup("activation", "softmax"))
    expected = nm.a[nm.j] * (sp.KroneckerDelta(nm.j, nm.k) - nm.a[nm.k])
    assert sp.expand(rule.in_output - expected) == 0


def test_dense_layer_rules():
    rules = engine.dense_rules()
    assert sp.expand(rules.grad_weight - nm.delta[nm.i] * nm.a_prev[nm.j]) == 0
    assert rules.grad_bias == nm.delta[nm.i]
    assert rules.grad_input == sp.Sum(nm.W[nm.i, nm.j] * nm.delta[nm.i], (nm.i, 1, nm.n))


@pytest.mark.parametrize("act_formula, loss_formula, builtin", [
    ("1/(1 + exp(-x))", "-(y*log(a) + (1 - y)*log(1 - a))", ("sigmoid", "bce")),
    ("x", "0.5*(y - a)**2", ("identity", "mse")),
    ("exp(-log(1 + exp(-x)))", "-(1 - y)*log(1 - a) - y*log(a)", ("sigmoid", "bce")),
])
def test_respelled_builtins_get_the_same_result(act_formula, loss_formula, builtin):
    act = custom_definitions("activation", {"mine": act_formula})["mine"]
    loss = custom_definitions("loss", {"myloss": loss_formula})["myloss"]
    custom = engine.output_delta(engine.activation_rule(act), engine.loss_rule(loss))
    reference = delta(*builtin)
    assert custom.collapsed == reference.collapsed == 1
    assert sp.simplify(custom.result - reference.result) == 0


def test_softmax_with_respelled_cross_entropy_collapses():
    loss = custom_definitions("loss", {"nll2": "-y*log(a)*1.0"})["nll2"]
    d = engine.output_delta(engine.activation_rule(catalog.lookup("activation", "softmax")), engine.loss_rule(loss))
    assert d.collapsed == 1 and d.assumptions


def test_scaled_loss_collapses_with_its_constant():
    loss = custom_definitions("loss", {"sq": "(a - y)**2"})["sq"]
    d = engine.output_delta(engine.activation_rule(catalog.lookup("activation", "identity")), engine.loss_rule(loss))
    assert d.collapsed == 2


def test_cost_does_not_depend_on_width():
    narrow = engine.derive(parse_inline("8-8:relu-8:softmax"))
    wide = engine.derive(parse_inline("784-784:relu-784:softmax"))
    assert narrow.output is wide.output and narrow.activations == wide.activations


def test_depth_reuses_cached_rules():
    deep = engine.derive(parse_inline("4-" + "-".join(["5:tanh"] * 100) + "-2:identity", "mse"))
    assert len({id(rule) for rule in deep.activations}) == 2
