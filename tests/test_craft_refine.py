"""tuneserve_service.craft.refine on a hand-made parent: every kind of parameter, the top k, the warm start."""
from __future__ import annotations

import math

import pytest

from tuneserve_service.craft.fidelity import Fidelity
from tuneserve_service.craft.refine import (
    RefineError,
    refine,
    shrink_interval,
    space_to_parameters,
    top_trials,
    warm_start,
)
from tuneserve_service.craft.trials import TrialResult
from tuneserve_service.space import parse_parameters

PARENT = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "dropout": {"min": 0.0, "max": 0.5},
    "depth": {"min": 1, "max": 8},
    "optimizer": {"values": ["sgd", "adam", "adamw"]},
    "momentum": {"value": 0.9},
    "head": {"parameters": {"width": {"distribution": "q_uniform", "min": 8, "max": 128, "q": 8}}},
    "mystery": {"distribution": "beta", "a": 2, "b": 5},   # a beta prior: nothing to shrink, kept
    "epochs": {"value": 2},
}


def _params(lr, dropout, depth, optimizer, width):
    return {"lr": lr, "dropout": dropout, "depth": depth, "optimizer": optimizer, "momentum": 0.9,
            "head.width": width, "mystery": 0.3, "epochs": 2}


TRIALS = [
    TrialResult(0, _params(0.01, 0.1, 2, "sgd", 32), 0.5),
    TrialResult(1, _params(0.1, 0.3, 3, "adam", 64), 0.4),
    TrialResult(2, _params(1e-3, 0.45, 7, "adamw", 128), 0.9),
    TrialResult(3, _params(0.9, 0.2, 2, "sgd", 40), None, "diverged"),
    TrialResult(4, _params(0.05, 0.2, 2, "sgd", 40), 0.6),
]


def test_refine_every_kind():
    plan = refine(PARENT, TRIALS, top_k=2, fidelity=Fidelity(epochs=10))
    child = plan.parameters
    assert plan.top == (1, 0)
    # log space: ln 0.01 .. ln 0.1 widened by a quarter of its span on each side = 10^-2.25 .. 10^-0.75
    assert child["lr"]["distribution"] == "log_uniform_values"
    assert child["lr"]["min"] == pytest.approx(10 ** -2.25, rel=1e-11)
    assert child["lr"]["max"] == pytest.approx(10 ** -0.75, rel=1e-11)
    assert child["dropout"] == {"distribution": "uniform", "min": 0.05, "max": 0.35}
    assert child["depth"] == {"distribution": "int_uniform", "min": 1, "max": 4}       # [1.75, 3.25] outwards
    assert child["optimizer"] == {"values": ["sgd", "adam"]}
    assert child["momentum"] == {"value": 0.9}
    assert child["head"] == {"parameters": {"width": {"distribution": "q_uniform", "min": 24, "max": 72, "q": 8}}}
    assert child["mystery"] == PARENT["mystery"]
    assert child["epochs"] == {"value": 10}
    assert {c.path: c.action for c in plan.changes} == {
        "lr": "narrowed", "dropout": "narrowed", "depth": "narrowed", "optimizer": "restricted",
        "momentum": "kept", "head.width": "narrowed", "mystery": "kept", "epochs": "fidelity"}
    assert plan.inside == (0, 1, 4)          # trial 2's lr and trial 3's lr fall outside
    assert plan.fidelity == Fidelity(epochs=10)
    assert plan.to_dict()["top"] == [1, 0] and plan.to_dict()["fidelity"] == {"epochs": 10, "data_fraction": 1.0,
                                                                              "data_seed": 0}
    assert PARENT["lr"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}   # not mutated
    known = {k: v for k, v in child.items() if k != "mystery"}
    parse_parameters(known)   # a valid space


def test_refine_keeps_a_fidelity_knob_without_an_override():
    plan = refine(PARENT, TRIALS, top_k=2)
    assert plan.parameters["epochs"] == {"value": 2}
    assert {c.path: c.action for c in plan.changes}["epochs"] == "kept"


def test_min_width_and_bounds():
    one = refine(PARENT, TRIALS, top_k=1)            # trial 1 alone: a zero-width span
    lo, hi = math.log(0.1) - 0.05 * math.log(1e4), math.log(0.1) + 0.05 * math.log(1e4)
    assert one.parameters["lr"]["min"] == pytest.approx(math.exp(lo), rel=1e-11)
    assert one.parameters["lr"]["max"] == pytest.approx(math.exp(hi), rel=1e-11)
    assert one.parameters["depth"] == {"distribution": "int_uniform", "min": 2, "max": 4}  # [2.65, 3.35] outwards
    tight = refine(PARENT, TRIALS, top_k=1, margin=0, min_fraction=1e-12)
    assert tight.parameters["depth"] == {"distribution": "int_uniform", "min": 3, "max": 4}  # never collapses
    assert tight.parameters["lr"]["min"] < tight.parameters["lr"]["max"]
    assert 1 in tight.inside                         # the top trial stays inside its own range
    at_top = refine(PARENT, [TrialResult(0, _params(1.0, 0.5, 8, "sgd", 128), 0.1)], top_k=1)
    assert at_top.parameters["lr"]["max"] == 1.0     # the parent's own bound, exactly
    assert at_top.parameters["lr"]["min"] == pytest.approx(10 ** -0.4, rel=1e-11)  # shifted inside
    assert at_top.parameters["depth"] == {"distribution": "int_uniform", "min": 7, "max": 8}
    assert at_top.parameters["dropout"] == {"distribution": "uniform", "min": 0.45, "max": 0.5}


def test_shrink_interval():
    assert shrink_interval(2.0, 4.0, 0.0, 10.0, 0.25, 0.1) == (1.5, 4.5)
    assert shrink_interval(3.0, 3.0, 0.0, 10.0, 0.25, 0.1) == (2.5, 3.5)
    assert shrink_interval(0.0, 0.2, 0.0, 10.0, 0.25, 0.1) == (0.0, 1.0)
    assert shrink_interval(0.0, 10.0, 0.0, 10.0, 0.25, 0.1) == (0.0, 10.0)


def test_normal_families_and_probabilities():
    parent = {"x": {"distribution": "normal", "mu": 0.0, "sigma": 2.0},
              "lr": {"distribution": "log_normal", "mu": -3.0, "sigma": 2.0},
              "act": {"values": ["relu", "gelu", "silu"], "probabilities": [0.5, 0.3, 0.2]}}
    trials = [TrialResult(0, {"x": 1.0, "lr": math.exp(-2.0), "act": "relu"}, 1.0),
              TrialResult(1, {"x": 3.0, "lr": math.exp(-4.0), "act": "silu"}, 2.0),
              TrialResult(2, {"x": -5.0, "lr": 1.0, "act": "gelu"}, 3.0)]
    plan = refine(parent, trials, top_k=2)
    assert plan.parameters["x"] == {"distribution": "normal", "mu": 2.0, "sigma": 1.25}
    assert plan.parameters["lr"] == {"distribution": "log_normal", "mu": -3.0, "sigma": 1.25}
    assert plan.parameters["act"]["values"] == ["relu", "silu"]
    assert plan.parameters["act"]["probabilities"] == pytest.approx([0.5 / 0.7, 0.2 / 0.7])
    assert {c.path: c.action for c in plan.changes} == {"x": "moved", "lr": "moved", "act": "restricted"}


def test_maximize_and_fidelity_levels():
    trials = [TrialResult(0, {"lr": 0.01}, 0.9, fidelity=Fidelity(2, 0.1)),     # best value, cheap run
              TrialResult(1, {"lr": 0.1}, 0.7, fidelity=Fidelity(10, 1.0)),
              TrialResult(2, {"lr": 0.3}, 0.8, fidelity=Fidelity(10, 1.0)),
              TrialResult(3, {"lr": 0.5}, 0.95, "pruned", fidelity=Fidelity(10, 1.0))]
    assert [t.number for t in top_trials(trials, 5, "maximize")] == [2, 1]
    assert [t.number for t in top_trials(trials, 5, "minimize")] == [1, 2]
    assert [t.number for t in top_trials(trials[:1], 5)] == [0]


def test_search_space_input_gives_the_same_ranges():
    known = {k: v for k, v in PARENT.items() if k != "mystery"}
    from_block = refine(known, TRIALS, top_k=2).parameters
    from_space = refine(parse_parameters(known), TRIALS, top_k=2).parameters
    assert from_space["lr"] == from_block["lr"]
    assert from_space["head"] == from_block["head"]
    assert from_space["optimizer"] == {"distribution": "categorical", "values": ["sgd", "adam"]}
    assert space_to_parameters(parse_parameters(known))["head"] == {
        "parameters": {"width": {"distribution": "q_uniform", "min": 8.0, "max": 128.0, "q": 8}}}


def test_refine_errors_name_the_field():
    with pytest.raises(RefineError) as e:
        refine(PARENT, [TrialResult(0, {}, None, "failed")], top_k=2)
    assert e.value.path == "trials"
    for kwargs, path in [({"top_k": 0}, "top_k"), ({"margin": -1}, "margin"), ({"min_fraction": 2}, "min_fraction"),
                         ({"min_fraction": 0}, "min_fraction"),
                         ({"goal": "up"}, "goal")]:
        with pytest.raises(RefineError) as e:
            refine(PARENT, TRIALS, **kwargs)
        assert e.value.path == path
    with pytest.raises(RefineError) as e:
        refine({}, TRIALS)
    assert e.value.path == "parameters"


def test_warm_start_maps_parent_values_onto_the_child():
    known = {k: v for k, v in PARENT.items() if k != "mystery"}
    plan = refine(known, TRIALS, top_k=2, fidelity=Fidelity(epochs=10))
    child = parse_parameters(plan.parameters)
    # Inside: trials 0, 1 and 4; their mystery key is not a child parameter and is dropped, epochs
    # takes the child's value.
    cold = warm_start(TRIALS, child)
    assert [v for _, v in cold] == [0.5, 0.4, 0.6]
    assert cold[0][0] == {"lr": 0.01, "dropout": 0.1, "depth": 2, "optimizer": "sgd", "momentum": 0.9,
                          "head.width": 32, "epochs": 10}
    # On the child's scale: ranks 1, 0, 2 of 3 -> quantiles 1/2, 1/6, 5/6 of [1.0, 2.0].
    mapped = warm_start(TRIALS, child, child_values=[2.0, 1.0])
    assert [v for _, v in mapped] == pytest.approx([1.5, 1.0 + 1 / 6, 1.0 + 5 / 6])
    assert [p["lr"] for p, _ in warm_start(TRIALS, child, exclude=plan.top)] == [0.05]
