"""Smoke test of the benchmark harness: it runs and prints its table. Never checks timings."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (REPO / "generated" / "tiny.py").exists(),
                    reason="generated/tiny.py not generated yet")
def test_quick_benchmark_runs_and_prints_table(tmp_path):
    pytest.importorskip("threadpoolctl")
    report = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--quick", "--workloads", "W1",
         "--threads", "1", "--dtype", "float64", "--json", str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "W1 tiny 2-2-1 B=1  float64  threads=1" in proc.stdout
    assert "median ms" in proc.stdout and "generated" in proc.stdout
    assert "Summary: generated / impl" in proc.stdout
    assert "DISAGREES" not in proc.stdout
    assert "!!" not in proc.stdout, proc.stdout[-3000:]  # no failing implementation or tool run
    assert "== NumPy BLAS:" in proc.stdout and "gen out=" in proc.stdout
    assert "== training step, threads=1, cpu affinity" in proc.stdout
    data = json.loads(report.read_text())
    assert "generated_out_steady" in data["memory"][0]
    machine = data["machine"]
    assert "architecture" in machine["numpy_blas"] and "OPENBLAS_CORETYPE" in machine["blas_env"]
    if hasattr(os, "sched_setaffinity"):               # --threads 1 pins to one cpu
        assert machine["cpu_affinity"] is None or len(machine["cpu_affinity"]) == 1
