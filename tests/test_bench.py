"""Smoke test of the benchmark harness: it runs and prints its table. Never checks timings."""
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
    assert report.exists()
