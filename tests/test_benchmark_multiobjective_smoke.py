"""benchmarks/multiobjective.py's runs work (a few evaluations each, our engines only: Optuna is a
benchmark extra, not a test dependency), so the multi-objective benchmark cannot rot between the
times someone runs it; and its figures are right on points whose answer is known."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import multiobjective as bench  # noqa: E402


@pytest.mark.parametrize("method", ["tpe", "gp"])
def test_a_short_zdt_run_evaluates_legal_points_and_has_a_hypervolume(method):
    rows = bench.run(method, bench.zdt_space(), bench.zdt(1), ("minimize", "minimize"), 12, seed=0)
    assert len(rows) == 12
    for params, values, c in rows:
        assert all(0.0 <= params[f"x{i}"] <= 1.0 for i in range(bench.ZDT_DIM)) and c is None
        assert 0.0 <= values[0] <= 1.0 and values[1] >= 0.0
    hv = bench.hv_of(rows, ("minimize", "minimize"), np.ones(2), bench.ZDT_REF)
    assert 0.0 < hv < 1.1 * 11


def test_the_figures_on_known_points():
    front = [({}, (0.0, 1.0), None), ({}, (1.0, 0.0), None)]   # ZDT1's ends
    assert bench.hv_of(front, ("minimize", "minimize"), np.ones(2), np.array([1.1, 1.1])) == pytest.approx(
        1.1 * 1.1 - 1.0 * 1.0)
    assert bench.zdt(1)({f"x{i}": 0.0 for i in range(bench.ZDT_DIM)} | {"x0": 0.25}) == pytest.approx((0.25, 0.5))
    opt = {f"x{i}": 0.5 for i in range(bench.CON_DIM)}
    assert bench.constrained(opt) == pytest.approx((bench.CON_OPT, 0.0))
    rows = [({}, (0.7, ), 0.1), ({}, (0.76, ), 0.0), ({}, (0.8, ), -0.2)]
    assert bench.evals_to_optimum(rows, 3) == 2 and bench.evals_to_optimum(rows[:1], 3) == 4


@pytest.mark.parametrize("method", ["tpe", "gp"])
def test_a_short_constrained_run_stops_at_the_optimum_or_the_budget(method):
    rows = bench.run(method, {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(bench.CON_DIM)}, bench.constrained,
                     ("minimize",), 12, seed=0, constraint=True, stop=lambda out: bench.evals_to_optimum(out, 12) <= len(out))
    assert 1 <= len(rows) <= 12 and all(c is not None for _, _, c in rows)
