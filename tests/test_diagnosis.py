"""Trial diagnosis on curves alone (service/diagnosis/trial.py): every label and cause from planted
curves, the evidence and advice behind them, the shapes reports arrive in, and the JSON round trip."""
from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest

from tuneserve_service.diagnosis import THRESHOLDS, Diagnosis, diagnose_trial
from tuneserve_service.diagnosis.curve import Curve, reason_figures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import diagnosis as bench  # noqa: E402

CASES = bench.synthetic_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_planted_curve_is_named_as_planted(case):
    d = case.diagnose()
    assert bench.named(d) == case.truth, d
    assert d.advice.endswith(".") and d.advice.count(". ") == 0  # one sentence
    json.dumps(d.to_json(), allow_nan=False)  # storable as it is (JSONB refuses NaN)


def test_the_synthetic_set_covers_every_problem():
    assert {c.truth for c in CASES} == set(bench.FAULTS)
    assert len(CASES) >= 30


def _epochs(train, val=None, **first):
    rows = []
    for i, t in enumerate(train):
        row = {"train_loss": t}
        if val is not None:
            row["val_loss"] = val[i]
        if i == 0:
            row.update(first)
        rows.append((i + 1, row))
    return rows


def test_nan_before_any_update_is_bad_data_from_the_reason_alone():
    d = diagnose_trial([], state="diverged", fail_kind="diverged",
                       fail_reason="initial_loss=nan before the first update (NaN or inf in the inputs?); "
                                   "num_classes=10 lr=0.05")
    assert (d.label, d.cause) == ("diverged", "bad_data")
    # NaN is no JSON number: the evidence names it instead of holding it
    assert "initial_loss" not in d.evidence and d.evidence["non_finite"]["initial_loss"] == "nan"
    assert d.evidence["chance_loss"] == pytest.approx(math.log(10), rel=1e-3)
    assert "no learning rate" in d.advice


def test_a_reason_that_says_before_the_first_update_is_bad_data():
    d = diagnose_trial([], state="diverged", fail_reason="loss was inf before the first update in my script")
    assert (d.label, d.cause) == ("diverged", "bad_data")


def test_a_first_loss_far_above_ln_c_is_bad_scale_with_the_ratio():
    d = diagnose_trial(_epochs([5000.0], initial_loss=4046.0, num_classes=10), state="diverged")
    assert (d.label, d.cause) == ("diverged", "bad_scale")
    assert d.evidence["initial_over_chance"] == pytest.approx(4046 / math.log(10), rel=1e-2)
    assert "normalise the inputs" in d.advice


def test_divergence_after_a_sound_start_blames_the_lr_with_the_gradient_history():
    rows = [(k + 1, {"train_loss": 2.0 + k, "grad_norm": 2.0 * 3 ** k, "lr": 0.5}) for k in range(4)]
    rows.append((5, {"train_loss": "NaN", "grad_norm": "Infinity", "lr": 0.5}))
    d = diagnose_trial(rows, state="diverged", initial_loss=2.3, num_classes=10)
    assert (d.label, d.cause) == ("diverged", "lr_too_high")
    assert d.evidence["step"] == 5 and d.evidence["grad_norm_first"] == 2.0 and d.evidence["grad_norm_last"] == 54.0
    # the cut the variant proposes: with no optimizer known, one 3x notch
    assert d.evidence["grad_norm_growing"] is True and "try 0.167" in d.advice


def test_a_loss_past_100_ln_c_is_a_divergence_even_if_the_trial_completed():
    d = diagnose_trial(_epochs([2.0, 50.0, 400.0], num_classes=10, initial_loss=2.3))
    assert (d.label, d.cause, d.evidence["step"]) == ("diverged", "lr_too_high", 3)


def test_divergence_with_nothing_known_names_no_cause():
    d = diagnose_trial([], state="diverged", fail_reason="non-finite val_loss (nan) at step 1")
    assert d.label == "diverged" and d.cause is None
    assert d.evidence["step"] == 1 and "report initial_loss and num_classes" in d.advice


def test_final_metrics_fill_in_what_never_became_a_report():
    # The trainer's Diverged metrics: the figures of the epoch that blew up.
    d = diagnose_trial([], state="diverged", final_metrics={"train_loss": 8399.0, "initial_loss": 4046.0,
                                                             "num_classes": 10, "epoch": 1})
    assert d.cause == "bad_scale"


def test_lr_too_low_needs_tiny_updates_when_the_update_ratio_is_known():
    flat = [2.31, 2.30, 2.305, 2.30, 2.299]
    rows = [(i + 1, {"train_loss": v, "update_ratio": 1e-7, "lr": 1e-6}) for i, v in enumerate(flat)]
    d = diagnose_trial(rows, num_classes=10)
    assert d.label == "lr_too_low" and "1e-06" in d.advice
    assert d.rule == "lr_too_low.barely_moved" and d.confidence < 0.6  # a x3 notch rarely shows (corpus)
    # Same flat curve, weights moving at a normal pace: in a run this short, mostly still the lr
    # (the curves corpus: lr x 3 saved most such runs), and the sanity gate if it persists.
    rows = [(i + 1, {"train_loss": v, "update_ratio": 5e-3}) for i, v in enumerate(flat)]
    d = diagnose_trial(rows, num_classes=10)
    assert d.label == "lr_too_low" and d.rule == "lr_too_low.nothing_learnt" and "sanity gate" in d.advice


def test_overfitting_names_the_best_epoch():
    train = [2.0, 1.2, 0.8, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02]
    val = [2.0, 1.3, 0.9, 0.7, 0.6, 0.62, 0.7, 0.8, 0.9, 1.0]
    d = diagnose_trial(_epochs(train, val, num_classes=10))
    assert d.label == "overfitting" and d.evidence["best_step"] == 5
    assert "stop at epoch 5" in d.advice


def test_a_healthy_run_with_a_tiny_late_wobble_is_healthy():
    # The built-in trainer on digits: val 0.035 -> 0.05 at the end is noise, not overfitting.
    train = [2.825, 1.529, 0.545, 0.196, 0.104, 0.061, 0.038, 0.040, 0.037, 0.048]
    val = [2.099, 0.785, 0.322, 0.133, 0.108, 0.047, 0.039, 0.035, 0.048, 0.051]
    d = diagnose_trial(_epochs(train, val, initial_loss=2.337, num_classes=10))
    assert d.label == "healthy", d


def test_one_bump_after_the_first_descent_is_not_noise():
    # A botorch sweep of examples/digits_cnn (adam, lr 0.011): val 0.235, 0.049, 0.072, 0.039, 0.035,
    # 0.059. The second report sat far below a median taken with the first (still on the descent)
    # and counted as a spike next to the real bump at epoch 3: two spikes made it "noisy".
    train = [0.869, 0.0929, 0.0384, 0.0340, 0.0258, 0.0165]
    val = [0.235, 0.0491, 0.0723, 0.0390, 0.0353, 0.0586]
    d = diagnose_trial(_epochs(train, val, initial_loss=2.33, num_classes=10), state="pruned")
    assert (d.label, d.rule) == ("healthy", "healthy.learnt"), d


def test_plateau_only_when_the_lr_was_not_already_cut():
    train = [2.3, 1.2, 0.9, 0.8, 0.7, 0.7, 0.7, 0.7]
    rows = [(i + 1, {"train_loss": v, "lr": 0.1}) for i, v in enumerate(train)]
    assert diagnose_trial(rows, num_classes=10).label == "plateau"
    rows = [(i + 1, {"train_loss": v, "lr": 0.1 if i < 5 else 0.03}) for i, v in enumerate(train)]
    assert diagnose_trial(rows, num_classes=10).label == "healthy"


def test_underfitting_needs_both_curves_high():
    train = [2.3, 2.0, 1.8, 1.7, 1.66, 1.65, 1.65, 1.65]
    assert diagnose_trial(_epochs(train, [v - 0.05 for v in train], num_classes=10)).label == "underfitting"
    # Stalled well below half of ln(C) after a real fall: a plateau for the lr, not a capacity problem.
    low = [2.3, 1.5, 1.0, 0.8, 0.72, 0.71, 0.71, 0.71]
    assert diagnose_trial(_epochs(low, low, num_classes=10)).label == "plateau"
    # High but the validation loss far above the training loss: not underfitting.
    assert diagnose_trial(_epochs(train, [v * 1.6 for v in train], num_classes=10)).label != "underfitting"


def test_running_trials_get_a_provisional_diagnosis_waiting_ones_none():
    rows = _epochs([2.3, 15.0, 2.5], num_classes=10, initial_loss=2.3)
    d = diagnose_trial(rows, state="running")
    assert d.provisional and d.label == "lr_too_high"
    assert diagnose_trial(rows, state="waiting") is None


def test_nothing_to_judge_gives_none():
    assert diagnose_trial([], state="failed", fail_kind="error", fail_reason="Traceback ... KeyError: 'x'") is None
    assert diagnose_trial([(1, {"val_acc": 0.5}), (2, {"val_acc": 0.6})], metric="val_acc") is None


def test_stored_reports_read_the_same_as_pairs():
    pairs = [(2, {"train_loss": 1.0}), (1, {"train_loss": 2.0, "num_classes": 10}), (3, {"train_loss": "NaN"})]
    stored = [{"step": s, "metrics": m, "created_at": "2026-11-27T10:00:00Z"} for s, m in pairs]

    class Row:
        def __init__(self, step, metrics):
            self.step, self.metrics = step, metrics

    rows = [Row(s, m) for s, m in pairs]
    results = [diagnose_trial(r, state="diverged") for r in (pairs, stored, rows)]
    assert results[0] == results[1] == results[2]
    assert results[0].evidence["step"] == 3
    curve = Curve.from_reports(stored)
    assert curve.steps == (1, 2, 3) and math.isnan(curve.rows[2]["train_loss"])


def test_json_round_trip_and_unknown_labels_refused():
    d = diagnose_trial([], state="diverged", fail_reason="initial_loss=nan before the first update; num_classes=10")
    data = json.loads(json.dumps(d.to_json(), allow_nan=False))
    assert Diagnosis.from_json(data) == d
    with pytest.raises(ValueError):
        Diagnosis.from_json({**data, "label": "sad"})
    with pytest.raises(ValueError):
        Diagnosis.from_json({**data, "cause": "gremlins"})


def test_thresholds_are_the_ones_the_rules_use():
    rows = [(i + 1, {"train_loss": v, "update_ratio": 1e-3})
            for i, v in enumerate([2.3, 2.2, 2.1, 2.05, 2.0])]  # 13% progress
    assert diagnose_trial(rows, num_classes=10).rule == "lr_too_low.slow"  # 2.0 is above 0.6 ln(10)
    big_steps = dataclasses.replace(THRESHOLDS, slow_max_update_ratio=1e-4)
    assert diagnose_trial(rows, num_classes=10, thresholds=big_steps).label != "lr_too_low"
    fast = dataclasses.replace(THRESHOLDS, slow_max_fall=0.05)  # 2.2 -> 2.0 in 3 reports is 9%: not slow
    assert diagnose_trial(rows, num_classes=10, thresholds=fast).label != "lr_too_low"
    lower = dataclasses.replace(THRESHOLDS, slow_high=0.9)  # 2.0 is under 0.9 ln(10): not slow
    assert diagnose_trial(rows, num_classes=10, thresholds=lower).label != "lr_too_low"
    stricter = dataclasses.replace(lower, no_progress=0.2)
    assert diagnose_trial(rows, num_classes=10, thresholds=stricter).label == "lr_too_low"  # no progress


def test_reason_figures():
    assert reason_figures("train_loss=nan at epoch 1 step 50 (lr=10, num_classes=4)") == {
        "train_loss": pytest.approx(math.nan, nan_ok=True), "lr": 10.0, "num_classes": 4.0, "epoch": 1.0}
    figures = reason_figures("non-finite val_loss (inf) at step 3")
    assert figures["step"] == 3.0 and figures["val_loss"] == math.inf
    assert reason_figures("initial_loss=nan before the first update")["before_update"] == 1.0
    assert reason_figures(None) == {} and reason_figures("Traceback: boom") == {}


def test_the_rules_are_pure():
    import subprocess

    code = ("import sys, tuneserve_service.diagnosis; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'fastapi', 'torch', 'workers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_still_falling_training_loss_with_a_last_validation_rise_is_not_called_still_improving():
    """The demo's short runs: training loss falling, validation loss up at the last epoch. The label
    stays a low-confidence healthy, but its text names the rise instead of "still improving"."""
    d = diagnose_trial(_epochs([1.2186, 0.352245, 0.297736, 0.233203], [0.690876, 1.0755, 0.361404, 0.607602],
                               initial_loss=2.29, num_classes=10))
    assert (d.label, d.rule, d.confidence) == ("healthy", "healthy.improving", 0.5)
    assert "Still improving" not in d.advice
    assert "validation loss at the last report (0.608) is above its best (0.361 at epoch 3)" in d.advice


def test_slow_needs_the_training_loss_as_high_as_the_validation_loss():
    """lr_too_low.slow is for a run that is not yet fitting even its training set: with the training
    loss already well under the validation loss (a gap), the step size is not what limits it."""
    val = [2.3, 2.2, 2.1, 2.05, 2.0]
    both = [(i + 1, {"train_loss": v, "val_loss": v, "update_ratio": 1e-3}) for i, v in enumerate(val)]
    assert diagnose_trial(both, num_classes=10).rule == "lr_too_low.slow"
    gap = [(i + 1, {"train_loss": 0.8 * v, "val_loss": v, "update_ratio": 1e-3}) for i, v in enumerate(val)]
    assert diagnose_trial(gap, num_classes=10).label != "lr_too_low"


def test_a_start_before_the_first_epoch_is_named_as_such():
    """The loss before the first update is not on the plotted curve (it starts at epoch 1), so a text
    that quotes it says "before training"; without it the text quotes the first epoch's report."""
    train, val = [1.22, 0.9, 0.5, 0.219], [0.69, 1.04, 0.22, 1.27]   # the demo's trial #10
    with_initial = diagnose_trial(_epochs(train, val, initial_loss=2.29), num_classes=10)
    assert (with_initial.label, with_initial.rule) == ("healthy", "healthy.improving")
    assert "(2.29 before training -> 0.219)" in with_initial.advice, with_initial.advice
    without = diagnose_trial(_epochs(train, val), num_classes=10)
    assert "(1.22 -> 0.219)" in without.advice and "before training" not in without.advice, without.advice


def test_settled_is_confidently_healthy_only_when_the_task_was_learnt():
    """healthy.learnt for a run whose best validation loss got under 0.3 ln C; one that settled
    higher up with no fault named is healthy.settled_high. Both are guesses (0.5) by the corpus."""
    low = [2.0, 0.5, 0.2, 0.15, 0.149, 0.149, 0.149]  # the training loss fits (under 0.05 ln C)
    learnt = [(i + 1, {"train_loss": v / 4, "val_loss": v, "update_ratio": 1e-3}) for i, v in enumerate(low)]
    d = diagnose_trial(learnt, num_classes=10)
    assert (d.label, d.rule, d.confidence) == ("healthy", "healthy.learnt", 0.5)
    high = [2.0, 1.2, 1.0, 0.95, 0.949, 0.949, 0.949]  # 0.95 is 41% of ln(10)
    lrs = [0.1, 0.1, 0.1, 0.1, 0.03, 0.01, 0.003]  # a schedule cut the lr in the stall: no plateau
    settled = [(i + 1, {"train_loss": v, "val_loss": v, "update_ratio": 1e-3, "lr": lr})
               for i, (v, lr) in enumerate(zip(high, lrs))]
    d = diagnose_trial(settled, num_classes=10)
    assert (d.label, d.rule) == ("healthy", "healthy.settled_high") and not d.confident


def test_a_validation_loss_still_falling_is_not_nothing_to_change():
    """The training loss fitted, but the validation loss sets a new low at the last report, far below
    3 reports before: still improving (0.5), never healthy.learnt's "nothing to change"."""
    d = diagnose_trial(_epochs([0.9, 0.2, 0.05, 0.02, 0.01], [1.5, 0.9, 0.5, 0.3, 0.15], num_classes=10))
    assert (d.label, d.rule, d.confidence) == ("healthy", "healthy.improving", 0.5)
    assert "Still improving" in d.advice
    # each figure named by its curve, the validation loss's first and last reports among them
    assert "-> 0.01, validation loss 1.5 -> 0.15)" in d.advice and "training loss" in d.advice, d.advice
