"""Study-level advice (service/diagnosis/study.py): what many trials' params, values and diagnoses
say together, in the issue's own examples."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tuneserve_service.diagnosis import Advice, Diagnosis, TrialSummary, Variant, study_advice
from tuneserve_service.space import parse_parameters

SPACE = parse_parameters({
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "width": {"min": 8, "max": 64},
    "dropout": {"min": 0.0, "max": 0.5},
    "optimizer": {"values": ["sgd", "adam"]},
})


def _d(label: str, cause: str | None = None, **evidence) -> Diagnosis:
    return Diagnosis(label, f"{label}.", evidence, cause)


def _trials(n: int, seed: int = 0, diagnose=None, value=None, lr_low: float = -4, width_low: int = 8) -> list[TrialSummary]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, n]))
    out = []
    for i in range(n):
        params = {"lr": float(10 ** rng.uniform(lr_low, 0)), "width": int(rng.integers(width_low, 65)),
                  "dropout": float(rng.uniform(0, 0.5)), "optimizer": ["sgd", "adam"][i % 2]}
        d = diagnose(params) if diagnose else _d("healthy")
        state = "diverged" if d.label == "diverged" else "completed"
        v = None if state == "diverged" else (value(params) if value else float(rng.uniform(0.2, 1.0)))
        out.append(TrialSummary(i, state, params, v, d))
    return out


def _kinds(advice: list[Advice]) -> list[str]:
    return [a.kind for a in advice]


def test_diverged_trials_above_an_lr_move_its_upper_bound():
    # a search that has drifted to high lrs, as tpe does when they look good early on
    trials = _trials(20, lr_low=-1.5, diagnose=lambda p: _d("diverged", "lr_too_high") if p["lr"] > 0.3 else _d("healthy"))
    bad = sum(t.state == "diverged" for t in trials)
    assert bad >= 5
    advice = [a for a in study_advice(trials, SPACE) if a.kind == "range_diverges"]
    assert len(advice) == 1 and advice[0].param == "lr"
    first_bad = min(t.params["lr"] for t in trials if t.state == "diverged")
    assert advice[0].message.startswith(f"{bad} of 20 trials diverged")
    assert f"lr >= {first_bad:.3g}" in advice[0].message
    bound = advice[0].evidence["suggested_bound"]
    largest_good_below = max(t.params["lr"] for t in trials if t.state != "diverged" and t.params["lr"] < first_bad)
    assert largest_good_below <= bound <= first_bad and f"upper bound to {bound:.3g}" in advice[0].message


def test_no_range_advice_when_failures_are_spread_out():
    rng = np.random.default_rng(np.random.SeedSequence([3, 1]))
    flags = iter(rng.random(40) < 0.3)
    trials = _trials(40, seed=3, diagnose=lambda p: _d("diverged", "lr_too_high") if next(flags) else _d("healthy"))
    assert "range_diverges" not in _kinds(study_advice(trials, SPACE))


def test_trials_that_barely_learn_at_small_lrs_raise_the_lower_bound():
    trials = _trials(20, seed=1, diagnose=lambda p: _d("lr_too_low") if p["lr"] < 1e-3 else _d("healthy"))
    advice = [a for a in study_advice(trials, SPACE) if a.kind == "range_too_low"]
    assert len(advice) == 1 and advice[0].param == "lr" and "raise lr's lower bound" in advice[0].message


def test_one_categorical_value_that_always_diverges():
    trials = _trials(16, seed=2, diagnose=lambda p: _d("diverged", "lr_too_high") if p["optimizer"] == "adam"
                     and p["width"] > 0 else _d("healthy"))
    # every adam trial diverged, whatever its lr or width: the value, not a range, is to blame
    advice = study_advice(trials, SPACE)
    assert "value_diverges" in _kinds(advice)
    found = next(a for a in advice if a.kind == "value_diverges")
    assert found.param == "optimizer" and "'adam'" in found.message


def test_best_trials_at_the_top_of_a_range_widen_it():
    # value falls with width: the best trials are the widest
    trials = _trials(20, seed=4, width_low=50, value=lambda p: 1.0 - p["width"] / 100)
    advice = [a for a in study_advice(trials, SPACE) if a.kind == "edge_of_range"]
    assert [a.param for a in advice] == ["width"]
    assert advice[0].message.startswith("The best 5 trials all sit at the top of width's range")
    assert "raise its upper bound" in advice[0].message


def test_best_trials_at_a_floor_of_zero_is_no_advice():
    # dropout 0 cannot go lower: being best there says nothing about the range
    trials = _trials(20, seed=5, value=lambda p: p["dropout"])
    assert "edge_of_range" not in _kinds(study_advice(trials, SPACE))


def test_every_trial_overfits_after_epoch_6():
    trials = _trials(12, seed=6, diagnose=lambda p: _d("overfitting", best_step=6))
    advice = [a for a in study_advice(trials, SPACE) if a.kind == "common_label"]
    assert [a.message for a in advice] == [
        "Every trial overfits after epoch 6: add regularisation (dropout, weight decay, augmentation) or stop earlier."]


def test_most_trials_underfit():
    labels = iter(["underfitting"] * 8 + ["healthy"] * 2)
    trials = _trials(10, seed=7, diagnose=lambda p: _d(next(labels)))
    advice = [a for a in study_advice(trials, SPACE) if a.kind == "common_label"]
    assert len(advice) == 1 and advice[0].message.startswith("8 of 10 trials underfit")


def test_broken_data_comes_first():
    labels = iter([("diverged", "bad_data")] * 3 + [("healthy", None)] * 5)
    trials = _trials(8, seed=8, diagnose=lambda p: _d(*next(labels)))
    advice = study_advice(trials, SPACE)
    assert advice[0].kind == "pipeline" and advice[0].evidence["cause"] == "bad_data"
    assert "clean the data" in advice[0].message


def test_running_trials_are_not_judged_and_advice_round_trips():
    trials = [TrialSummary(0, "running", {"lr": 0.5}, None, _d("overfitting"))]
    assert study_advice(trials, SPACE) == []
    trials = _trials(12, seed=6, diagnose=lambda p: _d("overfitting", best_step=6))
    for a in study_advice(trials, SPACE):
        assert Advice.from_json(json.loads(json.dumps(a.to_json(), allow_nan=False))) == a


@pytest.mark.parametrize("n", [0, 1, 2])
def test_a_handful_of_trials_gets_no_pattern_advice(n):
    trials = _trials(n, seed=9, diagnose=lambda p: _d("overfitting", best_step=3))
    # no pattern; only the pointer to the trials whose confident fault carries a change to try
    assert _kinds(study_advice(trials, SPACE)) == (["trial_faults"] if n else [])


def _slow(confidence=0.7):
    return Diagnosis("lr_too_low", "slow.", {"still_improving": True}, None, confidence=confidence,
                     rule="lr_too_low.slow", variant=Variant({"lr": 0.03}, "lr x 3.", "lr_up"))


def _healthy_guess():
    return Diagnosis("healthy", "still improving.", {}, None, confidence=0.5, rule="healthy.improving")


def _demo_like(slow_numbers, confidence=0.7):
    """20 ended trials, the given ones confidently lr_too_low.slow, the rest a low-confidence healthy."""
    return [TrialSummary(t.number, t.state, t.params, t.value,
                         _slow(confidence) if t.number in slow_numbers else _healthy_guess())
            for t in _trials(20, seed=11)]


def test_a_minority_of_confident_faults_is_not_no_advice():
    """The demo's study page said "No advice yet" with 4 of 20 trials confidently lr_too_low.slow:
    no rule needs 60% of trials to name them. The line says which trials and that each carries a
    variant; it is the only line (their lrs are spread, so no range or value rule speaks for them)."""
    trials = _demo_like({2, 8, 9, 17})
    lrs = sorted(t.params["lr"] for t in trials)
    assert any(t.params["lr"] > lrs[10] for t in trials if t.number in {2, 8, 9, 17})  # spread out
    advice = [a for a in study_advice(trials, SPACE) if a.kind != "edge_of_range"]
    assert _kinds(advice) == ["trial_faults"]
    a = advice[0]
    assert a.message.startswith("4 of 20 trials learnt too slowly for their learning rate (trials #2, #8, #9, #17): "
                                "each diagnosis proposes a variant to try")
    assert a.evidence["trials"] == [2, 8, 9, 17] and a.evidence["rules"] == ["lr_too_low.slow"]
    assert a.evidence["confidence_min"] == 0.7 and a.evidence["with_variant"] == 4
    assert Advice.from_json(json.loads(json.dumps(a.to_json(), allow_nan=False))) == a


def test_guesses_make_no_advice_line():
    """Only confident labels count, in every rule: the same 4 trials at 0.5, or 12 of 12 trials
    overfitting at 0.5, give no line (the common-label rule counted every label before)."""
    assert [a for a in study_advice(_demo_like({2, 8, 9, 17}, confidence=0.5), SPACE)
            if a.kind != "edge_of_range"] == []
    guesses = _trials(12, seed=6, diagnose=lambda p: Diagnosis("overfitting", "x.", {"best_step": 6}, confidence=0.5))
    assert [a for a in study_advice(guesses, SPACE) if a.kind != "edge_of_range"] == []


def test_faults_a_range_rule_explains_get_no_second_line():
    trials = _trials(20, seed=3, lr_low=-4,
                     diagnose=lambda p: _slow() if p["lr"] < 1e-3 else _healthy_guess())
    kinds = _kinds(study_advice(trials, SPACE))
    assert "range_too_low" in kinds and "trial_faults" not in kinds
    # and the common label speaks for a majority
    every = _trials(12, seed=6, diagnose=lambda p: _d("overfitting", best_step=6))
    assert "trial_faults" not in _kinds(study_advice(every, SPACE))
