"""Generated modules: finite differences, autograd, stability, dtypes, errors, independence."""

import re
import subprocess
import sys

import numpy as np
import pytest

from cases import CASES, CUSTOM
from derivgen import verify
from derivgen.spec import custom_definitions
from helpers import build, module_source

try:
    import torch
except ImportError:  # the autograd comparison is skipped without PyTorch
    torch = None


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("modules")
    cache = {}

    def get(case):
        if case not in cache:
            if case in CUSTOM:
                spec, loss, activations, losses = CUSTOM[case]
                definitions = dict(activations=custom_definitions("activation", activations),
                                   losses=custom_definitions("loss", losses))
                cache[case] = build(spec, loss, folder, **definitions)
            else:
                cache[case] = build(*CASES[case], folder)
        return cache[case]

    return get


def batch(module, rng, rows=5, dtype=np.float64):
    X = rng.normal(size=(rows, module.LAYER_SIZES[0])).astype(dtype)
    return X, verify.targets(module, rng, rows).astype(dtype)


def random_params(module, seed, dtype=np.float64):
    params = module.init_params(seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for name in module.PARAM_NAMES:
        if name.startswith("b"):
            params[name][:] = rng.normal(scale=0.2, size=params[name].shape)
    return params


ALL = sorted(CASES) + sorted(CUSTOM)


@pytest.mark.parametrize("case", ALL)
def test_finite_differences(modules, case):
    module = modules(case)
    rng = np.random.default_rng(1)
    for seed in range(2):
        params = random_params(module, seed)
        X, Y = batch(module, rng)
        errors = verify.check_batch(module, params, X, Y, eps=3e-5, entries=40, rng=rng)
        assert max(errors.values()) <= 1e-6, errors


NARROW = [case for case in CASES if case.startswith("narrow-")]


@pytest.mark.parametrize("case", NARROW)
@pytest.mark.parametrize("rows", [1, 4])
def test_width_one_layers_at_every_batch_size(modules, case, rows):
    """A width-1 layer's calls alternate between two buffers: right at B = 1 (one-element
    arrays) and above, on the first call and on later ones, with out= and without."""
    module = modules(case)
    rng = np.random.default_rng(rows)
    params = random_params(module, 0)
    X, Y = batch(module, rng, rows)
    errors = verify.check_batch(module, params, X, Y, eps=3e-5, entries=40, rng=rng)
    assert max(errors.values()) <= 1e-6, errors
    value, grads = module.loss_and_grad(params, X, Y)
    grads = {k: v.copy() for k, v in grads.items()}
    out = {k: np.empty_like(v) for k, v in params.items()}
    for _ in range(3):
        again, written = module.loss_and_grad(params, X, Y, out=out)
        assert again == value
        for name in grads:
            np.testing.assert_array_equal(written[name], grads[name])
        assert module.loss(params, X, Y) == value


@pytest.mark.parametrize("case", NARROW)
def test_width_one_layers_never_write_over_their_input(case):
    """In a width-1 layer no elementwise call writes over its own input (it writes the
    other buffer of a pair); in the wider layers calls work in place."""
    source = module_source(*CASES[case])
    sizes = [int(part.split(":")[0]) for part in CASES[case][0].split("-")]
    in_place = {"narrow": 0, "wide": 0}
    for line in source.splitlines():
        code = line.split("#")[0].strip()
        augmented = re.match(r"([A-Z](\d+)) [-+*/]= ", code)
        call = re.fullmatch(r"(?:\w+ = )?np\.\w+\((.*), out=([A-Z](\d+))\)", code)
        if augmented:
            layer = int(augmented.group(2))
        elif call and re.search(rf"\b{call.group(2)}\b", call.group(1)):
            layer = int(call.group(3))
        else:
            continue
        in_place["narrow" if sizes[layer] == 1 else "wide"] += 1
    assert in_place["narrow"] == 0
    assert in_place["wide"] > 0
    assert len(re.findall(r'^\s+([A-Z]\d+) = np\.\w+\(.*out=ws\["[a-z]\d+"\]\)', source, re.M)) >= 3


# ---------------------------------------------------------------- PyTorch, independently

def torch_activation(name):
    F = torch.nn.functional
    return {
        "identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, 0.01), "elu": F.elu, "softplus": lambda z: torch.log1p(torch.exp(z)),
        "swish": F.silu, "gelu": F.gelu, "softmax": lambda z: torch.softmax(z, dim=1),
        # custom formulas of cases.CUSTOM
        "mish": lambda z: z * torch.tanh(torch.log1p(torch.exp(z))),
        "kinked": lambda z: torch.clamp(z, min=0) + 0.1 * torch.clamp(z, max=0),
        "absval": torch.abs, "halfelu": lambda z: torch.where(z > 0, z, 0.5 * (torch.exp(z) - 1)),
        "logit": torch.sigmoid, "lin": lambda z: z,
    }[name]


def torch_loss(name, a, y):
    per_unit = {
        "mse": lambda: 0.5 * (a - y) ** 2,
        "bce": lambda: -(y * torch.log(a) + (1 - y) * torch.log(1 - a)),
        "ce": lambda: -y * torch.log(a),
        "quartic": lambda: (a - y) ** 4 / 4, "logcosh": lambda: torch.log(torch.cosh(a - y)),
        "kl": lambda: y * torch.log(y) - y * torch.log(a),
        "xent": lambda: -(y * torch.log(a) + (1 - y) * torch.log(1 - a)),
        "nll2": lambda: -y * torch.log(a), "half": lambda: 0.5 * (y - a) ** 2,
    }[name]()
    return per_unit.sum() / a.shape[0]


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("case", ALL)
def test_matches_torch_autograd(modules, case):
    module = modules(case)
    rng = np.random.default_rng(2)
    params = random_params(module, 3)
    X, Y = batch(module, rng)
    value, grads = module.loss_and_grad(params, X, Y)
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    a = torch.tensor(X)
    for l, name in enumerate(module.ACTIVATIONS, start=1):
        a = torch_activation(name)(a @ tparams[f"W{l}"].T + tparams[f"b{l}"])
    reference = torch_loss(module.LOSS, a, torch.tensor(Y))
    reference.backward()
    assert value == pytest.approx(reference.item(), rel=1e-12)
    for name in module.PARAM_NAMES:
        np.testing.assert_allclose(grads[name], tparams[name].grad.numpy(), rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------- numerics and dtypes

STABLE = ["softmax-ce", "sigmoid-bce", "identity-mse", "sigmoid-mse", "softmax-mse", "sigmoid-ce",
          "respelled-sigmoid-bce", "respelled-softmax-ce", "respelled-identity-mse"]


@pytest.mark.parametrize("case", STABLE)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_logits_stay_finite(modules, case, dtype):
    module = modules(case)
    params = random_params(module, 0, dtype)
    L = len(module.LAYER_SIZES) - 1
    width = module.LAYER_SIZES[-1]
    params[f"W{L}"][:] = 0
    params[f"b{L}"][:] = np.resize([1e3, -1e3], width)
    X, Y = batch(module, np.random.default_rng(0), dtype=dtype)
    value, grads = module.loss_and_grad(params, X, Y)
    assert np.isfinite(value)
    for g in grads.values():
        assert np.all(np.isfinite(g))


@pytest.mark.parametrize("case", ALL)
def test_float32_stays_float32(modules, case):
    module = modules(case)
    params = random_params(module, 0, np.float32)
    X, Y = batch(module, np.random.default_rng(0), dtype=np.float32)
    Yhat, cache = module.forward(params, X)
    assert Yhat.dtype == np.float32
    assert all(v.dtype == np.float32 for v in cache.values())
    value, grads = module.loss_and_grad(params, X, Y)
    assert isinstance(value, float)
    for name in module.PARAM_NAMES:
        assert grads[name].dtype == np.float32 and grads[name].shape == params[name].shape


def test_float32_gradients_close_to_float64(modules):
    module = modules("deep")
    p64 = random_params(module, 0)
    X, Y = batch(module, np.random.default_rng(0))
    _, g64 = module.loss_and_grad(p64, X, Y)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    _, g32 = module.loss_and_grad(p32, X.astype(np.float32), Y.astype(np.float32))
    for name in module.PARAM_NAMES:
        np.testing.assert_allclose(g32[name], g64[name], rtol=2e-3, atol=2e-5)


# ---------------------------------------------------------------- contract

def test_public_names_and_shapes(modules):
    module = modules("softmax-ce")
    assert module.LAYER_SIZES == (3, 4, 3) and module.ACTIVATIONS == ("relu", "softmax") and module.LOSS == "ce"
    params = module.init_params(seed=0)
    assert set(params) == {"W1", "b1", "W2", "b2"}
    assert params["W1"].shape == (4, 3) and params["b1"].shape == (4,)
    X, Y = batch(module, np.random.default_rng(0))
    assert module.predict(params, X).shape == (5, 3)
    assert module.gradient_check(params, X, Y, eps=1e-5) < 1e-6
    np.testing.assert_allclose(module.predict(params, X).sum(axis=1), 1)


def test_init_is_seeded_and_scaled(modules):
    module = modules("wide")
    a, b = module.init_params(seed=1), module.init_params(seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W1"], module.init_params(seed=2)["W1"])
    # He before the relu layer, Glorot before the sigmoid output
    assert np.std(a["W1"]) == pytest.approx(np.sqrt(2 / 30), rel=0.15)
    assert np.std(a["W3"]) == pytest.approx(np.sqrt(2 / 50), rel=0.25)


@pytest.mark.parametrize("mutate, message", [
    (lambda p, X, Y: (p, X[:, :2], Y), "X has shape"),
    (lambda p, X, Y: (p, X[0], Y), "X has shape"),
    (lambda p, X, Y: (p, X.astype(np.float32), Y), "dtype"),
    (lambda p, X, Y: (p, X.tolist(), Y), "X must be a NumPy array"),
    (lambda p, X, Y: (p, X, Y[:2]), "Y has shape"),
    (lambda p, X, Y: (p, X, Y.astype(np.float32)), "dtype"),
    (lambda p, X, Y: ({k: v for k, v in p.items() if k != "b2"}, X, Y), "missing b2"),
    (lambda p, X, Y: ({**p, "W1": p["W1"].T}, X, Y), "params['W1'] has shape"),
    (lambda p, X, Y: ({**p, "W2": p["W2"].astype(np.float32)}, X, Y), "dtype"),
    (lambda p, X, Y: ({**p, "W2": p["W2"].astype(int)}, X, Y), "floating"),
    (lambda p, X, Y: ([1, 2], X, Y), "params must be a dict"),
])
@pytest.mark.parametrize("warm", [False, True], ids=["first call", "quick path"])
def test_wrong_inputs_raise_value_error(modules, mutate, message, warm):
    module = modules("softmax-ce")
    params = module.init_params()
    X, Y = batch(module, np.random.default_rng(0))
    module._WORKSPACES.clear()
    if warm:  # a workspace for this batch size and dtype exists: the quick check runs first
        module.loss_and_grad(params, X, Y)
    p, X, Y = mutate(params, X, Y)
    with pytest.raises(ValueError, match=re.escape(message)):
        module.loss_and_grad(p, X, Y)


def test_backward_lines_cite_equations(modules):
    text = module_source(*CASES["deep"])
    checked = 0
    for function in ("def _output", "def _backprop"):
        body = text.split(function, 1)[1].split("\ndef ", 1)[0]
        for line in body.splitlines()[1:]:
            target = line.split("=")[0].strip() if " = " in line else ""
            if re.fullmatch(r"D\d+|d[Wb]\d+|value", target) and "= ws[" not in line:  # not a buffer fetch
                assert "  # " in line, line
                checked += 1
    assert checked >= 3 * 13  # a delta and two gradients per layer


def test_deterministic():
    assert module_source(*CASES["deep"]) == module_source(*CASES["deep"])


def output_delta_code(source: str) -> list[str]:
    """The lines of _output from the output delta's first line up to its 1/B, without the
    loss they may share."""
    body = source.split("def _output", 1)[1]
    start = body.index("# output-delta")
    start = body.rindex("\n", 0, start) + 1
    lines = [line.split("#")[0].strip() for line in body[start:body.index("# the batch mean's 1/B", start)].splitlines()[:-1]]
    return [line for line in lines if not line.startswith("value = ")]


def is_fused(source: str) -> bool:
    code = output_delta_code(source)
    return len(code) == 1 and re.fullmatch(r'(D2 = )?np\.subtract\(A2, Y, out=(D2|ws\["D2"\])\)', code[0]) is not None


@pytest.mark.parametrize("case", [c for c in CUSTOM if c.startswith("respelled")])
def test_respelled_builtins_use_the_fused_delta(modules, case):
    source = module_source(CUSTOM[case][0], CUSTOM[case][1],
                           activations=custom_definitions("activation", CUSTOM[case][2]),
                           losses=custom_definitions("loss", CUSTOM[case][3]))
    assert is_fused(source)
    assert "np.log(A2" not in source  # the loss is computed from the logits where it can be


def test_fused_output_delta_where_proved():
    for case in ("softmax-ce", "sigmoid-bce", "identity-mse"):
        assert is_fused(module_source(*CASES[case])), case
    for case in ("sigmoid-mse", "softmax-mse", "sigmoid-ce", "tanh-mse"):
        assert not is_fused(module_source(*CASES[case])), case


def test_module_needs_neither_sympy_nor_derivgen(tmp_path):
    path = tmp_path / "standalone.py"
    path.write_text(module_source(*CASES["hidden-gelu"]))
    script = f"""
import sys
sys.modules["sympy"] = None
sys.modules["derivgen"] = None
import importlib.util, numpy as np
spec = importlib.util.spec_from_file_location("standalone", {str(path)!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
p = m.init_params()
X = np.ones((2, 4)); Y = np.full((2, 3), 1 / 3)
print(m.loss(p, X, Y) > 0)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("case", ["deep", "softmax-ce", "sigmoid-mse"])
def test_reused_buffers_never_reach_the_caller(modules, case):
    """Workspace buffers are reused across calls: what a caller holds must not change."""
    module = modules(case)
    rng = np.random.default_rng(3)
    params = random_params(module, 0)
    X, Y = batch(module, rng)
    X2, Y2 = batch(module, rng)
    Yhat, cache = module.forward(params, X)
    _, grads = module.loss_and_grad(params, X, Y)
    kept = ({k: v.copy() for k, v in cache.items()}, Yhat.copy(), {k: v.copy() for k, v in grads.items()})
    module.loss_and_grad(params, X2, Y2)
    module.loss(params, X2, Y2)
    module.backward(params, module.forward(params, X2)[1], Y2)
    for key, value in cache.items():
        np.testing.assert_array_equal(value, kept[0][key])
    np.testing.assert_array_equal(Yhat, kept[1])
    for key, value in grads.items():
        np.testing.assert_array_equal(value, kept[2][key])
    # and backward on the first cache still gives the first gradients
    again = module.backward(params, cache, Y)
    for key in grads:
        np.testing.assert_allclose(again[key], kept[2][key], rtol=1e-13, atol=1e-15)


def test_out_receives_the_gradients(modules):
    module = modules("softmax-ce")
    params = random_params(module, 0)
    X, Y = batch(module, np.random.default_rng(0))
    out = {k: np.empty_like(v) for k, v in params.items()}
    value, grads = module.loss_and_grad(params, X, Y, out=out)
    assert grads is out
    _, fresh = module.loss_and_grad(params, X, Y)
    for key in fresh:
        np.testing.assert_array_equal(out[key], fresh[key])
    with pytest.raises(ValueError, match="out"):
        module.loss_and_grad(params, X, Y, out={k: v.astype(np.float32) for k, v in out.items()})


def test_out_must_be_distinct_contiguous_arrays(modules):
    module = modules("deep")  # W2 ... W12 are all 6 x 6
    params = random_params(module, 0)
    X, Y = batch(module, np.random.default_rng(0))
    out = {k: np.empty_like(v) for k, v in params.items()}
    module.loss_and_grad(params, X, Y, out=out)  # the quick path is ready for this batch
    for bad, says in [(params, "distinct"), ({**out, "W2": params["W2"]}, "distinct"),
                      ({**out, "W3": out["W2"]}, "distinct"),
                      ({**out, "W1": np.empty_like(out["W1"], order="F")}, "C-contiguous")]:
        with pytest.raises(ValueError, match=says):
            module.loss_and_grad(params, X, Y, out=bad)


def test_the_quick_check_sees_shapes_changed_in_place(modules):
    module = modules("deep")
    params = random_params(module, 0)
    X, Y = batch(module, np.random.default_rng(0))
    out = {k: np.empty_like(v) for k, v in params.items()}
    module.loss_and_grad(params, X, Y, out=out)
    out["b1"].shape = (1, 6)  # the same array, reshaped in place
    with pytest.raises(ValueError, match=re.escape("out['b1'] has shape (1, 6)")):
        module.loss_and_grad(params, X, Y, out=out)
    params["W1"].shape = (5, 6)
    with pytest.raises(ValueError, match=re.escape("params['W1'] has shape (5, 6)")):
        module.loss_and_grad(params, X, Y)


def _changes_in_place(array):
    """(name, change) for what NumPy lets a caller do to an array in place: give it another
    shape of the same size, or read its bytes as another dtype."""
    shapes = {(array.size,), (1, array.size), (array.size, 1), array.shape[::-1]} - {array.shape}
    for shape in sorted(shapes):
        yield f"shape {shape}", lambda a, shape=shape: setattr(a, "shape", shape)
    for dtype in (np.int64, np.float32):
        yield f"dtype {dtype.__name__}", lambda a, dtype=dtype: setattr(a, "dtype", dtype)


@pytest.mark.parametrize("case", ["deep", "softmax-ce", "narrow-sigmoid-mse", "narrow-hidden"])
def test_arrays_changed_in_place_after_a_checked_step(modules, case):
    """The quick check trusts params and out that are the very arrays the detailed checks
    passed before. One changed in place since must give the detailed check's clear
    ValueError, or, where NumPy still reads it as the declared array, that array's
    gradients: never wrong ones."""
    module = modules(case)
    X, Y = batch(module, np.random.default_rng(0))
    shapes = {name: value.shape for name, value in random_params(module, 0).items()}
    for which in ("params", "out"):
        for name in module.PARAM_NAMES:
            for change, apply in _changes_in_place(np.empty(shapes[name])):
                params = random_params(module, 0)
                out = {k: np.empty_like(v) for k, v in params.items()}
                module.loss_and_grad(params, X, Y, out=out)  # checked: now trusted by identity
                apply((params if which == "params" else out)[name])
                try:
                    with np.errstate(all="ignore"):  # bytes read as int64 are huge numbers
                        value, grads = module.loss_and_grad(params, X, Y, out=out)
                except ValueError as error:
                    assert str(error).startswith(f"{which}[{name!r}]"), (change, str(error))
                    continue
                declared = {k: np.array(v, dtype=np.float64).reshape(shapes[k]) for k, v in params.items()}
                with np.errstate(all="ignore"):
                    expected_value, expected = module.loss_and_grad(declared, X, Y)
                np.testing.assert_allclose(value, expected_value, rtol=1e-12, equal_nan=True, err_msg=change)
                for key in expected:
                    got = np.asarray(grads[key], dtype=np.float64).reshape(shapes[key])
                    np.testing.assert_allclose(got, expected[key], rtol=1e-12, atol=1e-300, equal_nan=True,
                                               err_msg=f"{which}[{name!r}] {change}: {key}")


@pytest.mark.parametrize("case", ["softmax-ce", "identity-mse", "narrow-sigmoid-mse"])
def test_the_quick_check_refuses_targets_that_would_broadcast(modules, case):
    module = modules(case)
    params = random_params(module, 0)
    X, Y = batch(module, np.random.default_rng(0))
    out = {k: np.empty_like(v) for k, v in params.items()}
    module.loss_and_grad(params, X, Y, out=out)  # the quick path is ready for this batch
    for bad in (Y[:, :1], Y[:1], Y[0], Y.astype(np.float32)):
        if bad.shape == Y.shape and bad.dtype == Y.dtype:
            continue
        for call in (lambda: module.loss_and_grad(params, X, bad, out=out), lambda: module.loss(params, X, bad),
                     lambda: module.backward(params, module.forward(params, X)[1], bad)):
            with pytest.raises(ValueError, match="Y has"):
                call()


def test_the_quick_check_follows_params_and_out_that_swap_roles(modules):
    module = modules("deep")
    X, Y = batch(module, np.random.default_rng(0))
    P = random_params(module, 0)
    G = {k: np.empty_like(v) for k, v in P.items()}
    module.loss_and_grad(P, X, Y, out=G)
    with pytest.raises(ValueError, match="distinct"):
        module.loss_and_grad(P, X, Y, out={**G, "W2": P["W2"]})
    expected = module.loss_and_grad({k: v.copy() for k, v in P.items()}, X, Y)[1]
    for key in P:
        G[key][...] = P[key]
    assert module.loss_and_grad(G, X, Y, out=P)[1] is P  # double buffering: params G, out P
    for key in expected:
        np.testing.assert_array_equal(P[key], expected[key])
    module.loss_and_grad(P, X, Y)  # new params, no out: out's pairing with them is unchecked
    with pytest.raises(ValueError, match="distinct"):
        module.loss_and_grad(P, X, Y, out=P)
    assert module.loss_and_grad(G, X, Y, out=P)[1] is P  # and back, checked anew


def test_x_that_is_one_of_outs_arrays_is_refused(tmp_path):
    """X is read until the last gradient: an out array that is X would overwrite it first."""
    module = build("6-6:tanh-6:tanh-2:identity", "mse", tmp_path)
    params = random_params(module, 0)
    rng = np.random.default_rng(0)
    out = {k: np.empty_like(v) for k, v in params.items()}
    X, Y = rng.normal(size=(6, 6)), rng.normal(size=(6, 2))
    module.loss_and_grad(params, X, Y, out=out)  # the quick path trusts out from here on
    alias = out["W2"]  # (6, 6), like X: written before dW1 = D1.T @ X reads X
    alias[...] = X
    cache = module.forward(params, X)[1] | {"A0": alias}
    for call in (lambda: module.loss_and_grad(params, alias, Y, out=out),
                 lambda: module.backward(params, cache, Y, out=out)):
        with pytest.raises(ValueError, match="X"):
            call()


def test_targets_may_be_the_inputs(tmp_path):
    module = build("4-3:tanh-4:identity", "mse", tmp_path)
    params = random_params(module, 0)
    X = np.random.default_rng(0).normal(size=(5, 4))
    value, grads = module.loss_and_grad(params, X, X)
    again, fresh = module.loss_and_grad(params, X, X.copy())
    assert value == again
    for key in grads:
        np.testing.assert_array_equal(grads[key], fresh[key])


def test_relu_backward_uses_a_boolean_mask(modules):
    source = module_source(*CASES["hidden-relu"])
    assert "np.greater(A1, const[0.0], out=M1)" in source and "D1 *= M1" in source


def test_out_that_is_not_arrays_is_refused_clearly(modules):
    module = modules("softmax-ce")
    params = random_params(module, 0)
    X, Y = batch(module, np.random.default_rng(0))
    module.loss_and_grad(params, X, Y, out={k: np.empty_like(v) for k, v in params.items()})
    bad = {k: np.empty_like(v) for k, v in params.items()}
    bad["b1"] = [0.0] * params["b1"].size
    with pytest.raises(ValueError, match=re.escape("out['b1'] must be a floating NumPy array")):
        module.loss_and_grad(params, X, Y, out=bad)


def test_threads_each_use_their_own_workspace(modules):
    import threading

    module = modules("deep")
    params = random_params(module, 0)
    rng = np.random.default_rng(5)
    batches = [batch(module, rng) for _ in range(2)]
    expected = [module.loss_and_grad(params, X, Y) for X, Y in batches]
    failures = []

    def train(index):
        X, Y = batches[index]
        out = {k: np.empty_like(v) for k, v in params.items()}
        for _ in range(200):
            value, grads = module.loss_and_grad(params, X, Y, out=out)
            if value != expected[index][0] or any(not np.array_equal(grads[k], expected[index][1][k]) for k in grads):
                failures.append(index)
                return

    threads = [threading.Thread(target=train, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_loss_and_delta_share_a_minus_y_only_where_proved():
    import sympy as sp

    from derivgen import naming as nm
    from derivgen.codegen import _shared_error

    a, y = nm.A, nm.Y
    c, g = _shared_error((a - y) ** 2 / 2, a * (1 - a) * (a - y))
    assert c == sp.Rational(1, 2) and sp.simplify(g - a * (1 - a)) == 0
    assert _shared_error((a - y) ** 4 / 4, a - y) is None  # not c (a - y)^2
    assert _shared_error((a - y) ** 2 / 2, y * (a - 1)) is None  # the delta has no factor a - y
    for case, shared in [("identity-mse", True), ("sigmoid-mse", True), ("softmax-ce", False), ("sigmoid-bce", False)]:
        source = module_source(*CASES[case])
        assert ("shared with the loss" in source) == shared, case
