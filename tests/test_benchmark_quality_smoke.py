"""benchmarks/optimizer_quality.py's runs work for every method of ours (a few evaluations each), so
the quality benchmark cannot rot between the times someone spends an hour running it. Optuna is a
benchmark extra, not a test dependency: its two methods are left out here."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
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


def _run(problem, method, seed, regret, pending=0):
    return {"problem": problem, "method": method, "seed": seed, "pending": pending,
            "values": [bench.PROBLEMS[problem][2] + regret + 1.0, bench.PROBLEMS[problem][2] + regret],
            "ask_seconds": 0.2, "ask_cpu_seconds": 0.2 if method == "botorch" else 0.8,
            "on_bound": 0, "corners": 0}


def test_the_median_ratio_interval_resamples_seeds_in_pairs():
    b = np.array([0.01, 0.1, 1.0, 5.0, 8.0])
    # a run that is twice the other on every seed: every resample keeps the pairs, so the ratio is 2
    assert bench.median_ratio_interval(2 * b, b) == pytest.approx((2.0, 2.0))
    lo, hi = bench.median_ratio_interval(b[::-1].copy(), b)   # the same values, paired otherwise
    assert lo < 1.0 < hi
    assert all(math.isnan(x) for x in bench.median_ratio_interval(b[:3], b))


def test_the_report_counts_the_seeds_botorch_wins_against_ax(capsys):
    raw = [_run("branin", "ax", s, r) for s, r in enumerate([0.1, 0.2, 0.3])]
    raw += [_run("branin", "botorch", s, r) for s, r in enumerate([0.05, 0.4, 0.1])]
    raw += [_run("branin", "botorch", s, 2 * r, pending=8) for s, r in enumerate([0.05, 0.4, 0.1])]
    bench.report(raw)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| branin | 3 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # n, Ax, botorch, botorch / Ax, [interval], below Ax, 8 pending, 8 pending / sequential, CPU ms: Ax, botorch,
    # their ratio (CPU per suggestion: 0.8 s and 0.2 s over two evaluations each)
    interval = cells.pop(5)
    assert cells[1:11] == ["3", "0.2", "0.1", "0.50", "2 of 3", "0.2", "2.00", "400", "100", "0.25"]
    lo, hi = (float(x) for x in interval.split("-"))
    assert lo <= 0.5 <= hi and (lo, hi) == pytest.approx(
        bench.median_ratio_interval(np.array([0.05, 0.4, 0.1]), np.array([0.1, 0.2, 0.3])), abs=0.005)
