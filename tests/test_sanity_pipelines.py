"""The sanity gate on planted pipelines, real runs on CPU at small size: healthy digits and shapes
(built-in and a user script) pass; all-constant inputs, lr 0, frozen weights and a loss on detached
outputs fail with the verdict that names them; inputs x1000 are flagged by the initial-loss check;
NaN in the data by the inputs check. Plus the worker-side contract: how objectives opt in, and what
happens to one that does not."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from tuneserve_service.diagnosis import SanityResult, figures_from_reports, sanity_verdict
from tuneserve_workers.training.config import TrainConfig
from tuneserve_workers.training.objective import LocalContext, SanityRequest, load_objective
from tuneserve_workers.training.run import train_cnn
from tuneserve_workers.training.sanity import run_sanity, run_sanity_objective, stratified_sample

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import diagnosis as bench  # noqa: E402

SAMPLES, MAX_EPOCHS = 64, 60  # the benchmark runs 100 epochs; every planted case decides well before 60


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("case", bench.sanity_cases(), ids=[c.name for c in bench.sanity_cases()])
def test_planted_pipeline(case):
    result = bench.run_sanity_case(case, SAMPLES, MAX_EPOCHS)
    assert result.state == case.expected, result.verdict
    failed = [c["name"] for c in result.checks if not c["ok"]]
    if case.expected == "passed":
        assert failed == [] and "the pipeline can fit a tiny subset" in result.verdict
        assert result.figures["best_acc"] >= 0.99 and result.figures["epochs"] < MAX_EPOCHS
    else:
        assert case.decided_by in failed, (failed, result.verdict)


def test_verdicts_name_the_fault():
    expect = {
        "all-constant inputs": "the inputs do not vary",
        "lr 0 (user script)": "the learning rate is 0",
        "frozen weights (user script)": "the weights are frozen or the optimizer does not hold the model's parameters",
        "loss on detached outputs (user script)": "it is not computed on the model's output",
        "inputs x1000, normalisation off": "the inputs or initial weights are far too large",
        "NaN in the data": "every input value is NaN or inf",
    }
    cases = {c.name: c for c in bench.sanity_cases()}
    for name, words in expect.items():
        result = bench.run_sanity_case(cases[name], SAMPLES, 10)  # each is decided at once or never moves
        assert words in result.verdict, (name, result.verdict)


def test_the_built_in_trainer_refuses_lr_0():
    # which is why the lr-0 pipeline is a user script
    with pytest.raises(ValueError, match="lr must be a positive number"):
        TrainConfig.from_params({"lr": 0})


def test_an_objective_without_support_is_skipped_and_told_once(caplog):
    objective = load_objective(f"{bench.PIPELINES}:no_sanity_support")
    ctx = LocalContext(sanity=SanityRequest(SAMPLES, 5))
    with caplog.at_level(logging.WARNING, logger="tuneserve.worker"):
        first = run_sanity_objective(objective, {}, ctx)
        second = run_sanity_objective(objective, {}, ctx)
    assert not first.supported and not second.supported and ctx.history == []  # nothing ran
    assert "does not support the sanity check" in first.message
    assert sum("sanity_unsupported" in r.message for r in caplog.records) == 1
    assert SanityResult.skipped(first.message).state == "skipped"


def test_an_objective_that_claims_support_but_never_says_done():
    def claims(params, context):
        context.report(1, train_loss=1.0)
        return 1.0

    claims.supports_sanity = True
    outcome = run_sanity_objective(claims, {}, LocalContext(sanity=SanityRequest(8, 2)))
    assert not outcome.supported and "never called context.sanity_done()" in outcome.message


def test_a_sweep_of_learning_rates_stops_at_the_first_that_fits():
    ctx = LocalContext(sanity=SanityRequest(32, 25, lrs=(1e-6, 0.05)))
    figures = train_cnn({"width": 16, "dropout": 0.5, "weight_decay": 1e-3}, ctx)  # regularisation is switched off
    assert figures["attempts"] == 2 and figures["lr"] == 0.05 and figures["reached"] == 1
    assert ctx.sanity_figures == figures
    steps = [s for s, _ in ctx.history]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 25  # the second attempt kept counting
    assert sum("initial_loss" in m for _, m in ctx.history) == 2
    verdict = sanity_verdict(figures_from_reports(ctx.history, figures), 32, 25)
    assert verdict.passed and verdict.figures["lr"] == 0.05


def test_run_sanity_uses_a_stratified_subset_and_reports_the_inputs():
    ctx = LocalContext()
    figures = run_sanity({"width": 8, "depth": 1}, ctx, samples=20, max_epochs=2)
    assert figures["samples"] == 20 and figures["epochs"] == 2 and figures["input_nonfinite"] == 0
    first = ctx.history[0][1]
    assert first["num_classes"] == 10 and first["input_std"] > 0 and "initial_loss" in first


def test_stratified_sample():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    idx = stratified_sample(y, 20, seed=3)
    assert len(set(idx)) == 20 and np.bincount(y[idx]).tolist() == [10, 6, 3, 1]
    assert np.array_equal(idx, stratified_sample(y, 20, seed=3))
    assert not np.array_equal(np.sort(idx), np.sort(stratified_sample(y, 20, seed=4)))
    assert len(stratified_sample(y, 500, seed=0)) == 100


def test_the_request_travels_as_environment_variables():
    request = SanityRequest(64, 100, lrs=(0.05, 0.005))
    env = request.to_env()
    assert env == {"TUNESERVE_SANITY_SAMPLES": "64", "TUNESERVE_SANITY_MAX_EPOCHS": "100",
                   "TUNESERVE_SANITY_LRS": "0.05,0.005"}
    assert SanityRequest.from_env(env) == request
    assert SanityRequest.from_env({}) is None
