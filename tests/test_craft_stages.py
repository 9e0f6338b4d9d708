"""tuneserve_service.craft.stages: the `stages` list validated with errors that name the path, the transition
rule, and the documents of the stages."""
from __future__ import annotations

import numpy as np
import pytest

from tuneserve_service.craft.fidelity import Fidelity
from tuneserve_service.craft.stages import (
    RefineSpec,
    RepeatSpec,
    Stage,
    StageCounts,
    StageError,
    Transition,
    child_seed,
    first_stage_document,
    next_stage_document,
    parse_stages,
    stage_fidelity,
    transition,
)
from tuneserve_service.craft.trials import TrialResult

ISSUE_EXAMPLE = [{"trials": 40, "epochs": 2, "data_fraction": 0.1}, {"refine": {"top_k": 5}, "trials": 20, "epochs": 10}]


def test_the_issue_example():
    stages = parse_stages(ISSUE_EXAMPLE)
    assert stages == (
        Stage(0, 40, {"epochs": 2, "data_fraction": 0.1}),
        Stage(1, 20, {"epochs": 10}, refine=RefineSpec(top_k=5, margin=0.25, min_fraction=0.1)),
    )
    assert stage_fidelity(stages, 0) == Fidelity(epochs=2, data_fraction=0.1)
    assert stage_fidelity(stages, 1) == Fidelity(epochs=10, data_fraction=1.0)  # not inherited
    assert stage_fidelity(stages, 1, Fidelity(data_seed=3)) == Fidelity(epochs=10, data_seed=3)
    assert [s.to_dict() for s in stages] == [
        {"trials": 40, "epochs": 2, "data_fraction": 0.1},
        {"trials": 20, "epochs": 10, "refine": {"top_k": 5, "margin": 0.25, "min_fraction": 0.1, "rerun_top": True}}]


def test_every_key():
    stages = parse_stages([
        {"trials": 10, "classes": 2, "method": "random"},
        {"trials": 6, "refine": True, "repeat_top": 2, "data_fraction": 0.5},
        {"trials": 4, "refine": {"top_k": 3, "margin": 0.5, "min_fraction": 0.2}, "repeat_top": {"top_k": 2, "seeds": 4}},
    ], methods=("random", "tpe"))
    assert stages[0] == Stage(0, 10, {"classes": 2}, method="random")
    assert stages[1] == Stage(1, 6, {"data_fraction": 0.5}, RefineSpec(), RepeatSpec(top_k=2, seeds=3))
    assert stages[2].refine == RefineSpec(3, 0.5, 0.2) and stages[2].repeat_top == RepeatSpec(2, 4)
    assert [s.budget for s in stages] == [10, 12, 12]


@pytest.mark.parametrize("raw, path, words", [
    ({"trials": 3}, "stages", "must be a list"),
    ([], "stages", "1 to 10 stages"),
    ([{"trials": 1}] * 11, "stages", "1 to 10 stages"),
    (["x"], "stages[0]", "must be a mapping"),
    ([{"epochs": 2}], "stages[0].trials", "required"),
    ([{"trials": 0}], "stages[0].trials", "integer >= 1"),
    ([{"trials": True}], "stages[0].trials", "integer >= 1"),
    ([{"trials": 2.5}], "stages[0].trials", "integer >= 1"),
    ([{"trials": 4, "epochz": 2}], "stages[0].epochz", "unknown key"),
    ([{"trials": 4, "data_fraction": 1.5}], "stages[0].data_fraction", "(0, 1]"),
    ([{"trials": 4, "data_fraction": "half"}], "stages[0].data_fraction", "(0, 1]"),
    ([{"trials": 4, "classes": 1}], "stages[0].classes", "integer >= 2"),
    ([{"trials": 4, "epochs": 0}], "stages[0].epochs", "integer >= 1"),
    ([{"trials": 4, "refine": {"top_k": 2}}], "stages[0].refine", "first stage"),
    ([{"trials": 4}, {"trials": 4, "refine": {"top_k": 5}}], "stages[1].refine.top_k", "previous stage's trials (4)"),
    ([{"trials": 4}, {"trials": 4, "refine": {"top": 2}}], "stages[1].refine.top", "unknown key"),
    ([{"trials": 4}, {"trials": 4, "refine": {"margin": -1}}], "stages[1].refine.margin", ">= 0"),
    ([{"trials": 4}, {"trials": 4, "refine": {"min_fraction": 0}}], "stages[1].refine.min_fraction", "> 0"),
    ([{"trials": 4}, {"trials": 4, "refine": "yes"}], "stages[1].refine", "must be a mapping"),
    ([{"trials": 4, "repeat_top": "x"}], "stages[0].repeat_top", "integer (top_k) or a mapping"),
    ([{"trials": 4, "repeat_top": {"top_k": 5}}], "stages[0].repeat_top.top_k", "stage's trials (4)"),
    ([{"trials": 4, "repeat_top": {"seeds": 0}}], "stages[0].repeat_top.seeds", "integer >= 1"),
    ([{"trials": 4, "method": "bayes"}], "stages[0].method", "unknown method 'bayes' (valid: random, tpe)"),
])
def test_errors_name_the_path(raw, path, words):
    with pytest.raises(StageError) as e:
        parse_stages(raw, methods=("random", "tpe"))
    assert e.value.path == path
    assert words in e.value.rule
    assert str(e.value) == f"{path}: {e.value.rule}"


def test_transition_rule():
    stages = parse_stages([{"trials": 4, "repeat_top": {"top_k": 2, "seeds": 2}}, {"trials": 3, "refine": {"top_k": 2}}])
    assert transition(stages, 0, StageCounts(ended=3, active=1)) == Transition("wait", 0, reason="3 of 4 trials ended, 1 active")
    assert transition(stages, 0, StageCounts(ended=4, active=0)).action == "repeat"
    assert transition(stages, 0, StageCounts(ended=6, active=2, repeats=4)).action == "wait"
    assert transition(stages, 0, StageCounts(ended=8, active=0, repeats=4)) == Transition(
        "next", 0, 1, "stage 0 ended: start stage 1")
    assert transition(stages, 0, StageCounts(ended=5, active=0, repeats=1)).action == "next"  # fewer configs to repeat
    assert transition(stages, 1, StageCounts(ended=2, active=0)).action == "wait"
    assert transition(stages, 1, StageCounts(ended=2, active=0, budget=2)) == Transition(
        "finish", 1, reason="the last stage ended")                                         # a capped budget


def test_documents_of_the_stages():
    stages = parse_stages(ISSUE_EXAMPLE)
    document = {"name": "cnn", "method": "tpe", "metric": {"name": "val_loss", "goal": "minimize"},
                "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
                               "optimizer": {"values": ["sgd", "adam"]}},
                "stages": ISSUE_EXAMPLE, "run_cap": 60, "seed": 7, "lr_range_test": True}
    first = first_stage_document(document, stages)
    assert first["max_trials"] == 40 and "run_cap" not in first and first["stage_index"] == 0
    assert first["fidelity"] == {"epochs": 2, "data_fraction": 0.1, "data_seed": 0}
    trials = [TrialResult(0, {"lr": 0.01, "optimizer": "sgd"}, 0.5),
              TrialResult(1, {"lr": 0.1, "optimizer": "sgd"}, 0.4),
              TrialResult(2, {"lr": 0.001, "optimizer": "adam"}, 0.9)]
    doc, plan = next_stage_document(document, stages, 1, trials, parent_name="cnn", child_name="cnn.s1", seed=7)
    assert plan is not None and plan.top == (1, 0, 2)
    assert doc == {"method": "tpe", "metric": document["metric"], "parameters": plan.parameters,
                   "name": "cnn.s1", "max_trials": 20, "seed": child_seed(7, 1), "warm_start_from": "cnn",
                   "fidelity": {"epochs": 10, "data_fraction": 1.0, "data_seed": 0}, "parent": "cnn", "stage_index": 1}
    assert child_seed(7, 1) == int(np.random.SeedSequence([7, 1]).generate_state(1)[0] % 2**31)
    assert child_seed(7, 1) != child_seed(8, 1) and child_seed(7, 1) != child_seed(7, 2)


def test_next_stage_without_refine_and_bad_index():
    stages = parse_stages([{"trials": 2}, {"trials": 2, "epochs": 5, "method": "random"}])
    document = {"name": "a", "parameters": {"x": {"min": 0.0, "max": 1.0}}, "method": "tpe"}
    doc, plan = next_stage_document(document, stages, 1, [], parent_name="a", child_name="a.s1", seed=1)
    assert plan is None and doc["parameters"] == document["parameters"] and doc["method"] == "random"
    with pytest.raises(StageError) as e:
        next_stage_document(document, stages, 0, [], parent_name="a", child_name="a.s0", seed=1)
    assert e.value.path == "stage"


def test_a_stage_with_nothing_to_refine_says_so():
    stages = parse_stages(ISSUE_EXAMPLE)
    with pytest.raises(StageError) as e:
        next_stage_document({"parameters": {"lr": {"min": 0.1, "max": 1.0}}}, stages, 1,
                            [TrialResult(0, {"lr": 0.5}, None, "diverged")], parent_name="a", child_name="b", seed=1)
    assert e.value.path == "stages[1].refine" and "no completed trial" in e.value.rule


def test_rerun_top_is_a_boolean_that_defaults_to_true():
    stages = parse_stages([{"trials": 4}, {"trials": 2, "refine": {"top_k": 2, "rerun_top": False}}])
    assert stages[1].refine == RefineSpec(top_k=2, rerun_top=False)
    assert parse_stages([{"trials": 6}, {"trials": 2, "refine": True}])[1].refine.rerun_top is True
    with pytest.raises(StageError) as err:
        parse_stages([{"trials": 4}, {"trials": 2, "refine": {"rerun_top": "yes"}}])
    assert err.value.path == "stages[1].refine.rerun_top" and "true or false" in err.value.rule
