"""Deterministic outputs (issue 7): the same inputs give byte-identical LaTeX, Markdown and
code across runs and across PYTHONHASHSEED values, through the real command line
(`python -m derivgen.cli`, one process per run), for a spec with several custom definitions
(sets and dicts of SymPy objects are where hash order could leak into an output)."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from derivgen.cli import main

SPEC = """\
name = "determinism"
input = 3
loss = "logcosh"
[[layers]]
units = 5
activation = "softsign"
[[layers]]
units = 4
activation = "bent"
[[layers]]
units = 4
activation = "kink"
[[layers]]
units = 2
activation = "sigmoid"
[activations.softsign]
expr = "x/(1 + abs(x))"
[activations.bent]
expr = "(sqrt(x**2 + 1) - 1)/2 + x"
[activations.kink]
expr = "max(0, x) + 0.1*min(0, x)"
[losses.logcosh]
expr = "log(cosh(a - y))"
[losses.quartic]
expr = "(a - y)**4/4"
"""
COMMANDS = {"latex": ["derive", "--format", "latex"], "markdown": ["derive", "--format", "markdown"],
            "code": ["generate"]}
SEEDS = ["0", "1", "12345", "random"]


def run_cli(folder, command: list[str], seed: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    process = subprocess.run([sys.executable, "-m", "derivgen.cli", *command, "net.toml", "--activation",
                              "extra=x*sigmoid(x)"], cwd=folder, env=env, capture_output=True, timeout=300)
    assert process.returncode == 0, process.stderr.decode(errors="replace")
    return process.stdout


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("determinism")
    (folder / "net.toml").write_text(SPEC, encoding="utf-8")
    jobs = [(kind, seed) for kind in COMMANDS for seed in SEEDS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: run_cli(folder, COMMANDS[job[0]], job[1]), jobs))
    return folder, dict(zip(jobs, results))


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_every_hash_seed_gives_the_same_bytes(outputs, kind):
    _, results = outputs
    first = results[(kind, SEEDS[0])]
    assert len(first) > 1000
    for seed in SEEDS[1:]:
        assert results[(kind, seed)] == first, f"{kind} differs between PYTHONHASHSEED=0 and {seed}"


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_in_process_runs_give_the_same_bytes(outputs, kind, monkeypatch):
    folder, results = outputs
    monkeypatch.chdir(folder)
    for _ in range(2):  # the second run reads the engine's caches
        result = CliRunner().invoke(main, [*COMMANDS[kind], "net.toml", "--activation", "extra=x*sigmoid(x)"])
        assert result.exit_code == 0, result.output
        assert result.stdout_bytes == results[(kind, SEEDS[0])]
