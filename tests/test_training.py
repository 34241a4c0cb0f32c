"""Training utilities of generated modules: each test fails if its utility is wrong."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from derivgen import verify
from helpers import build

try:
    import torch
except ImportError:
    torch = None


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return build("3-5:tanh-2:sigmoid", "bce", tmp_path_factory.mktemp("train"))


@pytest.fixture(scope="module")
def decayed(tmp_path_factory):
    from derivgen.cli import command_line  # noqa: F401  (the module is built as the CLI builds it)
    from derivgen.codegen import generate
    from derivgen.derive import derive
    from derivgen.spec import parse_inline
    from helpers import import_source

    network = parse_inline("3-5:tanh-2:sigmoid", "bce", l2=0.05)
    return import_source(generate(derive(network), "derivgen generate test"), tmp_path_factory.mktemp("l2"))


def data(module, rows=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, module.LAYER_SIZES[0])), verify.targets(module, rng, rows)


def copy(params):
    return {k: v.copy() for k, v in params.items()}


def test_sgd_step(net):
    params = net.init_params(1)
    X, Y = data(net)
    _, grads = net.loss_and_grad(params, X, Y)
    before = copy(params)
    assert net.sgd_step(params, grads, 0.1) is None
    for name in params:
        np.testing.assert_allclose(params[name], before[name] - 0.1 * grads[name], rtol=0, atol=1e-15)


def test_sgd_momentum_follows_the_recurrence(net):
    params, expected = net.init_params(2), net.init_params(2)
    X, Y = data(net)
    velocity, state = {k: np.zeros_like(v) for k, v in params.items()}, None
    for _ in range(4):
        _, grads = net.loss_and_grad(params, X, Y)
        state = net.sgd_step(params, grads, 0.05, momentum=0.9, state=state)
        _, reference = net.loss_and_grad(expected, X, Y)
        for name in expected:
            velocity[name] = 0.9 * velocity[name] + reference[name]
            expected[name] = expected[name] - 0.05 * velocity[name]
    for name in params:
        np.testing.assert_allclose(params[name], expected[name], rtol=1e-12, atol=1e-15)


def test_adam_matches_the_textbook_update(net):
    params, expected = net.init_params(3), net.init_params(3)
    X, Y = data(net)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    state = None
    for t in range(1, 6):
        _, grads = net.loss_and_grad(params, X, Y)
        state = net.adam_step(params, grads, state, lr=0.01)
        _, g = net.loss_and_grad(expected, X, Y)
        for name in expected:
            m[name] = 0.9 * m[name] + 0.1 * g[name]
            v[name] = 0.999 * v[name] + 0.001 * g[name] ** 2
            m_hat, v_hat = m[name] / (1 - 0.9 ** t), v[name] / (1 - 0.999 ** t)
            expected[name] = expected[name] - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-8)
    for name in params:
        np.testing.assert_allclose(params[name], expected[name], rtol=1e-10, atol=1e-14)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_adam_matches_torch(net):
    params = net.init_params(4)
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    optimizer = torch.optim.Adam(list(tparams.values()), lr=0.01)
    X, Y = data(net)
    state = None
    for _ in range(5):
        _, grads = net.loss_and_grad(params, X, Y)
        state = net.adam_step(params, grads, state, lr=0.01)
        optimizer.zero_grad()
        for name, t in tparams.items():
            t.grad = torch.tensor(net.loss_and_grad({k: p.detach().numpy() for k, p in tparams.items()}, X, Y)[1][name])
        optimizer.step()
    for name in params:
        np.testing.assert_allclose(params[name], tparams[name].detach().numpy(), rtol=1e-9, atol=1e-12)


def test_clip_by_value_and_by_global_norm(net):
    grads = {name: np.full(shape, 3.0) for name, shape in zip(net.PARAM_NAMES, net._SHAPES)}
    count = sum(g.size for g in grads.values())
    assert net.clip_grads(grads, max_value=2.0) == pytest.approx(2.0 * np.sqrt(count))
    assert all(np.all(g == 2.0) for g in grads.values())
    before = net.clip_grads(grads, max_norm=1.0)
    assert before == pytest.approx(2.0 * np.sqrt(count))
    total = np.sqrt(sum(np.vdot(g, g) for g in grads.values()))
    assert total == pytest.approx(1.0)
    small = {name: np.full(shape, 1e-3) for name, shape in zip(net.PARAM_NAMES, net._SHAPES)}
    net.clip_grads(small, max_norm=1.0)
    assert all(np.all(g == 1e-3) for g in small.values())  # under the norm: untouched


def test_gradient_norms(net):
    params = net.init_params(5)
    _, grads = net.loss_and_grad(params, *data(net))
    norms = net.gradient_norms(grads)
    assert set(norms) == set(net.PARAM_NAMES)
    for name, value in norms.items():
        assert value == pytest.approx(np.sqrt(np.sum(grads[name] ** 2)), rel=1e-12)


def test_l2_is_part_of_the_loss_and_the_gradients(net, decayed):
    params = net.init_params(6)
    X, Y = data(net)
    plain_loss, plain = net.loss_and_grad(params, X, Y)
    value, grads = decayed.loss_and_grad(params, X, Y)
    decay = 0.05 / 2 * sum(np.sum(params[n] ** 2) for n in params if n.startswith("W"))
    assert value == pytest.approx(plain_loss + decay, rel=1e-12)
    for name in params:
        expected = plain[name] + (0.05 * params[name] if name.startswith("W") else 0)
        np.testing.assert_allclose(grads[name], expected, rtol=1e-12, atol=1e-15)
    errors = verify.check_batch(decayed, params, X, Y, eps=3e-5, entries=40, rng=np.random.default_rng(0))
    assert max(errors.values()) < 1e-6  # finite differences of the regularised loss


def test_fit_trains_and_is_reproducible(net):
    X = np.random.default_rng(0).normal(size=(40, 3))
    Y = (X[:, :2] > 0).astype(float)  # learnable targets
    a, b = net.init_params(7), net.init_params(7)
    history = net.fit(a, X, Y, epochs=30, batch_size=8, lr=0.5)
    assert len(history) == 30 and history[-1] < 0.5 * history[0]
    assert net.fit(b, X, Y, epochs=30, batch_size=8, lr=0.5) == history
    with pytest.raises(ValueError, match="optimizer"):
        net.fit(a, X, Y, epochs=1, batch_size=8, lr=0.1, optimizer="rmsprop")


def test_xor_is_learned_with_sgd_step(tmp_path):
    xor = build("2-8:tanh-1:sigmoid", "bce", tmp_path)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    Y = np.array([[0], [1], [1], [0]], dtype=float)
    params, state = xor.init_params(seed=0), None
    for _ in range(2000):
        _, grads = xor.loss_and_grad(params, X, Y)
        state = xor.sgd_step(params, grads, 0.5, momentum=0.9, state=state)
    assert np.array_equal(xor.predict(params, X) > 0.5, Y > 0.5)
    assert xor.loss(params, X, Y) < 0.05


def test_digits_example_reaches_95_percent():
    pytest.importorskip("sklearn")
    path = Path(__file__).resolve().parent.parent / "examples" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--epochs", "15"]) >= 0.95


def test_l2_appears_in_the_derivation_with_the_labels_the_code_cites(tmp_path):
    import shutil
    import subprocess

    from derivgen.codegen import generate
    from derivgen.derive import derive
    from derivgen.render import render
    from derivgen.spec import parse_inline

    derivation = derive(parse_inline("3-4:relu-2:sigmoid", "bce", l2=0.01))
    code = generate(derivation, "derivgen generate test")
    assert "# grad-penalty" in code and "# penalty" in code
    for fmt in ("latex", "markdown"):
        text = render(derivation, fmt)
        assert text.count(r"\tag{penalty}") == 1 and text.count(r"\tag{grad-penalty}") == 1
        assert r"\lambda W" in text
    if shutil.which("pdflatex"):
        (tmp_path / "l2.tex").write_text(render(derivation, "latex"))
        result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "l2.tex"],
                                cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-2000:]
