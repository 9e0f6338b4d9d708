"""One contract, every optimizer in the registry: what the suggest flow relies on, whatever the engine."""
from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from tuneserve_service.optimizers import registry
from tuneserve_service.optimizers.base import Observation, SpaceExhausted, Suggestion
from tuneserve_service.optimizers.grid import GridOptimizer
from tuneserve_service.space import SearchSpace, SpaceError, params_key, parse_parameters

def _engine_param(method: str):
    # botorch is an optional server extra ([botorch], which [test] brings): without it, its cases
    # skip with the reason instead of failing on the import.
    if method == "botorch" and importlib.util.find_spec("botorch") is None:
        return pytest.param(method, marks=pytest.mark.skip(reason="botorch is not installed (extra [botorch])"))
    return method


ALL_METHODS = [_engine_param(m) for m in registry.METHODS]
NON_GRID_METHODS = [_engine_param(m) for m in registry.METHODS if m != "grid"]


def optimizer(method: str):
    """The registered engine; botorch with a small acquisition search (2 restarts of 32 raw
    samples, short L-BFGS runs), since the contract is about what comes out, not how good it is,
    and its default search takes about a second per call on a loaded 2-core box."""
    opt = registry.get_optimizer(method)
    if method == "botorch":
        opt.num_restarts, opt.raw_samples, opt.maxiter, opt.fit_maxiter, opt.mc_samples = 2, 32, 20, 30, 32
    return opt

# Every distribution the parser knows, nested blocks included (W&B's exponent forms are only legal
# nested), and categoricals of every JSON type: model-based engines must map each one into their own
# form and back, and handle categoricals by index whatever their values are.
CONTINUOUS = parse_parameters({
    "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "dropout": {"min": 0.0, "max": 0.6},
    "epochs": {"min": 1, "max": 6},
    "batch": {"distribution": "q_log_uniform_values", "min": 16, "max": 256, "q": 16},
    "momentum": {"distribution": "q_uniform", "min": 0.5, "max": 0.95, "q": 0.05},
    "decay": {"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1e-1},
    "v1": {"parameters": {
        "scale": {"distribution": "log_uniform", "min": -3, "max": 1},
        "inv_scale": {"distribution": "inv_log_uniform", "min": 0, "max": 2},
        "qscale": {"distribution": "q_log_uniform", "min": 1, "max": 4, "q": 4},
    }},
    "noise": {"distribution": "normal", "mu": 0.5, "sigma": 0.1},
    "qnoise": {"distribution": "q_normal", "mu": 4, "sigma": 2, "q": 1},
    "width": {"distribution": "log_normal", "mu": 1.0, "sigma": 0.5},
    "qwidth": {"distribution": "q_log_normal", "mu": 2.0, "sigma": 0.5, "q": 2},
    "mix": {"distribution": "beta", "a": 2, "b": 5},
    "qmix": {"distribution": "q_beta", "a": 0.5, "b": 0.5, "q": 0.125},
    "activation": {"value": "relu"},
    "arch": {"values": [{"depth": 2, "widths": [16, 32]}, {"depth": 3, "widths": None}, [1, 2], None, "plain"]},
    "aug-level": {"values": [0, 0, 0, 1, 2]},                     # repeated values are weights
    "model.kind": {"values": [True, False]},                       # a dot inside a W&B name
    "optimizer": {"parameters": {
        "name": {"values": ["sgd", "adam", "rmsprop"]},
        "nesterov": {"values": [True, False], "probabilities": [0.25, 0.75]},
    }},
})

# 12 points: small enough to check exhaustion, large enough to need several calls.
FINITE = parse_parameters({
    "opt": {"values": ["sgd", "adam"]},
    "epochs": {"min": 1, "max": 3},
    "mom": {"distribution": "q_uniform", "min": 0.8, "max": 0.9, "q": 0.1},
    "seed": {"value": 0},
})

TINY = parse_parameters({"opt": {"values": ["sgd", "adam"]}, "layers": {"min": 1, "max": 2}})   # 4 points


def spaces_for(method: str) -> list[SearchSpace]:
    # Grid search is only defined on finite spaces (validate_method rejects the others).
    return [FINITE] if method == "grid" else [CONTINUOUS, FINITE]


def objective(space: SearchSpace, params: dict) -> float:
    """A smooth made-up loss so model-based engines have something to fit."""
    u = space.to_unit(params)
    return float(np.sum((u - 0.3) ** 2))


def history(space: SearchSpace, n: int, seed: int = 0, failures: bool = True) -> list[Observation]:
    rng = np.random.default_rng(seed)
    # Distinct grid points where the grid is big enough, as a real grid study's history is.
    size = space.grid_size()
    points = space.grid() if size is not None and n <= size else None
    out = []
    for i in range(n):
        params = points[i] if points else space.sample(rng)
        if failures and i % 5 == 3:
            out.append(Observation(params=params, value=None, state="diverged" if i % 2 else "failed"))
        else:
            out.append(Observation(params=params, value=objective(space, params)))
    return out


def assert_legal(space: SearchSpace, suggestions: list[Suggestion]) -> None:
    for s in suggestions:
        assert isinstance(s, Suggestion)
        assert set(s.params) == set(space.names), s.params
        assert space.contains(s.params), s.params
        assert isinstance(s.method, str) and s.method


@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_is_registered_under_its_name(method):
    assert registry.get_optimizer(method).name == method


@pytest.mark.parametrize("method", ALL_METHODS)
def test_empty_history_gives_the_requested_count_inside_the_space(method):
    opt = optimizer(method)
    for space in spaces_for(method):
        suggestions = opt.suggest(space, [], [], count=3, seed=1)
        assert len(suggestions) == 3
        assert_legal(space, suggestions)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_history_with_failures_is_accepted(method, goal):
    # Diverged and failed trials arrive with value None; they must not break any engine.
    opt = optimizer(method)
    for space in spaces_for(method):
        completed = history(space, 11 if method == "grid" else 25)
        assert any(o.value is None for o in completed)
        suggestions = opt.suggest(space, completed, [], count=1, seed=3, goal=goal)
        assert len(suggestions) == 1
        assert_legal(space, suggestions)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_all_failed_history_is_accepted(method):
    opt = optimizer(method)
    for space in spaces_for(method):
        completed = [Observation(params=p.params, value=None, state="failed") for p in history(space, 6)]
        assert_legal(space, opt.suggest(space, completed, [], count=2, seed=4))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_same_seed_and_history_give_the_same_answer(method):
    for space in spaces_for(method):
        # 23 results: a history that is not its own checkpoint for botorch's warm-started fit
        completed = history(space, 8 if method == "grid" else 23, seed=5)
        pending = [history(space, 1, seed=99, failures=False)[0].params] if method != "grid" else []
        a = optimizer(method).suggest(space, completed, pending, count=3, seed=42)
        b = optimizer(method).suggest(space, completed, pending, count=3, seed=42)
        assert [s.params for s in a] == [s.params for s in b]


@pytest.mark.parametrize("method", ALL_METHODS)
def test_pending_points_are_avoided(method):
    # Three of the four points are running: the only honest suggestion is the fourth.
    grid = TINY.grid()
    for free in range(len(grid)):
        pending = [p for i, p in enumerate(grid) if i != free]
        suggestions = optimizer(method).suggest(TINY, [], pending, count=1, seed=free)
        assert [s.params for s in suggestions] == [grid[free]]


@pytest.mark.parametrize("method", ["random", "grid"])
def test_model_free_methods_also_avoid_completed_points(method):
    # Not part of the shared contract: a model-based engine may deliberately re-measure a point.
    grid = TINY.grid()
    completed = [Observation(params=grid[0], value=1.0), Observation(params=grid[1], value=None, state="diverged")]
    suggestions = optimizer(method).suggest(TINY, completed, [grid[3]], count=1, seed=7)
    assert [s.params for s in suggestions] == [grid[2]]


@pytest.mark.parametrize("method", ALL_METHODS)
def test_one_call_does_not_repeat_itself(method):
    suggestions = optimizer(method).suggest(TINY, [], [], count=4, seed=8)
    assert len({params_key(s.params) for s in suggestions}) == 4


@pytest.mark.parametrize("method", NON_GRID_METHODS)
def test_continuous_suggestions_differ_from_pending(method):
    pending = [CONTINUOUS.sample(np.random.default_rng(i)) for i in range(5)]
    suggestions = optimizer(method).suggest(CONTINUOUS, history(CONTINUOUS, 15), pending, count=4, seed=9)
    keys = [params_key(s.params) for s in suggestions]
    assert len(set(keys)) == 4
    assert not set(keys) & {params_key(p) for p in pending}


# --- method-specific behaviour the service relies on -------------------------------------------

def test_grid_walks_every_point_once_then_is_exhausted():
    opt = GridOptimizer()
    seen, completed = [], []
    while True:
        try:
            batch = opt.suggest(FINITE, completed, [], count=5, seed=0)
        except SpaceExhausted:
            break
        assert 1 <= len(batch) <= 5
        seen.extend(s.params for s in batch)
        completed.extend(Observation(params=s.params, value=1.0) for s in batch)
    assert seen == FINITE.grid()
    assert registry.grid_size(FINITE) == len(seen) == 12


def test_grid_returns_fewer_points_near_the_end():
    grid = FINITE.grid()
    completed = [Observation(params=p, value=0.0) for p in grid[:-2]]
    batch = GridOptimizer().suggest(FINITE, completed, [], count=5, seed=0)
    assert [s.params for s in batch] == grid[-2:]


def test_grid_compares_history_by_value():
    grid = FINITE.grid()
    # The same points as stored JSON gives them back: floats for ints, keys in another order.
    completed = [Observation(params={k: (float(v) if k == "epochs" else v) for k, v in reversed(p.items())}, value=0.0)
                 for p in grid[:3]]
    batch = GridOptimizer().suggest(FINITE, completed, [], count=1, seed=0)
    assert batch[0].params == grid[3]


def test_grid_over_a_continuous_space_names_the_dimension():
    space = parse_parameters({"opt": {"values": ["a", "b"]}, "net": {"parameters": {"lr": {"min": 0.0, "max": 1.0}}}})
    with pytest.raises(ValueError, match="net.lr") as err:
        GridOptimizer().suggest(space, [], [], count=1, seed=0)
    assert isinstance(err.value, SpaceError) and err.value.path == "net.lr"
    with pytest.raises(SpaceError) as err:
        registry.validate_method("grid", space)
    assert err.value.path == "net.lr" and "continuous" in str(err.value)
    assert registry.grid_size(space) is None
    for method in ("random", "tpe", "gp"):
        registry.validate_method(method, space)          # fine for every other method


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(registry.UnknownMethod) as err:
        registry.get_optimizer("bayes")
    assert isinstance(err.value, ValueError)
    assert err.value.name == "bayes" and tuple(err.value.valid) == registry.METHODS
    assert "random, grid, tpe, tpe_hyperopt, gp" in str(err.value)
    with pytest.raises(registry.UnknownMethod):
        registry.validate_method("hyperband", FINITE)


def test_random_depends_on_the_seed():
    opt = registry.get_optimizer("random")
    a = opt.suggest(CONTINUOUS, [], [], count=2, seed=1)
    b = opt.suggest(CONTINUOUS, [], [], count=2, seed=2)
    assert [s.params for s in a] != [s.params for s in b]


def test_random_follows_the_prior():
    # Seeded draws are the space's own samples (no hidden reordering): the mean of a uniform is its centre.
    space = parse_parameters({"x": {"min": 0.0, "max": 1.0}})
    xs = [s.params["x"] for s in registry.get_optimizer("random").suggest(space, [], [], count=2000, seed=0)]
    assert math.isclose(np.mean(xs), 0.5, abs_tol=0.03)


def test_random_repeats_only_when_every_point_is_taken():
    grid = TINY.grid()
    suggestions = registry.get_optimizer("random").suggest(TINY, [], grid, count=2, seed=0)
    assert len(suggestions) == 2
    assert_legal(TINY, suggestions)
    assert all(s.info.get("repeat") for s in suggestions)


def test_random_never_picks_a_zero_probability_value_to_avoid_a_repeat():
    space = parse_parameters({"opt": {"values": ["a", "b", "c"], "probabilities": [0.5, 0.5, 0.0]}})
    suggestions = registry.get_optimizer("random").suggest(space, [], [{"opt": "a"}], count=2, seed=0)
    assert suggestions[0].params == {"opt": "b"}
    assert suggestions[1].params["opt"] in ("a", "b") and suggestions[1].info.get("repeat")


# --- categoricals of any JSON type, through storage ----------------------------------------------

def _stored(params: dict) -> dict:
    """Params as a JSON column gives them back: lists for tuples, mapping keys reordered."""
    def reorder(v):
        if isinstance(v, dict):
            return {k: reorder(v[k]) for k in sorted(v, reverse=True)}
        if isinstance(v, list):
            return [reorder(x) for x in v]
        return v
    return {k: reorder(v) for k, v in json.loads(json.dumps(params)).items()}


@pytest.mark.parametrize("method", NON_GRID_METHODS)
def test_suggestions_round_trip_through_json_with_any_value_type(method):
    completed = [Observation(params=_stored(o.params), value=o.value, state=o.state) for o in history(CONTINUOUS, 14)]
    pending = [_stored(CONTINUOUS.sample(np.random.default_rng(50)))]
    suggestions = optimizer(method).suggest(CONTINUOUS, completed, pending, count=3, seed=12)
    assert len(suggestions) == 3
    for s in suggestions:
        text = json.dumps(s.params, allow_nan=False)           # plain JSON: no tuples, no FrozenMap
        again = json.loads(text)
        assert again == s.params
        assert CONTINUOUS.contains(again)
        arch = s.params["arch"]
        assert arch is None or isinstance(arch, (dict, list, str))
        if isinstance(arch, dict):
            assert type(arch) is dict and arch["depth"] in (2, 3)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_categoricals_are_handled_by_index_not_value(method):
    # Values a model cannot order or hash (mappings, lists, null, mixed types): every engine must
    # still learn from them and hand them back unchanged.
    space = parse_parameters({
        "block": {"values": [{"kind": "res", "n": 2}, {"kind": "plain"}, None, [3, 3]]},
        "act": {"values": ["relu", 1, False]},
    })
    grid = space.grid()
    completed = [Observation(params=_stored(p), value=float(i)) for i, p in enumerate(grid[:6])]
    suggestions = optimizer(method).suggest(space, completed, [], count=2, seed=5)
    assert_legal(space, suggestions)
    for s in suggestions:
        assert s.params["block"] in [{"kind": "res", "n": 2}, {"kind": "plain"}, None, [3, 3]]


def test_repeated_values_are_weights_for_random_search():
    space = parse_parameters({"aug": {"values": ["none", "none", "none", "flip"]}})
    draws = [s.params["aug"] for s in registry.get_optimizer("random").suggest(space, [], [], count=1500, seed=2)]
    assert math.isclose(draws.count("none") / len(draws), 0.75, abs_tol=0.04)  # 3.6 sd


def test_grid_runs_a_repeated_value_once():
    # W&B's grid skips a combination it has already produced: each distinct value once.
    space = parse_parameters({"aug": {"values": ["none", "flip", "none"]}, "k": {"values": [1, 2]}})
    assert registry.grid_size(space) == 4
    points = [s.params for s in GridOptimizer().suggest(space, [], [], count=10, seed=0)]
    assert points == [{"aug": "none", "k": 1}, {"aug": "none", "k": 2}, {"aug": "flip", "k": 1}, {"aug": "flip", "k": 2}]


@pytest.mark.parametrize("method", ALL_METHODS)
def test_beta_and_q_beta_stay_on_their_support(method):
    space = parse_parameters({"mix": {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.25},
                              "p": {"distribution": "beta", "a": 0.5, "b": 3}} if method != "grid" else
                             {"mix": {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.25}})
    completed = history(space, 12 if method != "grid" else 3)
    for s in optimizer(method).suggest(space, completed, [], count=2, seed=1):
        assert s.params["mix"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert type(s.params["mix"]) is float
        if "p" in s.params:
            assert 0.0 <= s.params["p"] <= 1.0


@pytest.mark.parametrize("method", NON_GRID_METHODS)
def test_a_one_value_choice_with_pending_trials(method):
    """A refine restricts a choice to the one value its top trials agreed on; the duplicate guard must
    place the model's candidates (which leave that choice out) against pending trials (which have it)."""
    space = parse_parameters({"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0},
                              "batch_size": {"values": [32]}, "opt": {"values": ["sgd", "adam"]}})
    rng = np.random.default_rng(np.random.SeedSequence([4, 0]))
    completed = [Observation({"lr": float(x), "batch_size": 32, "opt": "sgd"}, float(x))
                 for x in rng.uniform(1e-3, 1.0, 30)]
    out = optimizer(method).suggest(space, completed, [{"lr": 0.5, "batch_size": 32, "opt": "adam"}],
                                                 2, 7, "minimize")
    assert [s.method for s in out] == [method, method]   # the engine itself, not the random fallback
    assert all(space.contains(s.params) and s.params["batch_size"] == 32 for s in out)
