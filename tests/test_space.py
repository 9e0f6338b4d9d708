"""The W&B `parameters` parser and the search-space operations optimizers rely on."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tuneserve_service.space import (
    Dimension,
    SearchSpace,
    SpaceError,
    flatten_params,
    params_key,
    parse_parameters,
    split_name,
    unflatten_params,
)
from tuneserve_service.space.model import DISTRIBUTIONS

# One spec per distribution, with the range every draw must fall in (None: unbounded).
EVERY_DISTRIBUTION = {
    "const": ({"value": "relu"}, None),
    "const_list": ({"distribution": "constant", "value": [32, 64]}, None),
    "choice": ({"values": ["sgd", "adam", [1, 2]]}, None),
    "weighted": ({"distribution": "categorical_w_probabilities", "values": [1, 2, 3],
                  "probabilities": [0.2, 0.0, 0.8]}, None),
    "any_json": ({"values": [{"depth": 2}, None, [1, {"a": None}], "x", "x"]}, None),
    "epochs": ({"distribution": "int_uniform", "min": 1, "max": 4}, (1, 4)),
    "dropout": ({"distribution": "uniform", "min": 0.1, "max": 0.5}, (0.1, 0.5)),
    "momentum": ({"distribution": "q_uniform", "min": 0.5, "max": 0.95, "q": 0.05}, (0.5, 0.95)),
    "lr": ({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}, (1e-5, 1e-1)),
    "batch": ({"distribution": "q_log_uniform_values", "min": 16, "max": 256, "q": 16}, (16, 256)),
    "wd": ({"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1e-2}, (1e-4, 1e-2)),
    "beta": ({"distribution": "beta", "a": 2, "b": 3}, (0.0, 1.0)),
    "qbeta": ({"distribution": "q_beta", "q": 0.2}, (0.0, 1.0)),
    "noise": ({"distribution": "normal", "mu": 2.0, "sigma": 0.5}, None),
    "qnoise": ({"distribution": "q_normal", "q": 0.25}, None),
    "lnoise": ({"distribution": "log_normal", "sigma": 0.3}, None),
    "qlnoise": ({"distribution": "q_log_normal", "mu": 1.0, "q": 2}, None),
}


# W&B refuses its exponent ("v1") forms at the top level; nested they are legal.
V1 = {
    "scale": ({"distribution": "log_uniform", "min": -4, "max": 1}, (math.exp(-4), math.exp(1))),
    "inv_scale": ({"distribution": "inv_log_uniform", "min": 1, "max": 3}, (math.exp(-3), math.exp(-1))),
    "qscale": ({"distribution": "q_log_uniform", "min": 1, "max": 4, "q": 4}, (math.exp(1), math.exp(4))),
}
BOUNDS = {**EVERY_DISTRIBUTION, **{f"v1.{k}": v for k, v in V1.items()}}


@pytest.fixture(scope="module")
def full_space() -> SearchSpace:
    block = {name: spec for name, (spec, _) in EVERY_DISTRIBUTION.items()}
    block["v1"] = {"parameters": {name: spec for name, (spec, _) in V1.items()}}
    return parse_parameters(block)


def parse_one(spec: dict) -> Dimension:
    return parse_parameters({"x": spec}).dimensions[0]


def test_every_distribution_is_covered(full_space):
    assert {d.distribution for d in full_space.dimensions} == DISTRIBUTIONS


def test_every_distribution_samples_legal_values(full_space):
    rng = np.random.default_rng(7)
    for _ in range(500):
        params = full_space.sample(rng)
        assert full_space.contains(params), params
        for name, (_, bounds) in BOUNDS.items():
            value = params[name]
            if bounds is not None:
                lo, hi = bounds
                assert lo <= value <= hi, (name, value)


def test_sampled_types_follow_wandb(full_space):
    rng = np.random.default_rng(3)
    params = full_space.sample(rng)
    assert type(params["epochs"]) is int
    assert type(params["batch"]) is int and params["batch"] % 16 == 0      # integer q -> int
    assert type(params["qlnoise"]) is int and params["qlnoise"] >= 2         # positive multiple of q
    assert type(params["qnoise"]) is float                                   # q 0.25
    assert type(params["v1.qscale"]) is int and params["v1.qscale"] % 4 == 0
    for name in ("dropout", "lr", "wd", "v1.scale", "v1.inv_scale", "noise", "lnoise", "momentum", "qnoise",
                 "beta", "qbeta"):
        assert type(params[name]) is float, name
    assert params["const"] == "relu"
    assert params["const_list"] == [32, 64] and isinstance(params["const_list"], list)
    assert params["choice"] in ("sgd", "adam", [1, 2])


def test_quantized_floats_are_rounded_to_q_decimals():
    dim = parse_one({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.1})
    rng = np.random.default_rng(0)
    seen = {dim.sample(rng) for _ in range(300)}
    assert seen == {round(0.1 * k, 1) for k in range(11)}                   # 0.3, never 0.30000000000000004


def test_categorical_probabilities_are_respected():
    dim = parse_one({"values": ["a", "b", "c"], "probabilities": [0.7, 0.0, 0.3]})
    rng = np.random.default_rng(1)
    draws = [dim.sample(rng) for _ in range(2000)]
    assert "b" not in draws
    assert 0.65 < draws.count("a") / len(draws) < 0.75


def parse_nested(spec: dict) -> Dimension:
    return parse_parameters({"n": {"parameters": {"x": spec}}}).dimensions[0]


def test_log_uniform_uses_exponent_bounds_like_wandb():
    # W&B: log_uniform draws exp(U(min, max)), so ln(value) is uniform on [min, max].
    dim = parse_nested({"distribution": "log_uniform", "min": -6, "max": 0})
    rng = np.random.default_rng(2)
    logs = np.log([dim.sample(rng) for _ in range(4000)])
    assert logs.min() >= -6 and logs.max() <= 0
    assert abs(logs.mean() - (-3)) < 0.15
    assert dim.internal_bounds() == (-6.0, 0.0)


def test_inv_log_uniform_is_exp_of_minus_uniform():
    dim = parse_nested({"distribution": "inv_log_uniform", "min": 0, "max": 4})
    rng = np.random.default_rng(4)
    values = np.array([dim.sample(rng) for _ in range(4000)])
    assert values.min() >= math.exp(-4) and values.max() <= 1.0
    assert abs(np.mean(-np.log(values)) - 2) < 0.15                         # -ln(value) ~ U(0, 4)
    assert dim.internal_bounds() == (-4.0, -0.0)


def test_log_uniform_values_is_uniform_in_log_space():
    dim = parse_one({"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0})
    rng = np.random.default_rng(5)
    logs = np.log10([dim.sample(rng) for _ in range(4000)])
    assert abs(logs.mean() - (-2)) < 0.1


def test_normal_defaults_match_wandb():
    dim = parse_one({"distribution": "normal"})
    assert (dim.mu, dim.sigma) == (0.0, 1.0)
    q = parse_one({"distribution": "q_normal"})
    assert q.q == 1 and (q.mu, q.sigma) == (0.0, 1.0)
    # W&B's default q is the float 1.0, so the values are floats (3.0), as W&B's are.
    unit = parse_one({"distribution": "q_uniform", "min": 0, "max": 10})
    assert type(unit.q) is float and type(unit.sample(np.random.default_rng(0))) is float
    assert type(parse_one({"distribution": "q_uniform", "min": 0, "max": 10, "q": 1}).sample(np.random.default_rng(0))) is int
    beta = parse_one({"distribution": "beta"})
    assert (beta.a, beta.b) == (1.0, 1.0)


@pytest.mark.parametrize("spec, expected", [
    ({"min": 1, "max": 10}, "int_uniform"),
    ({"min": 1, "max": 10.0}, "uniform"),
    ({"min": 0.5, "max": 3}, "uniform"),
    ({"values": [1, 2]}, "categorical"),
    ({"value": 3}, "constant"),
])
def test_distribution_is_inferred_like_wandb(spec, expected):
    assert parse_one(spec).distribution == expected


def test_nested_blocks_flatten_to_dotted_names_in_name_order():
    space = parse_parameters({
        "optimizer": {"parameters": {
            "name": {"values": ["sgd", "adam"]},
            "sched": {"parameters": {"gamma": {"min": 0.1, "max": 0.9}}},
        }},
        "epochs": {"value": 3},
    })
    assert space.names == ["epochs", "optimizer.name", "optimizer.sched.gamma"]
    params = space.sample(np.random.default_rng(0))
    nested = unflatten_params(params)
    assert nested["optimizer"]["sched"]["gamma"] == params["optimizer.sched.gamma"]
    assert flatten_params(nested) == params


def test_space_does_not_depend_on_key_order():
    a = parse_parameters({"b": {"values": [1, 2]}, "a": {"min": 0.0, "max": 1.0}})
    b = parse_parameters({"a": {"min": 0.0, "max": 1.0}, "b": {"values": [1, 2]}})
    assert a == b
    assert a.sample(np.random.default_rng(9)) == b.sample(np.random.default_rng(9))


@pytest.mark.parametrize("block, path, rule", [
    ({"optimizer": {"parameters": {"lr": {"min": 0.1, "max": 0.01}}}},
     "optimizer.lr", "min (0.1) must be < max (0.01)"),
    ({"lr": {"min": 0.1, "max": 0.1}}, "lr", "min (0.1) must be < max (0.1)"),
    ({"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}, "lr", "must be > 0 for log_uniform_values"),
    ({"lr": {"distribution": "q_log_uniform_values", "min": -1, "max": 1}}, "lr", "must be > 0"),
    ({"lr": {"distribution": "inv_log_uniform_values", "min": 0.0, "max": 1}}, "lr", "must be > 0"),
    ({"m": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0}}, "m", "q (0) must be > 0"),
    ({"m": {"distribution": "q_normal", "q": -0.5}}, "m", "q (-0.5) must be > 0"),
    ({"m": {"distribution": "normal", "sigma": 0}}, "m", "sigma (0) must be > 0"),
    ({"m": {"distribution": "log_normal", "sigma": -1}}, "m", "sigma (-1) must be > 0"),
    ({"opt": {"values": []}}, "opt", "`values` must not be empty"),
    ({"opt": {"values": "adam"}}, "opt", "`values` must be a list"),
    ({"opt": {"values": [{1: 2}]}}, "opt", "values[0] has the key 1: mapping keys must be strings"),
    ({"opt": {"values": [1, float("nan")]}}, "opt", "values[1] must be finite"),
    ({"opt": {"values": [1, {"a": [float("inf")]}]}}, "opt", "values[1].a[0] must be finite"),
    ({"opt": {"values": [1, 2], "probabilities": [0.5, 0.5], "distribution": "categorical"}}, "opt",
     "need `distribution: categorical_w_probabilities` or no `distribution`"),
    ({"opt": {"values": [1, 2], "distribution": "categorical_w_probabilities"}}, "opt",
     "distribution 'categorical_w_probabilities' needs `probabilities`"),
    ({"m": {"distribution": "beta", "a": 0}}, "m", "a (0) must be > 0"),
    ({"m": {"distribution": "q_beta", "b": -1}}, "m", "b (-1) must be > 0"),
    ({"m": {"distribution": "beta", "min": 0, "max": 1}}, "m", "key 'max' does not apply to distribution 'beta'"),
    ({"lr": {"distribution": "log_uniform", "min": -4, "max": 0}}, "lr",
     "uses log_uniform, where min/max specify base-e exponents; use log_uniform_values"),
    ({"lr": {"distribution": "q_log_uniform", "min": 0, "max": 4}}, "lr", "use q_log_uniform_values"),
    ({"lr": {"distribution": "inv_log_uniform", "min": 0, "max": 4}}, "lr", "use inv_log_uniform_values"),
    ({"opt": {"values": ["a", "b"], "probabilities": [0.5]}}, "opt", "has 1 entries but `values` has 2"),
    ({"opt": {"values": ["a", "b"], "probabilities": [1.5, -0.5]}}, "opt", "probabilities[1] (-0.5) must be >= 0"),
    ({"opt": {"values": ["a", "b"], "probabilities": [0.5, 0.6]}}, "opt", "must sum to 1"),
    ({"opt": {"values": ["a", "b"], "probabilities": [True, False]}}, "opt", "not a boolean"),
    ({"2lr": {"value": 1}}, "2lr", "not a valid parameter name"),
    ({"-lr": {"value": 1}}, "-lr", "not a valid parameter name"),
    ({"l r": {"value": 1}}, "l r", "not a valid parameter name"),
    ({"net": {"parameters": {"bad name": {"value": 1}}}}, "net.bad name", "not a valid parameter name"),
    ({"e": {"distribution": "int_uniform", "min": 1.5, "max": 3}}, "e", "int_uniform bounds must be integers, got min=1.5"),
    ({"e": {"distribution": "int_uniform", "min": 1, "max": 3.0}}, "e", "int_uniform bounds must be integers, got max=3.0"),
    ({"lr": {"min": 0.1, "maxx": 1}}, "lr", "unknown key 'maxx'"),
    ({"lr": {"distribution": "uniform", "min": 0, "max": 1, "mu": 0}}, "lr", "key 'mu' does not apply to distribution 'uniform'"),
    ({"lr": {"min": 1, "max": 8, "q": 2}}, "lr", "key 'q' needs an explicit `distribution`"),
    ({"lr": {"distribution": "lognormal"}}, "lr", "unknown distribution 'lognormal' (valid: beta, categorical,"),
    ({"lr": {"min": True, "max": 2}}, "lr", "`min` must be a number, not a boolean (true)"),
    ({"lr": {"distribution": "normal", "mu": False}}, "lr", "`mu` must be a number, not a boolean (false)"),
    ({"lr": {"min": "0.1", "max": 1}}, "lr", "`min` must be a number, got a string"),
    ({"lr": {"min": 0.1, "max": float("inf")}}, "lr", "`max` must be finite"),
    ({"lr": {"min": 0.1}}, "lr", "`max` is required with `min`"),
    ({"lr": {"distribution": "uniform", "max": 1}}, "lr", "distribution 'uniform' needs `min`"),
    ({"lr": {"value": 1, "values": [1, 2]}}, "lr", "give only one of `value`, `values` or `min`/`max`"),
    ({"lr": {}}, "lr", "empty spec"),
    ({"lr": 0.1}, "lr", "a parameter spec must be a mapping"),
    ({"lr": {"distribution": "categorical"}}, "lr", "needs `values`"),
    ({"lr": {"distribution": "constant"}}, "lr", "needs `value`"),
    ({"m": {"distribution": "q_uniform", "min": 0.2, "max": 0.4, "q": 1}}, "m", "no multiple of q (1) lies within"),
    ({"n": {"parameters": {"s": {"distribution": "log_uniform", "min": 1, "max": 1000}}}}, "n.s",
     "exp(1000) is out of float range"),
    ({"net": {"parameters": {}}}, "net", "must define at least one parameter"),
    ({"net": {"parameters": {"a": {"value": 1}}, "value": 2}}, "net", "takes only `parameters`; unexpected key 'value'"),
    ({"net": {"parameters": [1]}}, "net", "`parameters` must be a mapping"),
])
def test_validation_names_the_path_and_the_rule(block, path, rule):
    with pytest.raises(SpaceError) as err:
        parse_parameters(block)
    assert err.value.path == path
    assert rule in err.value.rule
    assert str(err.value).startswith(f"parameters.{path}: ")


def test_wandb_names_may_hold_dashes_and_dots():
    space = parse_parameters({"my-lr": {"value": 1}, "model.dropout": {"values": [0.1, 0.2]},
                              "model": {"parameters": {"dropout": {"value": 0.5}}}})
    assert space.names == ["model.dropout", "model\\.dropout", "my-lr"]
    params = space.sample(np.random.default_rng(0))
    nested = unflatten_params(params)
    assert nested["model"] == {"dropout": 0.5} and nested["model.dropout"] in (0.1, 0.2)
    assert nested["my-lr"] == 1
    assert flatten_params(nested, leaves=space.names) == params
    with pytest.raises(SpaceError) as err:
        parse_parameters({"model.dropout": {"min": 2, "max": 1}})
    assert err.value.path == "model\\.dropout" and split_name(err.value.path) == ["model.dropout"]


def test_repeated_values_become_weights():
    dim = parse_one({"values": ["adam", "sgd", "adam", "adam"]})
    assert dim.values == ("adam", "sgd") and dim.probabilities == (0.75, 0.25)
    weighted = parse_one({"values": [1, 1.0, 2], "probabilities": [0.2, 0.3, 0.5]})
    assert weighted.values == (1, 2) and weighted.probabilities == (0.5, 0.5)      # 1 == 1.0 as in JSON
    assert parse_one({"values": [True, 1]}).probabilities is None                  # true is not 1
    rng = np.random.default_rng(3)
    draws = [dim.sample(rng) for _ in range(4000)]
    assert abs(draws.count("adam") / len(draws) - 0.75) < 0.03


def test_mapping_values_are_values_not_blocks():
    space = parse_parameters({"arch": {"values": [{"depth": 2, "width": 16}, {"depth": 4, "width": None}]},
                              "tag": {"value": {"team": "vision"}}})
    params = space.sample(np.random.default_rng(1))
    assert params["arch"] in ({"depth": 2, "width": 16}, {"depth": 4, "width": None})
    assert type(params["arch"]) is dict and params["tag"] == {"team": "vision"}
    nested = unflatten_params(params)
    assert nested == params                                      # no mapping value read as a group
    assert flatten_params(nested, leaves=space.names) == params
    stored = json.loads(json.dumps({k: v for k, v in reversed(params.items())}))
    assert space.contains(stored)
    again = SearchSpace.from_json(json.loads(json.dumps(space.to_json())))
    assert again == space and again.sample(np.random.default_rng(1)) == params


def test_the_example_message_reads_as_documented():
    with pytest.raises(SpaceError) as err:
        parse_parameters({"optimizer": {"parameters": {"lr": {"min": 0.1, "max": 0.01}}}})
    assert str(err.value) == "parameters.optimizer.lr: min (0.1) must be < max (0.01)"


@pytest.mark.parametrize("block, rule", [({}, "at least one parameter"), ([{"lr": {"value": 1}}], "must be a mapping")])
def test_block_level_errors_have_an_empty_path(block, rule):
    with pytest.raises(SpaceError) as err:
        parse_parameters(block)
    assert err.value.path == "" and rule in str(err.value)


def test_json_round_trip_is_exact(full_space):
    text = json.dumps(full_space.to_json(), allow_nan=False)                # JSON-safe: no NaN, no tuples
    again = SearchSpace.from_json(json.loads(text))
    assert again == full_space
    assert again.to_json() == full_space.to_json()
    rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(11)
    assert again.sample(rng_a) == full_space.sample(rng_b)
    batch = next(d for d in again.dimensions if d.name == "batch")
    assert type(batch.q) is int                                              # output type survives storage


def test_from_json_revalidates():
    with pytest.raises(SpaceError) as err:
        SearchSpace.from_json([{"name": "lr", "distribution": "uniform", "min": 1.0, "max": 0.0}])
    assert err.value.path == "lr"


def test_grid_enumerates_finite_spaces_in_a_fixed_order():
    space = parse_parameters({
        "opt": {"values": ["sgd", "adam"]},
        "epochs": {"min": 1, "max": 3},
        "mom": {"distribution": "q_uniform", "min": 0.0, "max": 0.2, "q": 0.1},
        "bs": {"distribution": "q_log_uniform_values", "min": 32, "max": 64, "q": 32},
        "seed": {"value": 0},
    })
    grid = space.grid()
    assert len(grid) == space.grid_size() == 2 * 3 * 3 * 2 * 1
    assert grid[0] == {"bs": 32, "epochs": 1, "mom": 0.0, "opt": "sgd", "seed": 0}
    assert grid[1] == {"bs": 32, "epochs": 1, "mom": 0.0, "opt": "adam", "seed": 0}   # last name fastest
    assert {p["mom"] for p in grid} == {0.0, 0.1, 0.2}
    assert len({params_key(p) for p in grid}) == len(grid)
    assert all(space.contains(p) for p in grid)
    assert grid == space.grid()


@pytest.mark.parametrize("spec", [
    {"min": 0.0, "max": 1.0},
    {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0},
    {"distribution": "q_normal"},
    {"distribution": "log_normal"},
])
def test_grid_is_none_for_infinite_spaces(spec):
    space = parse_parameters({"a": {"values": [1, 2]}, "x": spec})
    assert space.grid() is None and space.grid_size() is None
    assert [d.name for d in space.infinite_dimensions()] == ["x"]


def test_internal_coordinates_round_trip(full_space):
    rng = np.random.default_rng(21)
    for _ in range(200):
        params = full_space.sample(rng)
        for dim in full_space.dimensions:
            x = dim.to_internal(params[dim.name])
            lo, hi = dim.internal_bounds()
            if dim.distribution not in ("normal", "q_normal", "log_normal", "q_log_normal"):
                assert lo - 1e-9 <= x <= hi + 1e-9, (dim.name, x)
                assert dim.from_internal(x) == params[dim.name] or math.isclose(
                    dim.from_internal(x), params[dim.name], rel_tol=1e-12), dim.name


def test_from_internal_clips_and_quantizes():
    epochs = parse_one({"min": 1, "max": 5})
    assert epochs.from_internal(7.6) == 5 and type(epochs.from_internal(2.4)) is int
    assert epochs.from_internal(2.4) == 2
    lr = parse_one({"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2})
    assert lr.from_internal(0.0) == 1e-2 and lr.from_internal(-100.0) == 1e-4
    mom = parse_one({"distribution": "q_uniform", "min": 0.5, "max": 0.9, "q": 0.1})
    assert mom.from_internal(0.73) == 0.7 and mom.from_internal(2.0) == 0.9
    opt = parse_one({"values": ["a", "b", "c"]})
    assert opt.from_internal(1.4) == "b" and opt.from_internal(9) == "c"
    choice = parse_one({"values": [[1, 2], [3]]})
    assert choice.from_internal(0) == [1, 2]
    assert parse_one({"value": [4]}).from_internal(0.0) == [4]


def test_contains_rejects_what_the_space_cannot_produce():
    space = parse_parameters({
        "epochs": {"min": 1, "max": 5},
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
        "mom": {"distribution": "q_uniform", "min": 0.5, "max": 0.9, "q": 0.1},
        "opt": {"values": ["a", [1, 2]]},
    })
    good = {"epochs": 2, "lr": 1e-3, "mom": 0.6, "opt": [1, 2]}
    assert space.contains(good)
    assert space.contains({**good, "opt": (1, 2)})                            # lists compare by value
    for bad in ({**good, "epochs": 6}, {**good, "epochs": 2.5}, {**good, "epochs": True},
                {**good, "lr": 1.0}, {**good, "lr": -1.0}, {**good, "mom": 0.65}, {**good, "mom": 1.0},
                {**good, "opt": "b"}, {**good, "extra": 1}, {k: v for k, v in good.items() if k != "lr"}):
        assert not space.contains(bad), bad


def test_to_unit_maps_into_the_unit_cube(full_space):
    rng = np.random.default_rng(5)
    n_coords = sum(d.distribution != "constant" for d in full_space.dimensions)
    for _ in range(100):
        u = full_space.to_unit(full_space.sample(rng))
        assert u.shape == (n_coords,)
        assert np.all((u >= 0) & (u <= 1))
    space = parse_parameters({"x": {"min": 0.0, "max": 10.0}, "c": {"values": ["a", "b", "c"]}, "k": {"value": 1}})
    assert space.to_unit({"x": 2.5, "c": "c", "k": 1}).tolist() == [1.0, 0.25]    # names sorted: c, k, x


def test_params_key_compares_by_value():
    assert params_key({"a": 1, "b": [1, 2]}) == params_key({"b": (1, 2), "a": 1.0})
    assert params_key({"a": 1}) != params_key({"a": True})


def test_flatten_and_unflatten():
    nested = {"lr": 0.1, "optimizer": {"name": "sgd", "sched": {"gamma": 0.5}}, "layers": [1, 2]}
    flat = flatten_params(nested)
    assert flat == {"lr": 0.1, "optimizer.name": "sgd", "optimizer.sched.gamma": 0.5, "layers": [1, 2]}
    assert unflatten_params(flat) == nested
    with pytest.raises(ValueError, match="'a' is both a value and a group"):
        unflatten_params({"a": 1, "a.b": 2})
    with pytest.raises(ValueError, match="'a' is both a value and a group"):
        unflatten_params({"a.b": 2, "a": 1})
