"""The model-based optimizers, "tpe" (multivariate TPE), "tpe_hyperopt" (hyperopt's TPE) and "gp"
(bayesian-optimization GP), all rebuilt from history: legal values for every distribution, determinism, pending avoidance, failures as bad
results, goal direction, quiet stdout. Every test runs on every engine."""
from __future__ import annotations

import numpy as np
import pytest

from tuneserve_service.optimizers.base import Observation
from tuneserve_service.optimizers.gp import GPOptimizer
from tuneserve_service.optimizers.tpe import TPEOptimizer
from tuneserve_service.optimizers.tpe_hyperopt import HyperoptTPEOptimizer
from tuneserve_service.space import Dimension, SearchSpace, parse_parameters

EVERY_DISTRIBUTION = SearchSpace((
    Dimension(name="c", distribution="constant", value=7),
    Dimension(name="cat", distribution="categorical", values=("a", "b", "c")),
    Dimension(name="pcat", distribution="categorical", values=(16, 32, 64), probabilities=(0.2, 0.5, 0.3)),
    Dimension(name="i", distribution="int_uniform", min=1, max=5),
    Dimension(name="u", distribution="uniform", min=-1.0, max=2.0),
    Dimension(name="qu", distribution="q_uniform", min=0.0, max=1.0, q=0.25),
    Dimension(name="luv", distribution="log_uniform_values", min=1e-5, max=1e-1),
    Dimension(name="qluv", distribution="q_log_uniform_values", min=8, max=256, q=8),
    Dimension(name="iluv", distribution="inv_log_uniform_values", min=0.01, max=1.0),
    Dimension(name="lu", distribution="log_uniform", min=-6.0, max=0.0),
    Dimension(name="ilu", distribution="inv_log_uniform", min=0.0, max=4.0),
    Dimension(name="n", distribution="normal", mu=0.0, sigma=1.0),
    Dimension(name="qn", distribution="q_normal", mu=0.0, sigma=2.0, q=0.5),
    Dimension(name="ln", distribution="log_normal", mu=0.0, sigma=0.5),
    Dimension(name="qln", distribution="q_log_normal", mu=2.0, sigma=0.5, q=1),
))


ENGINES = {"tpe": TPEOptimizer, "tpe_hyperopt": HyperoptTPEOptimizer, "gp": GPOptimizer}


@pytest.fixture(params=sorted(ENGINES))
def engine(request):
    return request.param


def _history(space, n, fn, seed=0):
    rng = np.random.default_rng(seed)
    return [Observation(p, fn(p)) for p in (space.sample(rng) for _ in range(n))]


def _loss(p):
    return (p["u"] - 0.5) ** 2 + abs(np.log(p["luv"]) + 5) + (p["cat"] != "b")


@pytest.mark.parametrize("n_history", [0, 4, 7, 30])
def test_every_distribution_round_trips_to_legal_values(engine, n_history):
    hist = _history(EVERY_DISTRIBUTION, n_history, _loss)
    opt = ENGINES[engine]()
    out = opt.suggest(EVERY_DISTRIBUTION, hist, [], 4, seed=3)
    assert len(out) == 4
    for s in out:
        assert list(s.params) == EVERY_DISTRIBUTION.names
        assert EVERY_DISTRIBUTION.contains(s.params), s.params
        assert isinstance(s.params["i"], int) and s.params["c"] == 7
    assert {s.method for s in out} == ({"random"} if n_history < opt.n_startup else {engine})


def test_nested_blocks_from_the_parser(engine):
    space = parse_parameters({
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "optimizer": {"parameters": {
            "name": {"values": ["sgd", "adam"], "probabilities": [0.3, 0.7]},
            "momentum": {"distribution": "q_uniform", "min": 0.5, "max": 0.99, "q": 0.01},
        }},
    })
    hist = _history(space, 15, lambda p: p["lr"] + p["optimizer.momentum"])
    for s in ENGINES[engine]().suggest(space, hist, [], 3, seed=1):
        assert space.contains(s.params) and "optimizer.name" in s.params


def test_same_seed_and_history_give_the_same_suggestions(engine):
    hist = _history(EVERY_DISTRIBUTION, 25, _loss)
    a = ENGINES[engine]().suggest(EVERY_DISTRIBUTION, hist, [], 3, seed=11)
    b = ENGINES[engine]().suggest(EVERY_DISTRIBUTION, hist, [], 3, seed=11)
    c = ENGINES[engine]().suggest(EVERY_DISTRIBUTION, hist, [], 3, seed=12)
    assert [s.params for s in a] == [s.params for s in b]
    assert [s.params for s in a] != [s.params for s in c]


@pytest.mark.parametrize("n_history", [3, 40])
def test_eight_concurrent_suggestions_do_not_duplicate(engine, n_history):
    space = SearchSpace(tuple(Dimension(name=f"x{i}", distribution="uniform", min=0.0, max=1.0) for i in range(3)))
    hist = _history(space, n_history, lambda p: sum((v - 0.3) ** 2 for v in p.values()))
    opt = ENGINES[engine]()
    batch = [s.params for s in opt.suggest(space, hist, [], 8, seed=5)]
    # and one at a time, the earlier ones pending (how parallel workers ask)
    pending = []
    for i in range(8):
        pending.append(opt.suggest(space, hist, list(pending), 1, seed=100 + i)[0].params)
    for pts in (batch, pending):
        U = np.vstack([space.to_unit(p) for p in pts])
        d = np.linalg.norm(U[:, None] - U[None], axis=2) + np.eye(8) * 9
        assert d.min() > 0.02 * np.sqrt(3), d.min()


def test_failed_and_diverged_trials_count_as_bad(engine):
    space = SearchSpace((Dimension(name="x", distribution="uniform", min=0.0, max=1.0),))
    rng = np.random.default_rng(0)
    hist = []
    for _ in range(40):
        x = float(rng.uniform())
        # the model must learn from failures alone: x > 0.5 always fails or diverges
        if x > 0.5:
            hist.append(Observation({"x": x}, None, "failed" if x > 0.75 else "diverged"))
        else:
            hist.append(Observation({"x": x}, 1.0 + 0.01 * x))
    xs = [s.params["x"] for s in ENGINES[engine]().suggest(space, hist, [], 10, seed=2)]
    assert np.mean(np.array(xs) < 0.5) >= 0.8, xs


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_goal_is_honoured_on_a_quadratic(engine, goal):
    space = SearchSpace((Dimension(name="x", distribution="uniform", min=-5.0, max=5.0),))
    sign = 1.0 if goal == "minimize" else -1.0
    rng = np.random.default_rng(1)
    hist = []
    for _ in range(25):   # the optimum is x = 2 either way
        x = float(rng.uniform(-5, 5))
        hist.append(Observation({"x": x}, sign * (x - 2.0) ** 2))
    opt = ENGINES[engine]()
    for i in range(10):
        p = opt.suggest(space, hist, [], 1, seed=i, goal=goal)[0].params
        hist.append(Observation(p, sign * (p["x"] - 2.0) ** 2))
    last = [o.params["x"] for o in hist[-10:]]
    assert np.median(np.abs(np.array(last) - 2.0)) < 1.0, last


def test_nothing_printed(engine, capsys):
    hist = _history(EVERY_DISTRIBUTION, 20, _loss)
    ENGINES[engine]().suggest(EVERY_DISTRIBUTION, hist, [hist[0].params], 2, seed=1)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
