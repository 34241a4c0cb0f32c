"""Scale (issue 7): nothing depends on widths, cost grows linearly with depth, and specs
beyond the limits are refused with a message that says the limit and why.

These are functional tests: they assert that the work completes, never how long it took
(DESIGN.md: speed is measured by the benchmark, not by timed tests)."""

import importlib.util

import numpy as np
import pytest
from click.testing import CliRunner

from derivgen.cli import main
from derivgen.spec import MAX_LAYERS, MAX_WIDTH

WIDE = "100000-4096:relu-1000:softmax"
DEEP_PATTERN = ["8:tanh", "8:relu", "8:mish", "8:sigmoid", "8:gelu", "8:swish"]
MISH = ["--activation", "mish=x*tanh(softplus(x))"]


def run(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def deep(layers: int) -> str:
    return "4-" + "-".join(DEEP_PATTERN[i % len(DEEP_PATTERN)] for i in range(layers - 1)) + "-3:softmax"


def test_a_wide_network_generates():
    result = run("generate", WIDE)
    assert result.exit_code == 0, result.output
    compile(result.stdout, "wide.py", "exec")
    assert "LAYER_SIZES = (100000, 4096, 1000)" in result.stdout


@pytest.mark.parametrize("fmt", ["latex", "markdown"])
def test_a_wide_network_derives(fmt):
    result = run("derive", WIDE, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert "4096" in result.stdout and "100000" in result.stdout


def test_the_widest_network_generates():
    widest = f"{MAX_WIDTH}-{MAX_WIDTH}:relu-{MAX_WIDTH}:softmax"
    result = run("generate", widest)
    assert result.exit_code == 0, result.output
    assert f"LAYER_SIZES = ({MAX_WIDTH}, {MAX_WIDTH}, {MAX_WIDTH})" in result.stdout


def test_300_layers_generate_and_run(tmp_path):
    result = run("generate", deep(300), *MISH)
    assert result.exit_code == 0, result.output
    path = tmp_path / "deep300.py"
    path.write_text(result.stdout)
    spec = importlib.util.spec_from_file_location("deep300", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert len(module.LAYER_SIZES) == 301
    params = module.init_params(seed=0)
    X = np.random.default_rng(0).standard_normal((3, 4))
    Y = np.full((3, 3), 1 / 3)
    loss, grads = module.loss_and_grad(params, X, Y)
    assert np.isfinite(loss) and set(grads) == set(params)
    assert all(grads[name].shape == params[name].shape for name in params)


def test_300_layers_derive():
    result = run("derive", deep(300), "--format", "markdown", *MISH)
    assert result.exit_code == 0, result.output
    assert "W^{(300)}" in result.stdout


def test_the_deepest_allowed_network_generates():
    result = run("generate", deep(MAX_LAYERS), *MISH)
    assert result.exit_code == 0, result.output
    compile(result.stdout, "deepest.py", "exec")
    assert f"'W{MAX_LAYERS}'" in result.stdout and f"dW{MAX_LAYERS} = D{MAX_LAYERS}.T.dot(" in result.stdout


@pytest.mark.parametrize("command", ["generate", "derive"])
def test_one_layer_beyond_the_limit_is_refused_clearly(command, tmp_path):
    result = run(command, deep(MAX_LAYERS + 1))
    assert result.exit_code == 2
    line, = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("derivgen: error: ")
    assert f"{MAX_LAYERS + 1} layers" in line and f"at most {MAX_LAYERS}" in line and "seconds" in line
    toml = tmp_path / "deep.toml"
    toml.write_text("input = 2\n" + '[[layers]]\nunits = 2\nactivation = "tanh"\n' * (MAX_LAYERS + 1))
    result = run(command, str(toml))
    assert result.exit_code == 2 and f"at most {MAX_LAYERS}" in result.stderr


def test_widths_beyond_the_limit_are_refused_clearly():
    result = run("generate", f"2-{MAX_WIDTH + 1}:relu")
    assert result.exit_code == 2
    assert f"between 1 and {MAX_WIDTH}" in result.stderr
