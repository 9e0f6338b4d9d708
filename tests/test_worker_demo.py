"""`tuneserve demo` end to end, shortened to 4 trials: server, two CPU workers, a study, the best
parameters printed, and the SQLite file left where it says."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_a_study_and_prints_the_best(tmp_path):
    data = tmp_path / "demo-data"
    proc = subprocess.run([sys.executable, "-m", "tuneserve_service.cli", "demo", "--data-dir", str(data), "--trials", "4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    best = re.search(r"best: trial (\d+) \(#\d+\): val_loss ([\d.]+), val_acc ([\d.]+)", out)
    assert best, out[-3000:]
    assert 0 < float(best.group(3)) <= 1
    assert re.search(r"^\s+lr = ", out, re.M) and "optimizer = " in out
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/dashboard", out)  # printed once the server is up
    assert (data / "tuneserve.db").exists() and str(data / "tuneserve.db") in out.replace("\n", "")
    logs = "".join(p.read_text() for p in data.glob("worker-*.log"))
    assert logs.count("event=completed") + logs.count("event=failed") >= 4
    assert "event=stopped" in logs  # the workers were drained, not killed
