"""The gates through the server: the sanity check and the lr range test as special runs that hold a
study's ordinary trials back, their verdicts and suggestions, the narrowing, and every trial's
diagnosis and the study's advice (issues 11 and 12). A client plays the worker; tests/
test_gates_worker.py runs real workers."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from tests.helpers import claim, make_study

API = "/api/v1"


def post(client, path, body=None):
    return client.post(API + path, content=json.dumps(body if body is not None else {}),
                       headers={"content-type": "application/json"})


def study(client, name="s"):
    r = client.get(f"{API}/studies/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def report_epochs(client, lease, losses, accs, extra_first=None):
    for epoch, (loss, acc) in enumerate(zip(losses, accs), start=1):
        metrics = {"train_loss": loss, "train_acc": acc, **(extra_first if epoch == 1 and extra_first else {})}
        r = post(client, f"/trials/{lease['trial_id']}/report",
                 {"lease_token": lease["lease_token"], "step": epoch, "metrics": metrics})
        assert r.status_code == 200, r.text


def complete_special(client, lease, **outcome):
    r = post(client, f"/trials/{lease['trial_id']}/complete",
             {"lease_token": lease["lease_token"], "outcome": {"supported": True, **outcome}})
    assert r.status_code == 200, r.text
    return r.json()


FITS = dict(losses=[2.3, 1.2, 0.4, 0.05, 0.01], accs=[0.12, 0.6, 0.9, 1.0, 1.0])
STUCK = dict(losses=[2.31, 2.30, 2.29, 2.29, 2.28], accs=[0.10, 0.12, 0.12, 0.11, 0.12])
TEN_CLASSES = {"initial_loss": 2.303, "num_classes": 10}


# ---- the sanity gate ---------------------------------------------------------------------------

def test_sanity_gate_holds_trials_back_until_it_passes(client):
    created = make_study(client, sanity={"samples": 32, "max_epochs": 5})
    assert created["gate"] == "sanity"
    assert created["sanity"]["state"] == "pending" and created["sanity"]["config"]["samples"] == 32
    assert created["sanity"]["trial"] == -1

    lease = claim(client)
    assert lease["kind"] == "sanity" and lease["number"] == -1
    assert lease["sanity"]["samples"] == 32 and lease["sanity"]["max_epochs"] == 5
    assert lease["sanity"]["lrs"] == [0.01]  # the geometric middle of lr's 1e-4..1
    assert lease["params"]["dropout"] == 0.0  # no regularisation in a sanity run
    assert claim(client, worker="w2") is None  # no ordinary trial while the gate is open
    assert post(client, "/studies/s/ask", {"count": 2}).json() == []
    assert study(client)["sanity"]["state"] == "running"

    report_epochs(client, lease, FITS["losses"], FITS["accs"], TEN_CLASSES)
    done = complete_special(client, lease)
    assert done["trial"]["kind"] == "sanity" and done["trial"]["value"] is None
    after = study(client)
    assert after["gate"] is None and after["state"] == "running"
    assert after["sanity"]["state"] == "passed"
    assert "can fit a tiny subset" in after["sanity"]["verdict"]
    assert after["counts"]["total"] == 0 and after["trials_created"] == 0  # not a trial of the search

    trial = claim(client, worker="w2")
    assert trial["kind"] == "trial" and trial["number"] == 0
    listed = client.get(f"{API}/studies/s/trials").json()["items"]
    assert [(t["number"], t["kind"]) for t in listed][:2] == [(-1, "sanity"), (0, "trial")]
    assert all(t["kind"] == "trial" for t in listed[1:])  # the engine draws ahead: ordinary trials


def test_failed_sanity_pauses_the_study_and_resume_overrides(client):
    make_study(client, sanity=True)
    lease = claim(client)
    report_epochs(client, lease, STUCK["losses"], STUCK["accs"], TEN_CLASSES)
    complete_special(client, lease)
    after = study(client)
    assert after["state"] == "paused" and after["gate"] is None
    assert after["sanity"]["state"] == "failed"
    assert after["sanity"]["verdict"].startswith("after 5 epochs on 64 samples the training loss went from 2.3 to 2.28, accuracy 12%")
    assert "cannot fit even a tiny subset" in after["sanity"]["verdict"]
    assert [a["kind"] for a in after["advice"]] == ["sanity_failed"]
    assert claim(client, worker="w2") is None

    resumed = post(client, "/studies/s/resume").json()
    assert resumed["state"] == "running" and resumed["sanity"]["overridden"] is True
    assert resumed["sanity"]["state"] == "failed"  # the verdict is kept
    assert [a["kind"] for a in resumed["advice"]] == ["sanity_overridden"]
    assert claim(client, worker="w2")["number"] == 0


def test_scaled_inputs_fail_the_initial_loss_check(client):
    make_study(client, sanity=True)
    lease = claim(client)
    report_epochs(client, lease, [180.0, 40.0, 3.0, 0.5, 0.01], [0.1, 0.5, 0.8, 1.0, 1.0],
                  {"initial_loss": 180.0, "num_classes": 10})
    complete_special(client, lease)
    sanity = study(client)["sanity"]
    assert sanity["state"] == "failed"
    assert "normalise the inputs" in sanity["verdict"]
    assert {c["name"]: c["ok"] for c in sanity["checks"]}["initial_loss"] is False


def test_an_objective_without_sanity_support_skips_the_gate_with_a_warning(client):
    make_study(client, sanity=True)
    lease = claim(client)
    r = post(client, f"/trials/{lease['trial_id']}/complete",
             {"lease_token": lease["lease_token"],
              "outcome": {"supported": False, "message": "objective m:f does not support the sanity check"}})
    assert r.status_code == 200, r.text
    after = study(client)
    assert after["sanity"]["state"] == "skipped" and after["state"] == "running"
    assert after["advice"][0]["kind"] == "sanity_skipped"
    assert "objective m:f does not support the sanity check" in after["advice"][0]["message"]
    assert claim(client, worker="w2")["number"] == 0


def test_a_sanity_run_that_errors_fails_the_gate(client):
    make_study(client, sanity=True)
    lease = claim(client)
    r = post(client, f"/trials/{lease['trial_id']}/fail",
             {"lease_token": lease["lease_token"], "kind": "error", "reason": "Traceback\nValueError: bad shape"})
    assert r.status_code == 200, r.text
    after = study(client)
    assert after["sanity"]["state"] == "failed" and after["state"] == "paused"
    assert "the sanity run failed (error)" in after["sanity"]["verdict"]
    assert "ValueError: bad shape" in after["sanity"]["verdict"]


def test_sanity_on_demand_and_its_conflicts(client):
    make_study(client)
    first = claim(client)  # an ordinary trial already running finishes
    r = post(client, "/studies/s/sanity", {"samples": 16})
    assert r.status_code == 202, r.text
    assert r.json()["gate"] == "sanity" and r.json()["sanity"]["config"]["samples"] == 16
    again = post(client, "/studies/s/sanity")
    assert again.status_code == 409 and "sanity check is pending" in again.json()["detail"]
    lease = claim(client, worker="w2")
    assert lease["kind"] == "sanity" and lease["number"] == -1
    r = post(client, f"/trials/{first['trial_id']}/complete", {"lease_token": first["lease_token"], "value": 1.0})
    assert r.status_code == 200
    post(client, "/studies/s/stop")
    stopped = post(client, "/studies/s/sanity")
    assert stopped.status_code == 409 and stopped.json()["code"] == "invalid_study_state"


def test_a_paused_sanity_run_runs_again_on_resume(client):
    make_study(client, sanity=True)
    lease = claim(client)
    post(client, "/studies/s/pause")
    answer = post(client, f"/trials/{lease['trial_id']}/report",
                  {"lease_token": lease["lease_token"], "step": 1, "metrics": {"train_loss": 2.3}}).json()
    assert answer["should_stop"] is True
    r = post(client, f"/trials/{lease['trial_id']}/prune", {"lease_token": lease["lease_token"], "reason": "study paused"})
    assert r.status_code == 200
    paused = study(client)
    assert paused["gate"] == "sanity" and paused["sanity"]["state"] == "pending" and paused["sanity"]["trial"] == -2
    assert claim(client) is None  # paused
    post(client, "/studies/s/resume")
    again = claim(client)
    assert again["kind"] == "sanity" and again["number"] == -2


def test_a_sanity_run_whose_lease_runs_out_of_retries_fails_the_gate(client):
    from tuneserve_service.db.engine import Database
    from tuneserve_service.domain.core.leases import reap_expired

    make_study(client, sanity=True, lease_seconds=1.0, max_retries=0)
    claim(client)
    time.sleep(1.3)
    db = Database(client.app.state.settings.database_url)
    try:
        reap_expired(db)  # or the server's own sweep got there first
    finally:
        db.dispose()
    after = study(client)
    assert after["sanity"]["state"] == "failed" and "lease_expired" in after["sanity"]["verdict"]
    assert after["state"] == "paused" and after["gate"] is None


def test_bad_gate_input_is_a_422_naming_the_field(client):
    r = post(client, "/studies", {**_body(), "sanity": {"samples": "64"}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "sanity", "samples"]
    r = post(client, "/studies", {**_body(), "sanity": {"epochs": 3}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "sanity", "epochs"]
    r = post(client, "/studies", {**_body(), "lr_range_test": {"start_lr": 1.0, "end_lr": 0.1}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "lr_range_test", "end_lr"]
    r = post(client, "/studies", {**_body(), "lr_range_test": {"steps": 5}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "lr_range_test", "steps"]
    r = post(client, "/studies", {**_body(), "objective": "mymod:train", "lr_range_test": True})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "lr_range_test"]
    assert "does not support the lr range test" in r.json()["detail"][0]["msg"]
    assert client.get(f"{API}/studies").json() == []  # nothing stored
    make_study(client)
    lease = claim(client)
    r = post(client, f"/trials/{lease['trial_id']}/complete",
             {"lease_token": lease["lease_token"], "value": 1.0, "outcome": {"supported": True}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "outcome"]
    assert client.get(f"{API}/trials/{lease['trial_id']}").json()["state"] == "running"  # unchanged
    r = post(client, "/studies/s/sanity", {"samples": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "samples"]
    r = post(client, "/studies/s/narrowing", {"low": 0.1, "high": 0.01})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "low"]
    r = post(client, "/studies/s/narrowing", {})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "low"]
    assert study(client)["parameters"]["lr"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}


def _body(**overrides):
    from tests.helpers import study_body
    return study_body("s", **overrides)


# ---- the lr range test --------------------------------------------------------------------------

def range_curve(steps=120, best=0.03):
    """A range test's raw curve: flat at low lr, falling fastest a little below `best`, blowing up above."""
    lrs = np.geomspace(1e-6, 10.0, steps)
    x = np.log10(lrs / best)
    loss = 2.3 - 1.8 / (1 + np.exp(-3 * (x + 1.0))) + np.where(x > 0, 4 * x ** 2, 0)
    return [float(v) for v in lrs], [float(v) for v in loss]


def test_range_test_suggests_narrows_and_restores(client):
    created = make_study(client, lr_range_test={"apply": True, "steps": 120})
    assert created["gate"] == "lr_range" and created["lr_range"]["state"] == "pending"
    lease = claim(client)
    assert lease["kind"] == "lr_range" and lease["lr_range"] == {"start_lr": 1e-7, "end_lr": 10.0, "steps": 120}
    assert claim(client, worker="w2") is None
    lrs, losses = range_curve()
    complete_special(client, lease, curve={"lr": lrs, "loss": losses})
    after = study(client)
    lr = after["lr_range"]
    assert lr["state"] == "done" and after["gate"] is None
    s = lr["suggestion"]
    assert s["low"] < s["lr"] < s["high"] and 0.002 < s["lr"] < 0.03
    assert lr["parameter"] == "lr" and lr["narrowing"]["path"] == "lr"
    assert lr["narrowing"]["before"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}
    narrowed = after["parameters"]["lr"]
    assert narrowed["min"] == pytest.approx(s["low"], rel=1e-9) and narrowed["max"] == pytest.approx(s["high"], rel=1e-9)
    for n in range(3):
        t = claim(client, worker=f"x{n}")
        assert s["low"] <= t["params"]["lr"] <= s["high"]
    restored = client.delete(f"{API}/studies/s/narrowing")
    assert restored.status_code == 200
    assert restored.json()["parameters"]["lr"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}
    assert restored.json()["lr_range"]["narrowing"] is None
    assert client.delete(f"{API}/studies/s/narrowing").status_code == 409
    # Narrow by hand, then by the suggestion: the record keeps the original spec to restore.
    assert post(client, "/studies/s/narrowing", {"low": 0.001, "high": 0.1}).status_code == 200
    again = post(client, "/studies/s/narrowing").json()
    assert again["parameters"]["lr"]["min"] == pytest.approx(s["low"], rel=1e-9)
    assert again["lr_range"]["narrowing"]["before"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}


def test_narrowing_redraws_the_trials_drawn_ahead_from_the_old_range(client):
    make_study(client, max_trials=10, method="random")
    first = claim(client)  # random search draws ahead: the rest of the budget waits, already drawn
    waiting = client.get(f"{API}/studies/s/trials", params={"state": "waiting"}).json()["items"]
    assert len(waiting) == 7 and any(not 0.01 <= t["params"]["lr"] <= 0.02 for t in waiting)
    narrowed = post(client, "/studies/s/narrowing", {"low": 0.01, "high": 0.02}).json()
    assert narrowed["lr_range"]["narrowing"]["redrawn"] == 7 and narrowed["lr_range"]["state"] == "not_run"
    leases = [claim(client, worker=f"n{i}") for i in range(9)]
    assert all(0.01 <= lease["params"]["lr"] <= 0.02 for lease in leases)
    assert first["params"]["lr"] == client.get(f"{API}/trials/{first['trial_id']}").json()["params"]["lr"]  # running: kept
    assert sorted(lease["number"] for lease in leases) == list(range(1, 10))  # no number lost or reused


def test_range_test_without_apply_advises_and_a_flat_curve_fails(client):
    make_study(client, lr_range_test=True)
    lease = claim(client)
    lrs, losses = range_curve()
    complete_special(client, lease, curve={"lr": lrs, "loss": losses})
    after = study(client)
    assert after["parameters"]["lr"]["min"] == 1e-4  # not applied
    assert [a["kind"] for a in after["advice"]] == ["lr_range"]
    assert "tuneserve study narrow s" in after["advice"][0]["message"]
    # On demand again, with a curve whose loss never falls.
    assert post(client, "/studies/s/lr-range-test", {"steps": 50}).status_code == 202
    lease = claim(client)
    rising = [2.3 + 0.01 * i for i in range(50)]  # learned nothing at any lr
    complete_special(client, lease, curve={"lr": list(np.geomspace(1e-7, 10, 50)), "loss": rising})
    lr = study(client)["lr_range"]
    assert lr["state"] == "failed" and "the space is unchanged" in lr["message"]


def test_range_test_refused_for_a_user_objective_unless_it_opts_in(client):
    make_study(client, "u", objective="mymod:train")
    r = post(client, "/studies/u/lr-range-test")
    assert r.status_code == 409 and "does not support the lr range test" in r.json()["detail"]
    make_study(client, "v", objective="mymod:train", objective_features=["lr_range_test"])
    assert post(client, "/studies/v/lr-range-test").status_code == 202
    assert post(client, "/studies/v/lr-range-test").status_code == 409  # one at a time


def test_an_unsupported_range_test_fails_and_releases_the_study(client):
    make_study(client, lr_range_test=True)
    lease = claim(client)
    r = post(client, f"/trials/{lease['trial_id']}/complete",
             {"lease_token": lease["lease_token"], "outcome": {"supported": False, "message": "no ramp here"}})
    assert r.status_code == 200
    after = study(client)
    assert after["lr_range"]["state"] == "failed" and after["lr_range"]["message"].startswith("no ramp here")
    assert claim(client, worker="w2")["kind"] == "trial"


def test_sanity_then_range_test_then_trials(client):
    make_study(client, sanity=True, lr_range_test=True)
    first = claim(client)
    assert first["kind"] == "sanity"
    report_epochs(client, first, FITS["losses"], FITS["accs"], TEN_CLASSES)
    complete_special(client, first)
    second = claim(client)
    assert second["kind"] == "lr_range" and second["number"] == -2
    lrs, losses = range_curve()
    complete_special(client, second, curve={"lr": lrs, "loss": losses})
    third = claim(client)
    assert third["kind"] == "trial" and third["number"] == 0


# ---- diagnoses and advice ----------------------------------------------------------------------

def test_every_trial_gets_a_diagnosis_and_running_ones_a_provisional_one(client, monkeypatch):
    from tuneserve_service.domain.features import diagnoses

    make_study(client, max_trials=3)
    lease = claim(client)
    tid, tok = lease["trial_id"], lease["lease_token"]
    answers = []
    for epoch, (tl, vl) in enumerate([(2.0, 2.1), (1.2, 1.3), (0.7, 0.8), (0.4, 0.6), (0.3, 0.55)], start=1):
        answers.append(post(client, f"/trials/{tid}/report",
                            {"lease_token": tok, "step": epoch, "metrics": {"train_loss": tl, "val_loss": vl}}).json())
    assert answers[-1]["diagnosis"] is None  # refreshed by heartbeats, not on the report path
    beat = post(client, f"/trials/{tid}/heartbeat", {"lease_token": tok}).json()
    assert beat["diagnosis"]["provisional"] is True and beat["diagnosis"]["step"] == 5
    assert beat["diagnosis"]["label"] == "healthy"
    view = client.get(f"{API}/trials/{tid}").json()["diagnosis"]
    assert view == {k: beat["diagnosis"][k] for k in view}
    post(client, f"/trials/{tid}/report", {"lease_token": tok, "step": 6, "metrics": {"train_loss": 0.25, "val_loss": 0.9}})
    assert client.get(f"{API}/trials/{tid}").json()["diagnosis"]["evidence"] != view["evidence"]  # the view is fresh
    same = post(client, f"/trials/{tid}/heartbeat", {"lease_token": tok}).json()["diagnosis"]
    assert same == beat["diagnosis"]  # refreshed at most every REFRESH_SECONDS
    monkeypatch.setattr(diagnoses, "REFRESH_SECONDS", 0.0)
    again = post(client, f"/trials/{tid}/heartbeat", {"lease_token": tok}).json()["diagnosis"]
    assert again["step"] == 6 and again["evidence"] != beat["diagnosis"]["evidence"]
    done = post(client, f"/trials/{tid}/complete", {"lease_token": tok, "value": 0.55}).json()
    assert done["trial"]["diagnosis"]["label"] == "healthy" and done["trial"]["diagnosis"]["provisional"] is False

    nan = claim(client)
    r = post(client, f"/trials/{nan['trial_id']}/report", {"lease_token": nan["lease_token"], "reports": [
        {"step": 1, "metrics": {"train_loss": 2.3, "val_loss": 2.3}},
        {"step": 2, "metrics": {"train_loss": 40.0, "val_loss": 60.0}},
        {"step": 3, "metrics": {"train_loss": math.inf, "val_loss": 80.0}}]})
    assert r.json()["should_stop"] is True and r.json()["diagnosis"]["label"] == "diverged"
    stored = client.get(f"{API}/trials/{nan['trial_id']}").json()
    assert stored["state"] == "diverged" and stored["diagnosis"]["label"] == "diverged"
    assert stored["diagnosis"]["provisional"] is False and stored["diagnosis"]["advice"]


def test_study_advice_names_the_lr_bound_that_diverges(client):
    make_study(client, max_trials=12, method="random")
    for i in range(12):
        r = post(client, "/studies/s/enqueue", {"params": {"lr": float(10 ** (-3 + i * 3 / 11)), "dropout": 0.1,
                                                           "optimizer": {"name": "sgd"}}})
        assert r.status_code == 201
    for i in range(12):
        lease = claim(client)
        lr = lease["params"]["lr"]
        tid, tok = lease["trial_id"], lease["lease_token"]
        if lr > 0.1:
            post(client, f"/trials/{tid}/report", {"lease_token": tok, "reports": [
                {"step": 1, "metrics": {"train_loss": 2.3, "val_loss": 2.3, "lr": lr}},
                {"step": 2, "metrics": {"train_loss": 9.0, "val_loss": 9.5, "lr": lr}},
                {"step": 3, "metrics": {"train_loss": math.nan, "val_loss": math.nan, "lr": lr}}]})
        else:
            post(client, f"/trials/{tid}/report", {"lease_token": tok, "reports": [
                {"step": s, "metrics": {"train_loss": 2.3 / s, "val_loss": 2.4 / s, "lr": lr}} for s in range(1, 6)]})
            post(client, f"/trials/{tid}/complete", {"lease_token": tok, "value": 2.4 / 5})
    after = study(client)
    kinds = [a["kind"] for a in after["advice"]]
    assert kinds[0] == "range_diverges"
    first = after["advice"][0]
    assert first["param"] == "lr" and "diverged" in first["message"]
    assert after["counts"]["diverged"] == 4
    assert first["evidence"]["count"] == 4 and first["evidence"]["suggested_bound"] < 0.16
