"""benchmarks/optimizer_quality.py's runs work for every method of ours (a few evaluations each), so
the quality benchmark cannot rot between the times someone spends an hour running it. Optuna is a
benchmark extra, not a test dependency: its two methods are left out here."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import optimizer_quality as bench  # noqa: E402


@pytest.mark.parametrize("method", ["random", "tpe", "tpe_hyperopt", "gp", "bayes_opt"])
@pytest.mark.parametrize("pending", [0, 3])
def test_a_short_run_evaluates_legal_points(method, pending):
    if method == "bayes_opt" and pending:
        pytest.skip("the shipped-library reference runs sequentially only")
    values = bench.run_once("branin", method, seed=0, pending=pending, evals=14)
    assert len(values) == 14 and all(math.isfinite(v) for v in values)
    assert min(values) >= bench.PROBLEMS["branin"][2] - 1e-9


def test_model_methods_beat_their_start_up_on_a_bowl():
    # 30 evaluations of Branin: the model phase must find something better than the 10 prior draws
    for method in ("tpe", "gp"):
        values = bench.run_once("branin", method, seed=1, pending=0, evals=30)
        assert min(values[10:]) < min(values[:10]), method
