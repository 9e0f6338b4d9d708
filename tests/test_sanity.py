"""The sanity gate's pure parts (service/diagnosis/sanity.py): its config, the sanity run's
parameters, the figures read from reports, and the verdict for each way a pipeline breaks."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from tuneserve_service.diagnosis import (SanityConfig, SanityConfigError, SanityResult, figures_from_reports, sanity_lrs,
                               sanity_params, sanity_verdict)
from tuneserve_service.space import parse_parameters
from tuneserve_workers.training.config import TrainConfig

TRAINER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
SPACE = parse_parameters({
    "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0},
    "width": {"values": [16, 64, 32]},
    "depth": {"min": 1, "max": 4},
    "dropout": {"min": 0.1, "max": 0.5},
    "weight_decay": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
    "hflip": {"values": [True, False]},
    "batch_size": {"values": [64, 128, 256]},
    "optimizer": {"parameters": {"name": {"values": ["adam", "sgd"]}, "momentum": {"value": 0.9}}},
    "epochs": {"value": 20},
})


def test_config_defaults_and_rules():
    assert SanityConfig.from_json({}) == SanityConfig(64, 100, False)
    assert SanityConfig.from_json(True) == SanityConfig()
    assert SanityConfig.from_json({"samples": 32, "max_epochs": 50, "sweep": True}).to_json() == {
        "samples": 32, "max_epochs": 50, "sweep": True}
    for bad, field in (({"samples": 1}, "samples"), ({"samples": "64"}, "samples"), ({"max_epochs": 0}, "max_epochs"),
                       ({"max_epochs": True}, "max_epochs"), ({"sweep": "yes"}, "sweep"), ({"sampels": 64}, "sampels")):
        with pytest.raises(SanityConfigError) as info:
            SanityConfig.from_json(bad)
        assert info.value.field == field and str(info.value).startswith(f"sanity.{field}: ")
    with pytest.raises(SanityConfigError):
        SanityConfig.from_json([64])


def test_sanity_params_largest_model_no_regularisation_default_lr():
    params = sanity_params(SPACE, TRAINER_DEFAULTS, max_epochs=100)
    assert params["width"] == 64 and params["depth"] == 4          # widest, deepest
    assert params["dropout"] == 0.0 and params["weight_decay"] == 0.0 and params["hflip"] is False
    assert params["lr"] == 0.05                                    # the trainer's default, inside the range
    assert params["batch_size"] == 128 and params["optimizer.name"] == "sgd"  # defaults the space holds
    assert params["optimizer.momentum"] == 0.9 and params["epochs"] == 100
    assert set(params) == set(SPACE.names)


def test_default_lr_outside_the_range_is_its_geometric_middle():
    space = parse_parameters({"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}})
    assert sanity_params(space, TRAINER_DEFAULTS) == {"lr": pytest.approx(1e-3)}
    assert sanity_params(space) == {"lr": pytest.approx(1e-3)}  # a user objective: no defaults known
    linear = parse_parameters({"learning_rate": {"min": 0.1, "max": 0.3}})
    assert sanity_params(linear) == {"learning_rate": pytest.approx(0.2)}


def test_a_sweep_of_three_learning_rates_stays_in_range():
    assert sanity_lrs(SPACE, TRAINER_DEFAULTS) == pytest.approx([0.05, 0.005, 0.5])
    assert sanity_lrs(SPACE, TRAINER_DEFAULTS, sweep=False) == [0.05]
    tight = parse_parameters({"lr": {"distribution": "log_uniform_values", "min": 0.01, "max": 0.1}})
    assert sanity_lrs(tight, {"lr": 0.05}) == pytest.approx([0.05, 0.01, 0.1])
    assert sanity_lrs(parse_parameters({"width": {"min": 1, "max": 4}})) == []


def _reports(losses, accs=None, **first):
    rows = []
    for i, loss in enumerate(losses):
        row = {"train_loss": loss, "lr": first.get("lr", 0.05), "update_ratio": first.get("update_ratio", 5e-3)}
        if accs:
            row["train_acc"] = accs[i]
        if i == 0:
            row.update({k: v for k, v in first.items() if k in ("initial_loss", "num_classes")})
        rows.append((i + 1, row))
    return rows


def test_figures_from_reports_and_what_the_objective_adds():
    figures = figures_from_reports(_reports([2.3, 1.0, 0.1], [0.1, 0.6, 1.0], initial_loss=2.31, num_classes=10),
                                   {"input_std": 0.8})
    assert figures == {"initial_loss": 2.31, "num_classes": 10, "lr": 0.05, "first_loss": 2.3, "final_loss": 0.1,
                       "best_loss": 0.1, "final_acc": 1.0, "best_acc": 1.0, "update_ratio": 5e-3, "epochs": 3,
                       "input_std": 0.8}
    diverged = figures_from_reports([(1, {"train_loss": 2.3}), (2, {"train_loss": "NaN"})])
    assert diverged["diverged"] == 1 and diverged["diverged_step"] == 2


def verdict(losses, accs=None, samples=64, max_epochs=100, extra=None, **first):
    return sanity_verdict(figures_from_reports(_reports(losses, accs, **first), extra), samples, max_epochs)


def test_a_pipeline_that_fits_passes():
    r = verdict([2.35, 1.2, 0.3, 0.05], [0.1, 0.6, 0.95, 1.0], initial_loss=2.34, num_classes=10)
    assert r.passed and r.verdict == ("after 4 epochs on 64 samples the training loss went from 2.34 to 0.05, "
                                      "accuracy 100%: the pipeline can fit a tiny subset, and the initial loss 2.34 "
                                      "is about ln(10) = 2.3")
    assert [c["name"] for c in r.checks] == ["fit", "initial_loss"] and all(c["ok"] for c in r.checks)


def test_the_issues_example_verdict():
    losses = [2.31] + [2.31 - 0.03 * k / 99 for k in range(1, 100)]
    r = verdict(losses, [0.12] * 100, initial_loss=2.31, num_classes=10, extra={"input_std": 0.7})
    assert r.state == "failed" and r.verdict == (
        "after 100 epochs on 64 samples the training loss went from 2.31 to 2.28, accuracy 12%: the model cannot "
        "fit even a tiny subset; check that inputs vary, labels match inputs, and the loss is computed on the "
        "model's output")


@pytest.mark.parametrize("case, check, words", [
    (dict(extra={"input_std": 0.0}), "inputs_vary", "the inputs do not vary"),
    (dict(lr=0.0, update_ratio=0.0), "weights_move", "the learning rate is 0"),
    (dict(update_ratio=0.0), "weights_move", "the weights are frozen or the optimizer does not hold the model's"),
    (dict(update_ratio=4e-4, extra={"input_std": 0.7}), "loss_follows", "not computed on the model's output"),
])
def test_a_loss_that_never_moves_says_why(case, check, words):
    extra = case.pop("extra", None)
    r = verdict([2.31] * 40, [0.1] * 40, max_epochs=40, extra=extra, initial_loss=2.31, num_classes=10, **case)
    assert r.state == "failed" and words in r.verdict
    assert r.verdict.startswith("after 40 epochs on 64 samples the training loss went from 2.31 to 2.31")
    assert next(c for c in r.checks if c["name"] == check)["ok"] is False


def test_the_initial_loss_far_from_ln_c_fails_even_when_the_model_fits():
    high = verdict([4000.0, 10.0, 0.01], [0.1, 0.5, 1.0], initial_loss=3690.0, num_classes=10)
    assert high.state == "failed" and "(it fitted)" in high.verdict
    assert "1603x ln(10) = 2.3: the inputs or initial weights are far too large" in high.verdict
    low = verdict([0.1, 0.01], [1.0, 1.0], initial_loss=0.2, num_classes=10)
    assert low.state == "failed" and "labels leak into the inputs or the loss is not the cross-entropy" in low.verdict


def test_nan_inputs_and_divergence():
    r = sanity_verdict({"initial_loss": math.nan, "diverged": 1, "diverged_step": 1, "input_nonfinite": 1.0,
                        "num_classes": 10}, 64, 100)
    assert r.state == "failed" and r.verdict.startswith(
        "on 64 samples the training loss diverged at epoch 1 (initial loss NaN): every input value is NaN or inf")
    r = sanity_verdict({"initial_loss": 2.3, "first_loss": 2.3, "final_loss": 400.0, "diverged": 1,
                        "diverged_step": 3, "lr": 10.0, "num_classes": 10}, 64, 100)
    assert r.state == "failed" and "blew up at lr 10: lower the learning rate" in r.verdict


def test_results_round_trip_and_the_other_states():
    r = verdict([2.3, 0.01], [0.5, 1.0], initial_loss=math.nan, num_classes=10)
    data = json.loads(json.dumps(r.to_json(), allow_nan=False))
    assert SanityResult.from_json(data) == r
    assert SanityResult.pending().state == "pending"
    skipped = SanityResult.skipped("objective m:f does not support the sanity check")
    assert skipped.state == "skipped" and "the study runs without it" in skipped.verdict
    failed = SanityResult.run_failed("error", "Traceback (most recent call last):\n...\nKeyError: 'width'")
    assert failed.state == "failed" and "KeyError: 'width'" in failed.verdict
