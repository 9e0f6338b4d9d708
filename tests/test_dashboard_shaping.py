"""The dashboard's pure shaping: which trials a chart draws, best-so-far, downsampling, and the
importance evaluator on data whose answer is known."""
from __future__ import annotations

import numpy as np

from tuneserve_service.dashboard import importance
from tuneserve_service.dashboard.shaping import TrialPoint, best_so_far, downsample, param_columns, param_meta, pick_trials


def points(n: int) -> list[TrialPoint]:
    out = []
    for i in range(n):
        state = "running" if i % 50 == 7 else "pruned" if i % 5 == 1 else "completed"
        out.append(TrialPoint(id=i + 1, number=i, state=state, value=float((i * 7919) % 1000)))
    return out


def test_pick_trials_keeps_the_best_the_running_and_an_even_sample():
    pts = points(2000)
    picked = pick_trials(pts, "minimize", 200)
    assert len(picked) == 200 and [p.number for p in picked] == sorted(p.number for p in picked)
    completed = sorted((p for p in pts if p.state == "completed"), key=lambda p: p.value)
    ids = {p.id for p in picked}
    assert {p.id for p in completed[:80]} <= ids  # best 40% of the budget
    assert {p.id for p in pts if p.state == "running"} <= ids
    rest = sorted(p.number for p in picked if p.id not in {q.id for q in completed[:80]} and p.state != "running")
    assert rest[0] < 100 and rest[-1] > 1900  # the sample spans the whole study
    assert pick_trials(pts, "minimize", 200) == picked  # deterministic
    maximize = pick_trials(pts, "maximize", 200)
    assert {p.id for p in completed[-80:]} <= {p.id for p in maximize}
    assert pick_trials(pts[:10], "minimize", 200) == pts[:10]


def test_best_so_far_ignores_everything_but_completed_values():
    values = [3.0, None, 1.0, 0.5, 2.0, 0.1]
    states = ["completed", "failed", "completed", "pruned", "completed", "completed"]
    assert best_so_far(values, states, "minimize") == [3.0, 3.0, 1.0, 1.0, 1.0, 0.1]
    assert best_so_far(values, states, "maximize") == [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert best_so_far([None], ["running"], "minimize") == [None]


def test_downsample_keeps_ends_and_extremes():
    xs = list(range(1, 10_001))
    ys = [np.sin(x / 300) for x in xs]
    ys[4321] = 50.0  # a spike
    ys[7000] = -50.0
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) <= 100 and dx[0] == 1 and dx[-1] == 10_000 and dx == sorted(dx)
    assert 50.0 in dy and -50.0 in dy
    assert downsample([1, 2, 3], [1.0, 2.0, 3.0], 100) == ([1, 2, 3], [1.0, 2.0, 3.0])


SPACE = [
    {"name": "lr", "distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
    {"name": "dropout", "distribution": "uniform", "min": 0.0, "max": 0.5},
    {"name": "noise", "distribution": "uniform", "min": 0.0, "max": 1.0},
    {"name": "act", "distribution": "categorical", "values": ["relu", "gelu", "tanh"]},
    {"name": "epochs", "distribution": "constant", "value": 3},
]


def test_importance_ranks_the_parameters_that_matter():
    meta = param_meta(SPACE)
    assert [m["name"] for m in meta] == ["lr", "dropout", "noise", "act"]  # the constant left out
    rng = np.random.default_rng(np.random.SeedSequence([0, 1]))
    params = []
    for _ in range(300):
        params.append({"lr": float(10 ** rng.uniform(-5, 0)), "dropout": float(rng.uniform(0, 0.5)),
                       "noise": float(rng.uniform()), "act": str(rng.choice(["relu", "gelu", "tanh"]))})
    values = [abs(np.log10(p["lr"]) + 2.5) + (0.8 if p["act"] == "tanh" else 0.0) + 0.2 * p["dropout"]
              for p in params]
    result = importance.compute(meta, param_columns(meta, params), values, seed=3)
    ranked = [n for _, n in sorted(zip(result.mean, result.names), reverse=True)]
    share = dict(zip(result.names, result.mean))
    assert ranked[:2] == ["lr", "act"] and share["noise"] < 0.05 and share["lr"] > 0.5
    assert abs(sum(result.mean) - 1) < 1e-9 and result.trials == 300 and result.r2 > 0.8
    again = importance.compute(meta, param_columns(meta, params), values, seed=3)
    assert again == result  # seeded: the same study gives the same bars


def test_importance_needs_enough_varied_trials():
    meta = param_meta(SPACE)
    few = [{"lr": 0.1, "dropout": 0.1, "noise": 0.5, "act": "relu"}] * 5
    assert importance.compute(meta, param_columns(meta, few), [1.0] * 5, seed=0) is None
    flat = [{"lr": 0.1 * (i + 1), "dropout": 0.1, "noise": 0.5, "act": "relu"} for i in range(9)]
    assert importance.compute(meta, param_columns(meta, flat), [1.0] * 9, seed=0) is None
