"""The pure parts of several objectives: Pareto ranks and hypervolume (moocore), the MOTPE /
constrained-TPE order, ParEGO's scalarisation, and the engines' suggestions with vectors,
constraints and pending trials."""
from __future__ import annotations

import numpy as np
import pytest

from tuneserve_service.optimizers import pareto
from tuneserve_service.optimizers.base import Observation
from tuneserve_service.optimizers.gp import GPOptimizer
from tuneserve_service.optimizers.multi import gp_observations, parego_weights, tpe_observations
from tuneserve_service.optimizers.tpe import TPEOptimizer
from tuneserve_service.space import parse_parameters

SPACE = parse_parameters({"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}})


def test_ranks_hypervolume_and_contributions():
    Y = np.array([[1, 2], [2, 1], [2, 2], [3, 3.0]])
    assert pareto.ranks(Y).tolist() == [1, 1, 2, 3]
    assert pareto.hypervolume(Y, 4.0) == pytest.approx(8.0)
    assert pareto.hypervolume(np.array([[5.0, 5.0]]), 4.0) == 0.0       # beyond the reference point
    assert pareto.contributions(Y[:2], 4.0).tolist() == pytest.approx([2.0, 2.0])
    assert pareto.to_min(np.array([[1.0, 2.0]]), ("minimize", "maximize")).tolist() == [[1.0, -2.0]]
    assert pareto.hypervolume_history(Y, 4.0) == pytest.approx([6.0, 8.0, 8.0, 8.0])


def test_order_puts_the_front_first_then_dominated_then_infeasible_by_violation():
    Y = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.9, 0.9], [0.0, 0.0], [0.1, 0.1]])
    v = np.array([0.0, 0.0, 0.0, 0.0, 2.0, np.nan])
    pos = pareto.order(Y, v)
    assert set(pos[:3]) == {0, 1, 2}          # the feasible front (ranks 1) first
    assert pos[3] == 3 and pos[4] == 4 and pos[5] == 5   # then rank 2, then violation 2, then unknown
    # Within one rank the larger hypervolume contribution comes first: the middle point of a
    # front (0,1), (0.2,0.2), (1,0) contributes most.
    pos = pareto.order(np.array([[0.0, 1.0], [0.2, 0.2], [1.0, 0.0]]))
    assert pos[1] == 0


def test_tpe_observations_value_is_the_order_and_failed_stay_failed():
    obs = [Observation({"x": 0.1, "y": 0.1}, 1.0, values=(1.0, 5.0)),
           Observation({"x": 0.2, "y": 0.2}, 2.0, values=(2.0, 1.0)),
           Observation({"x": 0.3, "y": 0.3}, 3.0, values=(3.0, 6.0)),
           Observation({"x": 0.4, "y": 0.4}, None, state="failed")]
    out = tpe_observations(obs, ("minimize", "minimize"))
    assert sorted(o.value for o in out[:2]) == [0.0, 1.0] and out[2].value == 2.0
    assert out[3].value is None and out[3].state == "failed"
    out = tpe_observations(obs, ("minimize", "maximize"))   # maximising the second: 1 is dominated by 0
    assert {out[0].value, out[2].value} == {0.0, 1.0} and out[1].value == 2.0


def test_parego_scalarises_with_seeded_simplex_weights_and_keeps_constraints_apart():
    w = parego_weights(3, 7)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all() and np.allclose(w, parego_weights(3, 7))
    obs = [Observation({"x": 0.1, "y": 0.1}, 0.0, values=(0.0, 1.0), constraints=(0.5,)),
           Observation({"x": 0.2, "y": 0.2}, 1.0, values=(1.0, 0.0), constraints=(-0.1,)),
           Observation({"x": 0.3, "y": 0.3}, 1.0, values=(1.0, 1.0), constraints=(None,))]
    out, C = gp_observations(obs, ("minimize", "minimize"), 3)
    assert out[2].value > max(out[0].value, out[1].value)   # dominated: a worse scalar whatever the weights
    assert C[0, 0] == 0.5 and C[1, 0] == -0.1 and C[2, 0] > 0.5   # not reported: worse than every violation
    infeasible = [Observation(o.params, o.value, values=o.values, constraints=(1.0 + i,)) for i, o in enumerate(obs)]
    out, C = gp_observations(infeasible, ("minimize", "minimize"), 3)
    assert C is None and [o.value for o in out] == [1.0, 2.0, 3.0]   # nothing feasible: minimise the violation


def _history(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = {"x": float(rng.random()), "y": float(rng.random())}
        out.append(Observation(p, p["x"], values=(p["x"], 1 - p["x"] ** 0.5 + p["y"]), constraints=(p["y"] - 0.5,)))
    return out


@pytest.mark.parametrize("engine", [TPEOptimizer, GPOptimizer])
def test_engines_suggest_apart_from_pending_trials_and_deterministically(engine):
    hist = _history(14)
    pending = [{"x": 0.05, "y": 0.05}, {"x": 0.5, "y": 0.2}]
    first = engine().suggest(SPACE, hist, pending, 3, 11, "minimize", goals=("minimize", "minimize"))
    again = engine().suggest(SPACE, hist, pending, 3, 11, "minimize", goals=("minimize", "minimize"))
    assert [s.params for s in first] == [s.params for s in again]
    assert all(s.method == engine.name for s in first)
    assert all(s.info["n_pending"] == 2 for s in first)
    pts = [np.array([s.params["x"], s.params["y"]]) for s in first] + [np.array([p["x"], p["y"]]) for p in pending]
    for i in range(3):
        for j in range(len(pts)):
            if i != j:
                assert np.linalg.norm(pts[i] - pts[j]) >= 0.02 * np.sqrt(2) - 1e-12


def test_constrained_tpe_moves_into_the_feasible_region():
    """minimise x subject to y >= 0.8 (so y - 0.8 <= 0 is negated: 0.8 - y): after 30 trials the
    model's draws are mostly feasible."""
    rng = np.random.default_rng(1)
    hist = []
    for _ in range(30):
        p = {"x": float(rng.random()), "y": float(rng.random())}
        hist.append(Observation(p, p["x"], values=(p["x"],), constraints=(0.8 - p["y"],)))
    sugg = []
    for k in range(20):
        (s,) = TPEOptimizer().suggest(SPACE, hist, [], 1, 100 + k, "minimize", goals=("minimize",))
        sugg.append(s.params)
    assert np.mean([p["y"] >= 0.8 for p in sugg]) >= 0.6   # a prior draw is feasible 20% of the time
