"""A diagnosis's variant shown and run (issue 17): the trial read carries confidence, rule and the
variant (with the params it would run); POST /trials/{id}/try-advice enqueues it into the same study
as a trial that records its parent and the notch (409 without a variant, 422 outside the space,
naming the field and the rule); the study read counts how often it helped; the CLI shows all of it."""
from __future__ import annotations

import json
import math

import httpx

from tests.helpers import claim, enqueue, make_study, post
from tests.support.databases import columns_of
from tests.test_cli import cli  # noqa: F401  (the fixture: a CliRunner over the app)
from tests.test_enum_checks import fresh_url  # noqa: F401  (the fixture: a database no migration touched)
from tuneserve_service.auth.guard import needs_admin

API = "/api/v1"
PARAMS = {"lr": 0.9, "dropout": 0.1, "optimizer": {"name": "sgd", "momentum": 0.9}}
OVERFIT = ([2.0, 1.5, 1.0, 0.6, 0.3, 0.15], [2.1, 1.7, 1.5, 1.6, 1.9, 2.3])
HEALTHY = ([2.0, 1.2, 0.7, 0.4, 0.3], [2.1, 1.3, 0.8, 0.6, 0.55])
DIVERGES = ([2.3, 2.3, math.nan], [2.3, 2.4, math.nan])


def run(client, curves, value=None, study="s"):
    """Claim the next trial, report the curves, complete it (unless it diverged); its id."""
    lease = claim(client, study)
    tid, tok = lease["trial_id"], lease["lease_token"]
    reports = [{"step": i + 1, "metrics": {"train_loss": t, "val_loss": v}} for i, (t, v) in enumerate(zip(*curves))]
    r = post(client, f"/trials/{tid}/report", {"lease_token": tok, "reports": reports})
    assert r.status_code == 200, r.text
    if not r.json()["should_stop"]:
        r = post(client, f"/trials/{tid}/complete", {"lease_token": tok, **({"value": value} if value is not None else {})})
        assert r.status_code == 200, r.text
    return tid


def test_the_read_shows_the_variant_and_try_advice_enqueues_it(client):
    make_study(client, max_trials=2)
    enqueue(client, PARAMS)
    enqueue(client, {**PARAMS, "lr": 0.01})
    sick = run(client, OVERFIT)
    well = run(client, HEALTHY)

    read = client.get(f"{API}/trials/{sick}").json()
    d = read["diagnosis"]
    assert d["label"] == "overfitting" and d["rule"] == "overfitting.val_rise" and d["confidence"] == 0.5  # a guess (corpus)
    assert d["variant"]["notch"] == "regularise" and d["variant"]["params_change"] == {"dropout": 0.3}
    assert d["variant"]["params"] == {**PARAMS, "dropout": 0.3}  # what it would run
    assert "dropout 0.1 -> 0.3" in d["variant"]["why"]

    r = post(client, f"/trials/{sick}/try-advice")
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["params"] == {**PARAMS, "dropout": 0.3} and new["state"] == "waiting" and new["method"] == "enqueued"
    assert new["parent_trial_id"] == sick and new["advice_notch"] == "regularise"
    assert client.get(f"{API}/trials/{new['id']}").json()["parent_trial_id"] == sick
    study = client.get(f"{API}/studies/s").json()
    assert study["max_trials"] == 3 and study["state"] == "running"  # an explicit extra spend, like a repeat
    assert study["advice_tried"] == {"tried": 0, "helped": 0, "pending": 1}

    r = post(client, f"/trials/{well}/try-advice")
    assert r.status_code == 409 and "no variant" in r.text and "healthy" in r.text
    assert post(client, "/trials/999999/try-advice").status_code == 404


def test_a_variant_outside_the_space_is_a_422_naming_the_field_and_rule(client):
    space = {"lr": {"value": 0.5}, "dropout": {"min": 0.0, "max": 0.7}}
    make_study(client, parameters=space, max_trials=1)
    enqueue(client, {"lr": 0.5, "dropout": 0.1})
    tid = run(client, DIVERGES)
    d = client.get(f"{API}/trials/{tid}").json()["diagnosis"]
    assert d["label"] == "diverged" and d["variant"]["params_change"] == {"lr": 0.1667}
    r = post(client, f"/trials/{tid}/try-advice")
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"][-1] == "lr" and "lr is the constant 0.5" in detail["msg"] and d["rule"] in detail["msg"]


def test_the_study_counts_how_often_the_advice_helped(client):
    make_study(client, max_trials=3)
    enqueue(client, PARAMS)                                   # diverges: no value
    enqueue(client, {**PARAMS, "lr": 0.02, "dropout": 0.2})   # overfits, value 1.0
    enqueue(client, {**PARAMS, "lr": 0.05, "dropout": 0.3})   # overfits, value 0.5
    diverged, over1, over2 = run(client, DIVERGES), run(client, OVERFIT, 1.0), run(client, OVERFIT, 0.5)
    for parent in (diverged, over1, over2):
        assert post(client, f"/trials/{parent}/try-advice").status_code == 201
    assert client.get(f"{API}/studies/s").json()["advice_tried"]["pending"] == 3
    run(client, HEALTHY, 2.0)   # the diverged trial's variant: any value beats none
    run(client, HEALTHY, 0.8)   # beats 1.0
    run(client, HEALTHY, 0.9)   # worse than 0.5
    study = client.get(f"{API}/studies/s").json()
    assert study["advice_tried"] == {"tried": 3, "helped": 2, "pending": 0}
    assert study["state"] == "finished"
    data = client.get("/dashboard/api/studies/s").json()  # what the study page draws from (gates.js)
    assert data["study"]["advice_tried"] == study["advice_tried"]


def test_try_advice_is_for_admins():
    assert needs_admin("POST", "/api/v1/trials/{trial_id}/try-advice")
    assert not needs_admin("POST", "/api/v1/trials/{trial_id}/complete")


def test_the_cli_shows_the_variant_runs_it_and_reports_the_helped_figure(cli, live_server):
    url = live_server.url
    with httpx.Client(base_url=url, timeout=30) as c:
        make_study(c, max_trials=1)
        enqueue(c, PARAMS)
        sick = run(c, OVERFIT, 1.0)
        r = cli("trial", "show", str(sick), "-s", url, "--log-lines", "0")
        assert r.exit_code == 0, r.output
        assert "diagnosis: overfitting (confidence 0.50, rule overfitting.val_rise)" in r.output
        assert "variant to try (regularise): Overfitting: the same run with more regularisation" in r.output
        assert "dropout = 0.3  <- changed" in r.output and "lr = 0.9" in r.output
        r = cli("trial", "try-advice", str(sick), "-s", url)
        assert r.exit_code == 0, r.output
        assert f"the regularise variant of trial {sick}" in r.output and "dropout = 0.3" in r.output
        run(c, HEALTHY, 0.6)
        r = cli("study", "status", "s", "-s", url)
        assert r.exit_code == 0, r.output
        assert "advice tried 1 time, helped 1" in r.output
        r = cli("trial", "try-advice", str(sick + 1), "-s", url)  # the variant itself is healthy
        assert r.exit_code != 0 and "no variant" in r.output
        r = cli("study", "export", "s", "--format", "json", "-s", url)  # the lineage is exported
        assert r.exit_code == 0, r.output
        rows = {row["number"]: row for row in json.loads(r.output)}
        assert (rows[1]["parent_trial_id"], rows[1]["advice_notch"]) == (sick, "regularise")
        assert (rows[0]["parent_trial_id"], rows[0]["advice_notch"]) == (None, None)


def test_migration_0012_adds_the_columns_and_its_downgrade_drops_them(fresh_url):
    from alembic import command

    from tuneserve_service.db.migrate import alembic_config, upgrade

    upgrade(fresh_url, "0011")
    assert not {"parent_trial_id", "advice_notch"} & columns_of(fresh_url, "trials")
    upgrade(fresh_url)
    assert {"parent_trial_id", "advice_notch"} <= columns_of(fresh_url, "trials")
    command.downgrade(alembic_config(fresh_url), "0011")
    assert not {"parent_trial_id", "advice_notch"} & columns_of(fresh_url, "trials")


def test_study_advice_counts_only_confident_labels(client, monkeypatch):
    """The stored diagnoses reach the study's advice with their confidence: four trials labelled
    lr_too_high at 0.5 (a guess) make no lr advice, where four diverged ones (1.0) do
    (tests/test_gates_api.py: test_study_advice_names_the_lr_bound_that_diverges)."""
    make_study(client, max_trials=12, method="random")
    for i in range(12):
        enqueue(client, {**PARAMS, "lr": float(10 ** (-3 + i * 3 / 11))})
    for _ in range(12):
        lease = claim(client)
        lr, tid, tok = lease["params"]["lr"], lease["trial_id"], lease["lease_token"]
        losses = [2.3, 3.6, 4.0, 3.9] if lr > 0.1 else [2.3 / s for s in range(1, 6)]
        post(client, f"/trials/{tid}/report", {"lease_token": tok, "reports": [
            {"step": s, "metrics": {"train_loss": v, "val_loss": v + 0.1, "lr": lr}} for s, v in enumerate(losses, 1)]})
        assert post(client, f"/trials/{tid}/complete", {"lease_token": tok}).status_code == 200
    trials = client.get(f"{API}/studies/s/trials", params={"limit": 100}).json()["items"]
    guesses = [t["diagnosis"] for t in trials if t["params"]["lr"] > 0.1]
    assert len(guesses) == 4 and all(d["label"] == "lr_too_high" and d["confidence"] < 0.6 for d in guesses)
    advice = client.get(f"{API}/studies/s").json()["advice"]
    assert not [a for a in advice if a.get("param") == "lr" or "lr_too_high" in json.dumps(a)], advice
    monkeypatch.setattr("tuneserve_service.diagnosis.study.CONFIDENT", 0.4)  # the control: were they counted...
    advice = client.get(f"{API}/studies/s").json()["advice"]
    assert [a for a in advice if a.get("param") == "lr"], advice  # ...they would name lr's bound
