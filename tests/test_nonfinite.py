"""NaN and inf in a generated module's inputs (issue 7).

The decision: the hot path does no value checks (a scan of X and Y would cost a pass over
the data on every call). NaN or inf in X or Y propagate, as in NumPy itself: no exception
(NumPy may emit a RuntimeWarning), the affected sample's outputs are NaN or inf, the mean
loss and the gradients are not finite, and the other samples' outputs are untouched. A NaN
is never turned into a finite, plausible number. Shape, dtype and params checks raise
ValueError as before (tested in test_codegen.py)."""

import warnings

import numpy as np
import pytest

from helpers import build

NETWORKS = {
    "relu-softmax-ce": ("3-4:relu-3:softmax", "ce"),
    "tanh-sigmoid-bce": ("3-4:tanh-2:sigmoid", "bce"),
    "sigmoid-sigmoid-mse": ("3-4:sigmoid-2:sigmoid", "mse"),
    "gelu-identity-mse": ("3-4:gelu-2:identity", "mse"),
    "elu-softmax-mse": ("3-4:elu-3:softmax", "mse"),
}


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nonfinite")
    cache = {}

    def get(case):
        if case not in cache:
            cache[case] = build(*NETWORKS[case], folder)
        return cache[case]

    return get


def batch(module, rows=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, module.LAYER_SIZES[0]))
    n = module.LAYER_SIZES[-1]
    Y = np.eye(n)[rng.integers(0, n, rows)] if module.ACTIVATIONS[-1] == "softmax" else rng.uniform(0.1, 0.9, (rows, n))
    return X, Y


def quietly(function, *args):
    """Call without failing on NumPy's RuntimeWarnings (and only those)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(*args)
    assert all(issubclass(w.category, RuntimeWarning) for w in caught), [str(w.message) for w in caught]
    return result


def finite(grads) -> bool:
    return all(np.all(np.isfinite(g)) for g in grads.values())


@pytest.mark.parametrize("case", list(NETWORKS))
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_x_propagates_without_an_exception(modules, case, value):
    module = modules(case)
    params = module.init_params(seed=1)
    X, Y = batch(module)
    X[2, 0] = value
    loss, grads = quietly(module.loss_and_grad, params, X, Y)
    assert isinstance(loss, float)
    assert set(grads) == set(params)
    # the first layer's weight gradient sums over x: an infinite or NaN input cannot vanish there
    assert not np.all(np.isfinite(grads["W1"]))
    if np.isnan(value):
        assert np.isnan(loss)
        assert not finite(grads)


@pytest.mark.parametrize("case", list(NETWORKS))
def test_a_bad_sample_leaves_the_other_samples_outputs_alone(modules, case):
    module = modules(case)
    params = module.init_params(seed=1)
    X, _ = batch(module)
    clean = module.predict(params, X)
    for value in (np.nan, np.inf):
        dirty = X.copy()
        dirty[2, 1] = value
        out = quietly(module.predict, params, dirty)
        rest = [0, 1, 3, 4]
        np.testing.assert_array_equal(out[rest], clean[rest])
        if np.isnan(value):
            assert np.all(np.isnan(out[2]))


@pytest.mark.parametrize("case", list(NETWORKS))
def test_nan_in_y_gives_a_nan_loss_and_gradients(modules, case):
    module = modules(case)
    params = module.init_params(seed=1)
    X, Y = batch(module)
    Y[0, 0] = np.nan
    loss, grads = quietly(module.loss_and_grad, params, X, Y)
    assert np.isnan(loss)
    assert not finite(grads)
    assert np.isnan(quietly(module.loss, params, X, Y))


@pytest.mark.parametrize("case", ["relu-softmax-ce", "tanh-sigmoid-bce"])
def test_nan_in_params_propagates_too(modules, case):
    module = modules(case)
    params = module.init_params(seed=1)
    params["W2"][0, 0] = np.nan
    X, Y = batch(module)
    loss, grads = quietly(module.loss_and_grad, params, X, Y)
    assert np.isnan(loss) and not finite(grads)


def test_float32_nan_stays_float32(modules):
    module = modules("relu-softmax-ce")
    params = module.init_params(seed=1, dtype=np.float32)
    X, Y = (a.astype(np.float32) for a in batch(module))
    X[0, 0] = np.nan
    _, grads = quietly(module.loss_and_grad, params, X, Y)
    assert all(g.dtype == np.float32 for g in grads.values())


def test_gradient_check_does_not_report_success_on_nan(modules):
    module = modules("relu-softmax-ce")
    params = module.init_params(seed=1)
    X, Y = batch(module)
    X[0, 0] = np.nan
    error = quietly(module.gradient_check, params, X, Y)
    assert not error <= 1e-6  # NaN or inf: never a pass
