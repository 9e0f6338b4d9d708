"""Studies over REST: create (JSON and W&B YAML), validation errors, lifecycle, enqueue, reads."""
from __future__ import annotations

import pytest

from tests.helpers import claim, make_study, study_body

WANDB_SWEEP = """
program: train.py
method: random
project: cnn
entity: me
description: pasted from W&B
metric:
  name: val_acc
  goal: maximize
run_cap: 7
early_terminate:
  type: hyperband
  min_iter: 2
  eta: 3
parameters:
  lr:
    distribution: log_uniform_values
    min: 0.0001
    max: 0.1
  batch_size:
    values: [32, 64, 128]
  epochs:
    value: 5
  arch:
    parameters:
      width: {min: 8, max: 64}
      dropout: {distribution: uniform, min: 0.1, max: 0.5}
command: [python, train.py]
"""


def test_create_and_read_study(client):
    created = make_study(client, "alpha")
    assert created["state"] == "running"
    assert created["counts"]["total"] == 0 and created["best_trial"] is None
    got = client.get("/api/v1/studies/alpha").json()
    assert got["parameters"] == study_body()["parameters"]
    assert [s["name"] for s in client.get("/api/v1/studies").json()] == ["alpha"]


def test_wandb_sweep_yaml_is_a_study(client):
    r = client.post("/api/v1/studies", content=WANDB_SWEEP.replace("program", "name: sweep1\nprogram"),
                    headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    study = r.json()
    assert study["max_trials"] == 7
    assert study["metric"] == {"name": "val_acc", "goal": "maximize", "target": None, "impute": None,
                               "impute_while_running": None}
    assert study["display_name"] == "sweep1" and study["program"] == "train.py"
    assert study["command"] == ["python", "train.py"] and study["project"] == "cnn"
    assert study["pruner"]["type"] == "hyperband"
    assert study["objective"] == "program" and study["command"] == ["python", "train.py"]
    # a CNN worker never runs a program's trials; a program worker (or a client that says nothing) does
    cnn = client.post("/api/v1/trials/claim", json={"worker_id": "w0", "study": "sweep1", "objective": "builtin:cnn"})
    assert cnn.status_code == 204
    r = client.post("/api/v1/trials/claim", json={"worker_id": "w1", "study": "sweep1", "objective": "program"})
    p = r.json()["params"]
    assert p["epochs"] == 5 and p["batch_size"] in (32, 64, 128)
    assert 8 <= p["arch"]["width"] <= 64 and isinstance(p["arch"]["width"], int)
    assert 1e-4 <= p["lr"] <= 0.1


@pytest.mark.parametrize(
    "overrides, loc, words",
    [
        ({"method": "hyperband"}, ["body", "method"], "'random', 'grid', 'bayes', 'tpe', 'tpe_hyperopt', 'gp' or 'botorch'"),
        ({"method": "custom"}, ["body", "method"], "W&B Launch custom scheduler"),
        ({"method": "bayes", "metric": None}, ["body", "metric"], "bayes needs a `metric`"),
        ({"parameters": {"lr": {"min": 1.0, "max": 0.1}}}, ["body", "parameters", "lr"], "must be < max"),
        ({"parameters": {"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}},
         ["body", "parameters", "lr"], "> 0"),
        ({"parameters": {"a": {"parameters": {"b": {"values": []}}}}}, ["body", "parameters", "a", "b"], "empty"),
        ({"method": "grid", "parameters": {"lr": {"values": [1, 2], "probabilities": [0.5, 0.5]}}},
         ["body", "parameters", "lr"], "grid search cannot weight values"),
        ({"parameters": {"bad name": {"value": 1}}}, ["body", "parameters", "bad name"], "not a valid parameter name"),
        ({"parameters": {"a.b": {"min": 2, "max": 1}}}, ["body", "parameters", "a.b"], "must be < max"),
        ({"parameters": {"lr": {"distribution": "log_uniform", "min": -5, "max": 0}}}, ["body", "parameters", "lr"],
         "use log_uniform_values"),
        ({"method": "grid", "parameters": {"lr": {"min": 0.1, "max": 0.2}}}, ["body", "method"], "lr"),
        ({"max_trials": 0}, ["body", "max_trials"], "greater than or equal"),
        ({"metric": {"name": "x", "goal": "up"}}, ["body", "metric", "goal"], "minimize"),
        ({"early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 1}}, ["body", "early_terminate"], "eta"),
        ({"early_terminate": {"type": "hyperband", "min_iter": 2}, "metric": None}, ["body", "metric"],
         "early_terminate ranks runs"),
        ({"early_terminate": {"type": "asha"}}, ["body", "early_terminate"], "go in `pruner`"),
        ({"metric": {"name": "x", "target": "low"}}, ["body", "metric", "target"], "must be a number"),
        ({"metric": {"goal": "maximize"}}, ["body", "metric", "name"], "Field required"),
        ({"metric": {"name": "x", "impute": "mean"}}, ["body", "metric", "impute"], "'latest', 'best' or 'worst'"),
        ({"metrics": [{"name": "val_loss"}, {"name": "b"}]}, ["body", "metrics"], "both `metric` and in `metrics`"),
        ({"scheduler": {"engine": "optuna"}}, ["body", "scheduler"], "'optuna' is not supported"),
        ({"scheduler": {"engine": "wandb"}, "early_terminate": {"type": "hyperband", "min_iter": 2}},
         ["body", "early_terminate"], "cannot be used together with `scheduler`"),
        ({"run_cap": 5.5, "max_trials": None}, ["body", "run_cap"], "must be an integer"),
        ({"run_cap": 5, "max_trials": 6}, ["body", "run_cap"], "not both"),
        ({"program": ["train.py"]}, ["body", "program"], "valid string"),
        ({"kind": "job"}, ["body", "kind"], "'sweep'"),
        ({"warm_start_from": "nope"}, ["body", "warm_start_from"], "not found"),
        ({"bogus": 1}, ["body", "bogus"], "unknown key 'bogus': a study document (W&B's sweep keys and "
                                          "tuneserve's) takes only: name, description, method, metric"),
        ({"metric": {"name": "x", "bogus": 1}}, ["body", "metric", "bogus"], "metric takes only: name, goal"),
    ],
)
def test_invalid_study_is_422_naming_field_and_stores_nothing(client, overrides, loc, words):
    body = {k: v for k, v in study_body("bad", **overrides).items() if v is not None}
    r = client.post("/api/v1/studies", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["detail"][0]
    assert err["loc"] == loc
    assert words in err["msg"]
    assert client.get("/api/v1/studies").json() == []


@pytest.mark.parametrize("body, ctype", [(b"{not json", "application/json"), (b"a: [1", "application/yaml"),
                                          (b"[1, 2]", "application/json")])
def test_unparseable_body_is_422(client, body, ctype):
    r = client.post("/api/v1/studies", content=body, headers={"content-type": ctype})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body"]


def test_duplicate_name_is_409_and_keeps_the_first(client):
    make_study(client, "dup", max_trials=3)
    r = client.post("/api/v1/studies", json=study_body("dup", max_trials=99))
    assert r.status_code == 409
    assert client.get("/api/v1/studies/dup").json()["max_trials"] == 3


def test_unknown_study_is_404(client):
    for method, path in [("get", "/api/v1/studies/nope"), ("post", "/api/v1/studies/nope/pause"),
                         ("delete", "/api/v1/studies/nope"), ("get", "/api/v1/studies/nope/trials")]:
        assert client.request(method, path).status_code == 404, path
    assert client.post("/api/v1/trials/claim", json={"study": "nope"}).status_code == 404


def test_lifecycle_pause_resume_stop(client):
    make_study(client)
    lease = claim(client)
    assert client.post("/api/v1/studies/s/pause").json()["state"] == "paused"
    assert claim(client) is None  # a paused study hands out nothing
    hb = client.post(f"/api/v1/trials/{lease['trial_id']}/heartbeat", json={"lease_token": lease["lease_token"]})
    assert hb.json()["should_stop"] is True and "paused" in hb.json()["reason"]
    assert client.post("/api/v1/studies/s/pause").status_code == 409
    assert client.post("/api/v1/studies/s/resume").json()["state"] == "running"
    assert claim(client) is not None
    assert client.post("/api/v1/studies/s/stop").json()["state"] == "stopped"
    r = client.post("/api/v1/studies/s/resume")
    assert r.status_code == 409 and "stopped" in r.json()["detail"]
    rep = client.post(f"/api/v1/trials/{lease['trial_id']}/report",
                      json={"lease_token": lease["lease_token"], "step": 1, "metrics": {"val_loss": 1.0}})
    assert rep.json()["should_stop"] is True


def test_budget_finishes_study(client):
    make_study(client, max_trials=2)
    for _ in range(2):
        lease = claim(client)
        client.post(f"/api/v1/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"], "value": 1.0})
    assert claim(client) is None
    assert client.get("/api/v1/studies/s").json()["state"] == "finished"


def test_grid_study_finishes_when_exhausted(client):
    make_study(client, method="grid", max_trials=None,
               parameters={"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}})
    seen = set()
    while (lease := claim(client)) is not None:
        seen.add((lease["params"]["a"], lease["params"]["b"]))
        client.post(f"/api/v1/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"], "value": 0.0})
    assert len(seen) == 6
    assert client.get("/api/v1/studies/s").json()["state"] == "finished"


def test_enqueue_runs_first_and_is_validated(client):
    make_study(client, max_trials=3)
    good = {"lr": 0.01, "dropout": 0.5, "optimizer": {"name": "adam"}}
    r = client.post("/api/v1/studies/s/enqueue", json={"params": good})
    assert r.status_code == 201 and r.json()["state"] == "waiting"
    assert r.json()["params"]["optimizer"] == {"name": "adam", "momentum": 0.9}
    lease = claim(client)
    assert lease["params"]["lr"] == 0.01 and lease["method"] == "enqueued"
    for bad, loc in [({**good, "lr": 5.0}, ["body", "params", "lr"]),
                     ({**good, "extra": 1}, ["body", "params", "extra"]),
                     ({"lr": 0.01, "optimizer": {"name": "adam"}}, ["body", "params", "dropout"]),
                     ({**good, "optimizer": {"name": "rmsprop"}}, ["body", "params", "optimizer", "name"])]:
        r = client.post("/api/v1/studies/s/enqueue", json={"params": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, r.text
    assert client.get("/api/v1/studies/s").json()["counts"]["total"] == 1


def test_delete_study_removes_its_trials(client):
    make_study(client)
    lease = claim(client)
    assert client.delete("/api/v1/studies/s").status_code == 204
    assert client.get(f"/api/v1/trials/{lease['trial_id']}").status_code == 404
    assert client.get("/api/v1/studies/s").status_code == 404


def test_trials_filtered_and_paginated(client):
    make_study(client, max_trials=10)
    leases = client.post("/api/v1/studies/s/ask", json={"count": 5}).json()
    assert len(leases) == 5 and len({l["trial_id"] for l in leases}) == 5
    for l in leases[:3]:
        client.post(f"/api/v1/trials/{l['trial_id']}/complete", json={"lease_token": l["lease_token"], "value": 1.0})
    page = client.get("/api/v1/studies/s/trials", params={"state": "completed", "limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    page2 = client.get("/api/v1/studies/s/trials", params={"state": "completed", "limit": 2, "offset": 2}).json()
    assert len(page2["items"]) == 1
    assert client.get("/api/v1/studies/s/trials", params={"state": "bogus"}).status_code == 422
    assert client.get("/api/v1/studies/s/trials", params={"limit": 0}).status_code == 422


def test_best_trial_follows_goal(client):
    make_study(client, metric={"name": "val_acc", "goal": "maximize"})
    for v in (0.5, 0.9, 0.7):
        l = claim(client)
        client.post(f"/api/v1/trials/{l['trial_id']}/complete", json={"lease_token": l["lease_token"], "value": v})
    assert client.get("/api/v1/studies/s").json()["best_trial"]["value"] == 0.9


def test_warm_start_from_compatible_study(client):
    make_study(client, "first", method="tpe")
    make_study(client, "second", method="tpe", warm_start_from="first")
    r = client.post("/api/v1/studies", json=study_body("third", warm_start_from="first",
                                                       parameters={"other": {"min": 0.0, "max": 1.0}}))
    assert r.status_code == 422 and "incompatible" in r.json()["detail"][0]["msg"]


def test_api_token_required_when_configured(database_url):
    from fastapi.testclient import TestClient

    from tuneserve_service.config import Settings
    from tuneserve_service.main import create_app

    with TestClient(create_app(Settings(database_url=database_url, api_token="sekret"))) as c:
        assert c.get("/api/v1/studies").status_code == 401
        assert c.get("/api/v1/studies", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/v1/studies", headers={"Authorization": "Bearer sekret"}).status_code == 200
        assert c.get("/healthz").status_code == 200
