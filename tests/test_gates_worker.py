"""The gates end to end: a real server (uvicorn on loopback) and real worker processes (python -m
tuneserve_workers.cli, CPU training on digits). A study that asks for the sanity check or the lr range test
gets a special run first; a worker is leased it like a trial, runs it, completes it with its outcome,
and the server's verdict shows on the study before the ordinary trials flow. The sanity gate's test
takes `database_url`, so it runs on SQLite and PostgreSQL (claims that hold trials back behind a gate
are per-backend SQL); the others run on SQLite."""
from __future__ import annotations

import textwrap
from datetime import datetime

import pytest

from tests.helpers import wait_for
from tests.test_worker_daemon import api, server, trials, workers  # noqa: F401 (fixtures)

# Small real training: half of digits, batches of 16; the sanity run takes the widest width (16).
SPACE = {"width": {"values": [8, 16]}, "data_fraction": {"value": 0.5}, "batch_size": {"value": 16},
         "epochs": {"value": 2}, "lr": {"value": 0.05}}


def settled(api, name: str, total: int):
    """The study's ordinary trials all ended (none waiting or running) and `total` of them exist."""
    def check():
        counts = api.get_study(name)["counts"]
        return counts["total"] == total and counts["running"] == 0 and counts["waiting"] == 0
    return check


def by_kind(api, name: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for t in trials(api, name):
        out.setdefault(t["kind"], []).append(t)
    return out


@pytest.mark.one_backend("sqlite")
def test_builtin_trainer_passes_the_sanity_gate_then_trials_run(database_url, api, workers):
    api.create_study(name="sane", method="random", max_trials=2, lease_seconds=10, seed=1,
                     sanity={"samples": 32, "max_epochs": 30}, parameters=SPACE)
    assert api.get_study("sane")["sanity"]["state"] == "pending"
    w = workers("w-sane")
    wait_for(settled(api, "sane", 2), 120, "the sanity run and 2 trials")
    study = api.get_study("sane")
    assert study["sanity"]["state"] == "passed", study["sanity"]
    assert study["gate"] is None and study["counts"]["completed"] == 2
    runs = by_kind(api, "sane")
    (check,) = runs["sanity"]
    assert check["number"] == -1 and check["state"] == "completed" and check["worker_id"] == "w-sane"
    full = api.get_trial(check["id"])
    assert full["params"]["width"] == 16 and full["reports"][0]["metrics"]["num_classes"] == 10
    assert {"initial_loss", "train_loss", "train_acc"} <= set(full["reports"][0]["metrics"])
    assert len(runs["trial"]) == 2 and all(t["state"] == "completed" for t in runs["trial"])
    ended = datetime.fromisoformat(check["finished_at"])
    assert all(datetime.fromisoformat(t["started_at"]) >= ended for t in runs["trial"])  # held back until then
    assert f"event=claimed worker=w-sane trial={check['id']} study=sane number=-1" in w.log
    assert f"event=sanity_done worker=w-sane trial={check['id']} supported=True reached=1" in w.log
    assert w.stop() == 0


def test_user_objective_without_sanity_support_skips_the_gate_and_the_study_proceeds(api, workers, tmp_path):
    objective = tmp_path / "plain.py"
    objective.write_text(textwrap.dedent("""
        def objective(params, context):
            for step in range(1, 3):
                context.report(step, loss=params["x"] / step)
            return {"loss": params["x"] / 2}
    """))
    api.create_study(name="plain", method="grid", metric={"name": "loss", "goal": "minimize"},
                     sanity=True, parameters={"x": {"values": [1.0, 2.0]}})
    w = workers("w-plain", "--objective", f"{objective}:objective")
    wait_for(settled(api, "plain", 2), 60, "the skipped gate and 2 trials")
    study = api.get_study("plain")
    assert study["sanity"]["state"] == "skipped" and study["state"] == "finished"  # never paused
    assert study["counts"]["completed"] == 2 and study["best_trial"]["value"] == 0.5
    warning = ("sanity check skipped: objective plain:objective does not support the sanity check (decorate it "
               "with tuneserve_workers.training.objective.supports_sanity and follow context.sanity); the study runs without it")
    assert study["sanity"]["verdict"] == warning
    assert study["advice"][0] == {"kind": "sanity_skipped", "message": warning, "evidence": {}, "param": None}
    (check,) = by_kind(api, "plain")["sanity"]
    assert check["state"] == "completed" and api.get_trial(check["id"])["reports"] == []  # nothing ran
    assert f"event=sanity_done worker=w-plain trial={check['id']} supported=False message=" in w.log
    assert w.stop() == 0


@pytest.mark.slow
def test_builtin_trainer_runs_the_lr_range_test_and_the_study_gets_a_suggestion(api, workers):
    api.create_study(name="ramp", method="random", max_trials=1, lease_seconds=10, seed=1,
                     lr_range_test={"start_lr": 1e-4, "end_lr": 1e3, "steps": 60},
                     parameters={**SPACE, "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 0.5}})
    assert api.get_study("ramp")["lr_range"]["state"] == "pending"
    w = workers("w-ramp")
    wait_for(settled(api, "ramp", 1), 120, "the range test and 1 trial")
    lr_range = api.get_study("ramp")["lr_range"]
    assert lr_range["state"] == "done", lr_range
    curve = lr_range["curve"]
    assert 10 <= len(curve["lr"]) == len(curve["loss"]) <= 60 and curve["lr"][0] == 1e-4
    suggestion = lr_range["suggestion"]
    assert suggestion["low"] < suggestion["lr"] < suggestion["high"]
    assert curve["lr"][0] < suggestion["lr"] < curve["lr"][-1]
    (ramp,) = by_kind(api, "ramp")["lr_range"]
    assert ramp["state"] == "completed" and ramp["number"] == -1
    assert f"event=lr_range_done worker=w-ramp trial={ramp['id']} supported=True points={len(curve['lr'])}" in w.log
    assert w.stop() == 0


# A sweep program that takes part in both gates through its environment (workers/README.md).
GATED_PROGRAM = """
    import math, os
    from tuneserve import report
    if "TUNESERVE_SANITY_SAMPLES" in os.environ:
        assert os.environ["TUNESERVE_SANITY_SAMPLES"] == "32"
        for epoch, (loss, acc) in enumerate([(2.3, 0.12), (1.2, 0.6), (0.4, 0.9), (0.05, 1.0)], start=1):
            extra = {"initial_loss": 2.303, "num_classes": 10} if epoch == 1 else {}
            report(epoch, train_loss=loss, train_acc=acc, **extra)
        report(4, sanity_done=1)
    elif "TUNESERVE_LR_RANGE_START_LR" in os.environ:
        start, end = float(os.environ["TUNESERVE_LR_RANGE_START_LR"]), float(os.environ["TUNESERVE_LR_RANGE_END_LR"])
        steps = int(os.environ["TUNESERVE_LR_RANGE_STEPS"])
        for i in range(steps):
            lr = start * (end / start) ** (i / (steps - 1))
            x = math.log10(lr)  # falls from 2.3 towards 0.3 around lr 1e-2, then blows up past 1
            loss = 0.3 + 2.0 / (1 + math.exp(4 * (x + 2.5))) + (math.exp(3 * x) if x > 0 else 0.0)
            if not report(i, lr=lr, loss=loss) or loss > 20:
                break
    else:
        for epoch in (1, 2):
            report(epoch, val_loss=1.0 / epoch)
"""


def test_a_program_that_opts_in_passes_the_sanity_gate_and_runs_the_range_test(api, workers, tmp_path):
    program = tmp_path / "gated.py"
    program.write_text(textwrap.dedent(GATED_PROGRAM))
    api.create_study(name="prog", program=str(program), method="random", max_trials=1, lease_seconds=10,
                     metric={"name": "val_loss", "goal": "minimize"}, objective_features=["lr_range_test"],
                     sanity={"samples": 32, "max_epochs": 10},
                     lr_range_test={"start_lr": 1e-5, "end_lr": 10.0, "steps": 100},
                     parameters={"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}})
    w = workers("w-prog", "--study", "prog", "--runs-dir", str(tmp_path / "runs"))
    wait_for(settled(api, "prog", 1), 120, "both gates and 1 trial")
    study = api.get_study("prog")
    assert study["sanity"]["state"] == "passed", study["sanity"]
    assert study["lr_range"]["state"] == "done", study["lr_range"]
    curve = study["lr_range"]["curve"]
    assert len(curve["lr"]) == len(curve["loss"]) and curve["lr"][0] == 1e-5 and curve["loss"][-1] > 20
    assert 1e-4 < study["lr_range"]["suggestion"]["lr"] < 1.0
    assert study["counts"]["completed"] == 1 and study["best_trial"]["value"] == 0.5
    runs = by_kind(api, "prog")
    assert [t["state"] for t in runs["sanity"] + runs["lr_range"]] == ["completed", "completed"]
    assert "event=sanity_done worker=w-prog" in w.log and "event=lr_range_done worker=w-prog" in w.log
    assert w.stop() == 0


# Planted runs of the built-in trainer, through a real worker and the server's diagnosis on ending.
PLANTED = [
    ("lr 0.05", {"dataset": "digits", "lr": 0.05, "normalize": True}, "healthy", None),
    ("lr 10", {"dataset": "digits", "lr": 10.0, "normalize": True}, "lr_too_high", None),
    ("lr 1e-6", {"dataset": "digits", "lr": 1e-6, "normalize": True}, "lr_too_low", None),
    ("NaN pixels", {"dataset": "digits:nan=0.01", "lr": 0.05, "normalize": True}, "diverged", "bad_data"),
    ("inputs x1000, raw", {"dataset": "digits:scale=1000", "lr": 0.05, "normalize": False}, "diverged", "bad_scale"),
]


@pytest.mark.slow
def test_planted_runs_are_diagnosed_through_the_server(api, workers):
    space = {"dataset": {"values": ["digits", "digits:nan=0.01", "digits:scale=1000"]},
             "lr": {"distribution": "log_uniform_values", "min": 1e-7, "max": 20},
             "normalize": {"values": [True, False]}, "epochs": {"value": 6}, "width": {"value": 16}}
    api.create_study(name="planted", objective="builtin:cnn", max_trials=len(PLANTED), parameters=space)
    for _, params, _, _ in PLANTED:
        api.enqueue("planted", {**params, "epochs": 6, "width": 16})
    w = workers("w-planted")
    wait_for(settled(api, "planted", len(PLANTED)), 180, "the planted runs")
    got = [(t["diagnosis"]["label"], t["diagnosis"]["cause"]) for t in trials(api, "planted")]
    assert got == [(label, cause) for _, _, label, cause in PLANTED]
    advice = [a["kind"] for a in api.get_study("planted")["advice"]]
    assert advice == ["pipeline", "pipeline"]  # NaN before any update; a first loss far above ln(C)
    assert w.stop() == 0
