"""Custom formulas end to end through the command line: hostile text refused without
running anything, slow derivations stopped, and the fused delta's stability shown."""

import numpy as np
import pytest
from click.testing import CliRunner

from derivgen import cli
from derivgen.cli import main
from derivgen.spec import custom_definitions
from helpers import build

HOSTILE = [
    "__import__('os').system('touch {canary}')",
    "open('{canary}', 'w')",
    "exec(\"open('{canary}', 'w')\")",
    "eval(\"open('{canary}', 'w')\")",
    "(lambda: open('{canary}', 'w'))()",
    "[open('{canary}', 'w') for q in (1,)]",
    "f'{{open(\"{canary}\", \"w\")}}'",
    "x.__class__.__mro__",
    "globals()['__builtins__']",
    "(q := open('{canary}', 'w'))",
    "x[0]",
    "exp(x)**10**10**10",
    "9**9**9**9",
    "(" * 500 + "x" + ")" * 500,
    "x" + "+x" * 5000,
    "1e400*x",
    "os",
    "x; open('{canary}', 'w')",
]


@pytest.mark.parametrize("payload", HOSTILE)
@pytest.mark.parametrize("where", ["activation", "loss-def"])
def test_hostile_formulas_are_refused_and_nothing_runs(tmp_path, payload, where):
    canary = tmp_path / "CANARY"
    formula = payload.format(canary=canary)
    if where == "activation":
        args = ["derive", "2-2:evil-1:sigmoid", "--activation", f"evil={formula}"]
    else:
        args = ["generate", "2-2:tanh-1:sigmoid", "--loss", "evil", "--loss-def", f"evil={formula}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("derivgen: error:")
    assert "Traceback" not in result.output
    assert not canary.exists()


def test_hostile_formula_in_a_toml_file(tmp_path):
    canary = tmp_path / "CANARY"
    path = tmp_path / "net.toml"
    path.write_text(f'input = 2\n[[layers]]\nunits = 1\nactivation = "evil"\n'
                    f'[activations.evil]\nexpr = "__import__(\'os\').system(\'touch {canary}\')"\n')
    result = CliRunner().invoke(main, ["derive", str(path)])
    assert result.exit_code == 2 and not canary.exists()


def test_a_derivation_that_runs_too_long_is_stopped(monkeypatch):
    monkeypatch.setattr(cli, "TIME_LIMIT", 1e-4)
    result = CliRunner().invoke(main, ["derive", "3-4:mish-2:sigmoid", "--activation",
                                       "mish=x*tanh(log(1 + exp(x)))*erf(x)*cosh(x)"])
    assert result.exit_code == 2
    assert "took longer than" in result.stderr and "Traceback" not in result.output


def test_fused_delta_stays_finite_where_the_chain_rule_gives_nan(tmp_path):
    """At a logit of 1000, sigmoid rounds to 1: the unfused chain rule divides 0 by 0."""
    z, y = np.array([[1e3, -1e3]]), np.array([[0.3, 0.7]])
    with np.errstate(all="ignore"):
        a = 1 / (1 + np.exp(-z))
        unfused = (-(y / a) + (1 - y) / (1 - a)) * a * (1 - a)
    assert np.isnan(unfused).any()
    module = build("2-2:logit", "xent", tmp_path,
                   activations=custom_definitions("activation", {"logit": "1/(1 + exp(-x))"}),
                   losses=custom_definitions("loss", {"xent": "-(y*log(a) + (1 - y)*log(1 - a))"}))
    params = {"W1": np.zeros((2, 2)), "b1": z[0].copy()}
    value, grads = module.loss_and_grad(params, np.ones((1, 2)), y)
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads.values())
    np.testing.assert_allclose(grads["b1"], [1 - 0.3, 0 - 0.7])
