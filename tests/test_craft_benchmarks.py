"""The smoke modes of the issue-12 benchmarks: each runs end to end at tiny sizes and prints its figures."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_lr_range_benchmark_quick(capsys):
    assert _load("lr_range_test").main(["--quick"]) == 0
    out = capsys.readouterr().out
    row = re.search(r"^digits\s+(\d+)\s+([\d.e+-]+) \[\s*([\d.e+-]+),\s*([\d.e+-]+)\]\s+([\d.e+-]+)", out, re.M)
    assert row, out
    suggested, low, high, best = (float(row.group(i)) for i in (2, 3, 4, 5))
    assert low == pytest.approx(suggested / 10, rel=1e-2) and high >= suggested
    assert 1e-4 <= best <= 3.0                     # the tpe search stays in its space
    assert "digits: ratio median" in out and "wall time" in out


def test_coarse_to_fine_benchmark_quick(capsys):
    assert _load("coarse_to_fine").main(["--quick"]) == 0
    out = capsys.readouterr().out
    flat = re.search(r"^\s*\d+ flat\s+(\d+)\s+(\d+)", out, re.M)
    c2f = re.search(r"^\s*\d+ c2f\s+(\d+)\+(\d+)\s+(\d+)", out, re.M)
    assert flat and c2f, out
    assert (int(flat.group(1)), int(flat.group(2))) == (3, 6)         # budget 6 // 2 epochs
    assert (int(c2f.group(1)), int(c2f.group(2)), int(c2f.group(3))) == (4, 2, 5)  # 4 x 1 x 0.25 + 2 x 2
    assert re.search(r"median retrained val_loss: flat [\d.]+, coarse-to-fine [\d.]+", out)


@pytest.mark.slow  # 16 s of CPU: the service run of benchmarks/coarse_to_fine_service.py in small
def test_coarse_to_fine_through_the_service_quick(capsys):
    """The same arms as study documents on a real server and two worker processes: the staged arm's
    second stage starts by itself, and the retrain is the service's repeat_top."""
    assert _load("coarse_to_fine_service").main(["--quick"]) == 0
    out = capsys.readouterr().out
    flat = re.search(r"^\s*\d+ flat\s+(\d+)\s+(\d+)\s+[\d.]+\s+[\d.]+", out, re.M)
    c2f = re.search(r"^\s*\d+ c2f\s+(\d+)\+(\d+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+\S+\s+\S+\s+\[", out, re.M)
    assert flat and c2f, out
    assert (int(flat.group(1)), int(flat.group(2))) == (3, 6)
    assert (int(c2f.group(1)), int(c2f.group(2)), int(c2f.group(3))) == (4, 2, 5)
    assert re.search(r"median retrained val_loss: flat [\d.]+, coarse-to-fine [\d.]+", out)
