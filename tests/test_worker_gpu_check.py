"""benchmarks/gpu_check.py runs end to end on CPU (--cpu-smoke), so a broken GPU check is caught
before anyone spends GPU time on it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a few minutes on 2 cores; run before spending GPU time (README "GPU check")
def test_gpu_check_cpu_smoke(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu-smoke", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    single = result["single"]
    assert single["reference_img_s"] > 0 and single["trainer_img_s"] > 0
    assert [(row["mode"], row["slots"]) for row in result["slots"]] == [("plain", 1), ("plain", 2)]
    assert all(row["img_s"] > 0 for row in result["slots"])
    assert "| tuneserve trainer |" in (tmp_path / "gpu_check.md").read_text()
