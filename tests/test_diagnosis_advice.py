"""Issue 17: a diagnosis never contradicts the numbers it cites, every number it returns is finite,
every fault proposes a concrete variant, and the curves corpus reads back without contradictions."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from tuneserve_service.diagnosis import (BUILTIN_CNN_DEFAULTS, CONFIDENT, Diagnosis, Variant, diagnose_trial,
                                         finite_json, notches, propose_variant)
from tuneserve_service.diagnosis.trial import num

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


def _epochs(train, val, **first):
    return [(i + 1, {"train_loss": t, "val_loss": v, **(first if i == 0 else {})})
            for i, (t, v) in enumerate(zip(train, val))]


# ---- the two demo trials of the issue ----------------------------------------------------------

DEMO_14 = ([1.771, 0.515, 0.298, 0.203], [4.492, 1.556, 0.702, 0.166])
DEMO_12 = ([1.467, 0.711, 0.629, 0.361], [0.684, 1.297, 1.128, 0.268])


@pytest.mark.parametrize("curves", [DEMO_14, DEMO_12], ids=["trial 14", "trial 12"])
@pytest.mark.parametrize("first", [{}, {"num_classes": 10, "initial_loss": 2.31}])
def test_demo_trials_still_improving_are_not_overfitting(curves, first):
    d = diagnose_trial(_epochs(*curves, **first))
    assert d.label != "overfitting", d
    assert d.label == "healthy"
    # what it cites is what was reported last
    assert d.evidence["last_step"] == 4
    if "val_last" in d.evidence:
        assert d.evidence["val_last"] == num(curves[1][-1])


def test_overfitting_cites_the_raw_last_report():
    train = [2.0, 1.2, 0.8, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02]
    val = [2.0, 1.3, 0.9, 0.7, 0.6, 0.62, 0.7, 0.8, 0.9, 0.85]
    d = diagnose_trial(_epochs(train, val, num_classes=10))
    assert d.label == "overfitting" and d.rule == "overfitting.val_rise"
    assert d.evidence["val_last"] == 0.85 and d.evidence["last_step"] == 10  # raw, not a median of the tail
    assert d.evidence["val_best"] == 0.6 and d.evidence["best_step"] == 5
    assert "0.85 at epoch 10" in d.advice


def test_one_bad_last_epoch_is_not_overfitting():
    train = [2.0, 1.2, 0.8, 0.5, 0.3, 0.2]
    val = [2.0, 1.3, 0.9, 0.7, 0.6, 0.75]
    assert diagnose_trial(_epochs(train, val, num_classes=10)).label != "overfitting"


def test_no_overfitting_while_val_sets_a_new_minimum_at_the_last_report():
    # a huge gap, but validation still improving: not overfitting (yet)
    train = [1.0, 0.1, 0.01, 0.001, 0.0005]
    val = [2.0, 1.9, 1.8, 1.7, 1.6]
    assert diagnose_trial(_epochs(train, val, num_classes=10)).label != "overfitting"


def test_every_diagnosis_has_a_rule_and_a_confidence():
    cases = [_epochs(*DEMO_14), _epochs([2.3, 2.3, 2.3], [2.3, 2.3, 2.3]), _epochs([2.0], [2.0]),
             [(1, {"train_loss": 2.3}), (2, {"train_loss": "NaN"})]]
    for rows in cases:
        d = diagnose_trial(rows, state="completed", num_classes=10)
        assert d.rule and d.rule.split(".")[0] == str(d.label)
        assert 0 <= d.confidence <= 1


def test_too_short_is_healthy_at_low_confidence_never_a_fault():
    d = diagnose_trial(_epochs([2.0, 1.0], [2.1, 1.1]), num_classes=10)
    assert d.label == "healthy" and d.confidence < CONFIDENT and d.rule == "healthy.too_short"
    assert "training loss 2 -> 1, validation loss 2.1 -> 1.1" in d.advice and "too few to judge" in d.advice
    # Two epochs at chance level (nothing learnt, seen in a botorch sweep): the text cites the flat
    # curves and does not call them free of trouble.
    d = diagnose_trial(_epochs([2.514, 2.306], [2.304, 2.303]), state="pruned", num_classes=10)
    assert d.rule == "healthy.too_short" and "no sign of trouble" not in d.advice
    assert "validation loss 2.3 -> 2.3" in d.advice


def test_a_running_trial_with_two_reports_is_insufficient():
    d = diagnose_trial(_epochs([2.0, 1.0], [2.1, 1.1]), state="running", num_classes=10,
                       params={"lr": 0.1}, space_info={"defaults": BUILTIN_CNN_DEFAULTS})
    assert d.label == "insufficient" and d.provisional and d.variant is None
    assert d.rule == "insufficient.too_short"
    # but an explosion is named at once
    assert diagnose_trial(_epochs([2.3, 9.0], [2.3, 9.0], initial_loss=2.3), state="running").label == "lr_too_high"


# ---- finite JSON -------------------------------------------------------------------------------

BAD = [1e308, -1e308, 1.8e308, 1.7976931348623157e308, math.inf, -math.inf, math.nan, "NaN", "Infinity",
       "-Infinity"]
METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm", "update_ratio", "initial_loss",
           "num_classes")


def _all_numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _all_numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _all_numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


@pytest.mark.parametrize("bad", BAD, ids=[repr(b) for b in BAD])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("state", ["completed", "diverged", "running"])
def test_non_finite_inputs_give_finite_json(bad, metric, state):
    base = [{"train_loss": 2.3 - 0.3 * k, "val_loss": 2.35 - 0.3 * k, "train_acc": 0.1 + 0.1 * k,
             "val_acc": 0.1 + 0.1 * k, "lr": 0.05, "grad_norm": 1.0, "update_ratio": 1e-3} for k in range(5)]
    base[0].update(initial_loss=2.31, num_classes=10)
    for where in (0, 2, 4):
        rows = [dict(r) for r in base]
        rows[where][metric] = bad
        reports = [(i + 1, r) for i, r in enumerate(rows)]
        d = diagnose_trial(reports, state=state, fail_reason=f"{metric}={bad} at epoch {where + 1}",
                           final_metrics={metric: bad}, params={"lr": 0.05}, space_info={"defaults": BUILTIN_CNN_DEFAULTS})
        if d is None:
            continue
        data = d.to_json()
        text = json.dumps(data, allow_nan=False)  # raises on NaN / Infinity
        assert all(math.isfinite(x) for x in _all_numbers(json.loads(text)))
        assert Diagnosis.from_json(json.loads(text)).label == d.label


def test_a_huge_finite_loss_does_not_overflow_the_evidence():
    rows = [(1, {"train_loss": 2.3, "initial_loss": 1.8e308, "num_classes": 10}), (2, {"train_loss": 1.8e308})]
    d = diagnose_trial(rows, state="diverged")
    json.dumps(d.to_json(), allow_nan=False)
    assert num(1.7976931348623157e308) is not None and math.isfinite(num(1.7976931348623157e308))
    assert num(math.nan) is None and num(math.inf) is None and num("x") is None


def test_finite_json_reaches_every_nested_number():
    out = finite_json({"a": [1.0, math.nan, {"b": -math.inf}], "c": (2, math.inf), "d": "NaN", "e": True})
    assert out == {"a": [1.0, None, {"b": None}], "c": [2, None], "d": "NaN", "e": True}


def test_hand_built_diagnosis_with_bad_numbers_still_stores():
    d = Diagnosis("healthy", "x.", {"v": math.nan, "w": [math.inf, 1.0]}, confidence=math.nan,
                  variant=Variant({"lr": math.inf}, "why", "lr_up"))
    data = json.loads(json.dumps(d.to_json(), allow_nan=False))
    assert data["evidence"] == {"v": None, "w": [None, 1.0]} and data["confidence"] is None
    assert data["variant"]["params_change"] == {"lr": None}


def test_study_advice_and_sanity_json_are_finite():
    from tuneserve_service.diagnosis import Advice, SanityResult
    from tuneserve.schemas.enums import SanityState
    json.dumps(Advice("x", "m", {"v": math.nan}).to_json(), allow_nan=False)
    json.dumps(SanityResult(SanityState.FAILED, "v", {"loss": math.inf}, ({"x": -math.inf},)).to_json(),
               allow_nan=False)


# ---- variants ----------------------------------------------------------------------------------

PARAMS = {"lr": 0.03, "dropout": 0.2, "weight_decay": 5e-4, "width": 16, "epochs": 6, "batch_size": 64,
          "lr_schedule": "constant"}


def _d(label, **evidence):
    return Diagnosis(label, "x.", evidence)


@pytest.mark.parametrize("label, change, notch", [
    ("lr_too_high", {"lr": 0.01}, "lr_down"),
    ("diverged", {"lr": 0.01}, "lr_down"),
    ("lr_too_low", {"lr": 0.09}, "lr_up"),
    ("overfitting", {"dropout": 0.4}, "regularise"),
    ("underfitting", {"width": 32}, "wider"),
    ("plateau", {"lr_schedule": "plateau"}, "decay"),
    ("noisy", {"lr": 0.01}, "lr_down"),
])
def test_each_fault_proposes_its_notch(label, change, notch):
    v = propose_variant(_d(label), PARAMS, {})
    assert (v.params_change, v.notch) == (change, notch)
    assert v.why.endswith(".") and label.replace("_", " ") in v.why.lower()


def test_underfitting_still_improving_trains_longer():
    v = propose_variant(_d("underfitting", still_improving=True), PARAMS, {})
    assert v.params_change == {"epochs": 12}


def test_no_variant_for_healthy_insufficient_or_broken_data():
    assert propose_variant(_d("healthy"), PARAMS) is None
    assert propose_variant(_d("insufficient"), PARAMS) is None
    assert propose_variant(Diagnosis("diverged", "x.", {}, "bad_data"), PARAMS) is None


def test_variant_respects_bounds_defaults_nesting_and_json():
    # dropout near its top: weight decay instead
    assert propose_variant(_d("overfitting"), {**PARAMS, "dropout": 0.8}).params_change == {"weight_decay": 0.005}
    # a bound that makes lr / 3 no change: no such notch
    assert propose_variant(_d("lr_too_high"), PARAMS, {"bounds": {"lr": [0.03, 1]}}) is None
    assert propose_variant(_d("lr_too_low"), PARAMS, {"bounds": {"lr": [1e-4, 0.05]}}).params_change == {"lr": 0.05}
    # params without the knob: the objective's default
    v = propose_variant(_d("plateau"), {"lr": 0.1}, {"defaults": BUILTIN_CNN_DEFAULTS})
    assert v.params_change == {"lr_schedule": "cosine"}
    assert propose_variant(_d("underfitting"), {"lr": 0.1}, {}) is None  # no width known
    # nested W&B-style params keep their shape
    nested = {"optimizer": {"name": "adam", "lr": 3e-4}, "epochs": 5}
    assert propose_variant(_d("lr_too_low"), nested).params_change == {"optimizer": {"lr": 0.0009}}
    d = diagnose_trial(_epochs([2.3, 2.3, 2.3, 2.3], [2.3, 2.3, 2.3, 2.3],
                               num_classes=10, update_ratio=1e-7), params=PARAMS)
    data = json.loads(json.dumps(d.to_json(), allow_nan=False))
    assert data["label"] == "lr_too_low" and data["variant"]["params_change"] == {"lr": 0.09}
    assert Diagnosis.from_json(data) == d


def test_notches_both_directions_for_the_random_baseline():
    menu = notches(PARAMS)
    assert menu["narrower"] == {"width": 8} and menu["shorter"] == {"epochs": 3}
    assert menu["batch_up"] == {"batch_size": 256} and menu["batch_down"] == {"batch_size": 16}
    assert menu["unregularise"] == {"dropout": 0.0}


def test_random_baseline_menu_has_only_one_step_notches():
    """lr / 10 is two notches: proposed for a divergence far above the usual rate, never drawn as
    the random perturbation "of the same size"."""
    assert "lr_down_far" not in notches(PARAMS)
    assert notches(PARAMS, far=True)["lr_down_far"] == {"lr": 0.003}


@pytest.mark.parametrize("params, notch, lr", [
    ({"lr": 6.0, "optimizer": "sgd"}, "lr_down_far", 0.6),       # lr / 3 = 2, still 40x sgd's 0.05
    ({"lr": 1.2, "optimizer": "nesterov"}, "lr_down", 0.4),      # lr / 3 = 0.4: under 10x 0.05
    ({"lr": 0.05, "optimizer": "adam"}, "lr_down_far", 0.005),   # lr / 3 = 0.0167: over 10x adam's 1e-3
    ({"lr": 0.02, "optimizer": "adamw"}, "lr_down", 0.006667),
    ({"lr": 6.0}, "lr_down", 2.0),                               # optimizer unknown: one notch
    ({"lr": 6.0, "optimizer": "lion"}, "lr_down", 2.0),          # not in USUAL_LR: one notch
    ({"optimizer": {"name": "sgd", "lr": 9.0}}, "lr_down_far", 0.9),  # W&B nesting
])
def test_diverged_far_above_the_usual_rate_proposes_lr_over_10(params, notch, lr):
    v = propose_variant(Diagnosis("diverged", "x.", {}, "lr_too_high"), params)
    assert v.notch == notch
    leaf = v.params_change.get("optimizer", v.params_change)
    assert leaf == {"lr": lr}
    if notch == "lr_down_far":
        assert "10x lower" in v.why and "usual rate" in v.why
    # lr_too_high (a run that did not blow up) keeps the one-notch cut
    assert propose_variant(_d("lr_too_high"), params).notch == "lr_down"


def test_the_diverged_advice_names_the_cut_its_variant_makes():
    rows = [(k + 1, {"train_loss": 2.0 + k, "lr": 6.0}) for k in range(3)] + [(4, {"train_loss": "NaN", "lr": 6.0})]
    far = diagnose_trial(rows, state="diverged", initial_loss=2.3, num_classes=10,
                         params={"lr": 6.0, "optimizer": "sgd"})
    assert "(try 0.6)" in far.advice and far.variant.params_change == {"lr": 0.6}
    near = diagnose_trial(rows, state="diverged", initial_loss=2.3, num_classes=10,
                          params={"lr": 0.9, "optimizer": "sgd"})
    assert "(try 0.3)" in near.advice and near.variant.params_change == {"lr": 0.3}


SLOW_VAL = [2.3, 2.2, 2.1, 2.05, 2.0]  # still falling, 9% in 3 reports, above 0.6 ln(10)


@pytest.mark.parametrize("params, slow", [
    (None, True),                                      # optimizer unknown: the curve alone
    ({"lr": 0.01, "optimizer": "sgd"}, True),          # lr x 3 = 0.03, still under sgd's usual 0.05
    ({"lr": 0.05 / 3, "optimizer": "nesterov"}, True),  # lr x 3 = the usual rate exactly
    ({"lr": 0.05, "optimizer": "sgd"}, False),         # at the usual rate: not the step size
    ({"lr": 0.03, "optimizer": "nesterov"}, False),
    ({"lr": 0.003, "optimizer": "adam"}, True),        # Adam and AdamW are exempt
    ({"lr": 0.005, "optimizer": "adamw"}, True),
    ({"lr": 0.05}, True),                              # no optimizer among the params
])
def test_slow_on_sgd_needs_an_lr_below_a_third_of_its_usual_rate(params, slow):
    rows = [(i + 1, {"train_loss": v, "val_loss": v, "update_ratio": 1e-3}) for i, v in enumerate(SLOW_VAL)]
    d = diagnose_trial(rows, num_classes=10, params=params)
    assert (d.rule == "lr_too_low.slow") is slow, d
    if not slow:
        assert d.label == "healthy" and not d.confident  # still improving: a low-confidence healthy


def test_slow_reads_the_optimizer_from_the_objectives_defaults():
    rows = [(i + 1, {"train_loss": v, "val_loss": v, "update_ratio": 1e-3}) for i, v in enumerate(SLOW_VAL)]
    info = {"defaults": BUILTIN_CNN_DEFAULTS}  # the built-in trainer: sgd, 0.05
    assert diagnose_trial(rows, num_classes=10, params={"lr": 0.05}, space_info=info).rule != "lr_too_low.slow"
    assert diagnose_trial(rows, num_classes=10, params={"lr": 0.01}, space_info=info).rule == "lr_too_low.slow"


def test_builtin_defaults_are_the_trainers():
    from tuneserve_workers.training.config import TrainConfig
    c = TrainConfig()
    assert {k: getattr(c, k) for k in BUILTIN_CNN_DEFAULTS} == BUILTIN_CNN_DEFAULTS


# ---- the corpus ---------------------------------------------------------------------------------

def _corpus_sample(n=60):
    import curves_corpus
    if not curves_corpus.CORPUS.exists():
        pytest.skip("no corpus committed yet")
    records = curves_corpus.load_corpus()
    step = max(1, len(records) // n)
    return records[::step]


def test_stored_diagnoses_never_contradict_the_raw_curves():
    import advice
    for rec in _corpus_sample():
        d = advice.diagnose(rec)
        if d is None:
            continue
        val = [advice._f(v) for v in rec["parent"]["val_loss"]]
        train = [advice._f(v) for v in rec["parent"]["train_loss"]]
        ev = d.evidence
        data = json.loads(json.dumps(d.to_json(), allow_nan=False))
        assert data["rule"] and 0 <= data["confidence"] <= 1
        if d.label == "diverged" or not val:
            continue
        assert ev["last_step"] == len(val), (rec["index"], ev)
        if "val_last" in ev:
            assert ev["val_last"] == num(val[-1]), (rec["index"], ev)
        if "train_last" in ev:
            assert ev["train_last"] == num(train[-1]), (rec["index"], ev)
        if d.label == "overfitting":
            assert val[-1] >= min(val[:-1]), rec["index"]  # never while val sets a new minimum
            assert ev["val_best"] == num(min(val))
        if d.label != "healthy":
            assert d.variant is not None, (rec["index"], d)


def test_the_corpus_records_what_the_benchmark_needs():
    import curves_corpus
    for rec in _corpus_sample(30):
        drawn = curves_corpus.draw(rec["index"])
        assert drawn["params"] == rec["params"]  # regenerable from SeedSequence((BASE_SEED, index))
        assert "repeat" in rec["runs"] and rec["random"] in rec["runs"]
        menu = notches(rec["params"])
        for name in curves_corpus.LABEL_NOTCHES:
            if name in menu:
                assert rec["runs"][name]["params_change"] == menu[name]


@pytest.mark.usefixtures("one_torch_thread")
def test_a_shorter_run_is_the_prefix_of_a_longer_one():
    import curves_corpus
    p = {"dataset": "digits", "data_fraction": 0.1, "width": 2, "depth": 1, "batch_size": 64, "epochs": 2,
         "lr": 0.1, "lr_schedule": "plateau", "bf16": False, "channels_last": False}
    short, long = curves_corpus.train(p), curves_corpus.train({**p, "epochs": 4})
    assert short["val_loss"] == long["val_loss"][:2] and short["train_loss"] == long["train_loss"][:2]


@pytest.mark.usefixtures("one_torch_thread")
def test_a_parent_that_blows_up_gets_the_lr_over_10_counterfactual():
    """curves_corpus adds `lr_down_far` (the cut `diverged` proposes far above the usual rate) only
    for parents that blew up, as the run of exactly the change variant.py proposes."""
    import curves_corpus
    p = {"dataset": "digits", "data_fraction": 0.1, "width": 2, "depth": 1, "batch_size": 16, "epochs": 2,
         "lr": 10.0, "optimizer": "adam", "lr_schedule": "constant", "batch_norm": False, "bf16": False,
         "channels_last": False}
    parent = curves_corpus.train(p)
    assert curves_corpus._blew_up(parent)
    runs: dict = {}
    curves_corpus.add_far(p, runs)
    d = propose_variant(Diagnosis("diverged", "x.", {}, "lr_too_high"), p)
    assert d.notch == "lr_down_far" and runs["lr_down_far"]["params_change"] == d.params_change == {"lr": 1.0}
    assert not curves_corpus._blew_up({"val_loss": [2.3, 1.9], "diverged": None})
    assert curves_corpus._blew_up({"val_loss": ["NaN"], "diverged": None})


@pytest.mark.parametrize("params, rule", [
    (None, "lr_too_low.nothing_learnt"),                         # optimizer unknown: as before
    ({"lr": 0.05, "optimizer": "sgd"}, "lr_too_low.nothing_learnt"),
    ({"lr": 0.15, "optimizer": "sgd"}, "lr_too_high.nothing_learnt"),   # 3x sgd's usual 0.05
    ({"lr": 0.003, "optimizer": "adam"}, "lr_too_high.nothing_learnt"),  # 3x adam's usual 1e-3
    ({"lr": 0.002, "optimizer": "adamw"}, "lr_too_low.nothing_learnt"),
])
def test_nothing_learnt_far_above_the_usual_rate_does_not_say_raise_it(params, rule):
    """"lr 0.5 on SGD is too low, raise it 3x" contradicts what a reader knows of SGD: nothing
    learnt at 3x+ the optimizer's usual rate is named lr_too_high, a guess."""
    rows = _epochs([2.3, 2.29, 2.3, 2.28], [2.31, 2.29, 2.3, 2.3], num_classes=10, initial_loss=2.3)
    rows = [(s, {**m, "update_ratio": 2e-3}) for s, m in rows]
    d = diagnose_trial(rows, params=params)
    assert d.rule == rule and not d.confident
    if rule.startswith("lr_too_high"):
        assert "3x lower" in d.advice and d.variant.notch == "lr_down"
        assert d.evidence["usual_lr"] == {"sgd": 0.05, "adam": 1e-3}[params["optimizer"]]
        # a loss that fell at every report, however little, is no sign of too large steps
        falling = _epochs([2.3, 2.29, 2.285, 2.28], [2.31, 2.29, 2.3, 2.3], num_classes=10, initial_loss=2.3)
        falling = [(s, {**m, "update_ratio": 2e-3}) for s, m in falling]
        assert diagnose_trial(falling, params=params).rule == "lr_too_low.nothing_learnt"
