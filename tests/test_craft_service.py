"""The craft through the API, on both backends: refine (child space, warm start, links), stages that
start by themselves, fidelity recorded and handed to each run, repeats and the noise-aware best, and
the data fraction as the pruners' resource. Trials are driven over REST with planted values."""
from __future__ import annotations

import math

import pytest

from tuneserve_service.craft.fidelity import map_by_rank
from tuneserve_service.craft.repeats import config_key
from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import lineage
from tuneserve_service.domain.features import stages as stage_domain
from tuneserve_service.domain.core.fidelity import default_data_seed
from tuneserve_service.space import SearchSpace
from tuneserve_service.store import studies as study_store
from tests.helpers import claim

API = "/api/v1"
PARENT_SPACE = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "width": {"values": [8, 16, 32, 64]},
    "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.7},
}


def loss(params: dict) -> float:
    """Best near lr = 0.01 and width 32; dropout costs a little."""
    return (math.log10(params["lr"]) + 2) ** 2 + params.get("dropout", 0) / 10 + (0 if params.get("width") == 32 else 0.05)


def create(client, body: dict) -> dict:
    r = client.post(f"{API}/studies", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def run(client, study: str, value=loss, limit: int = 200, count: int | None = None) -> list[dict]:
    """Claim and complete trials of `study` until none is handed out (or `count` are done); returns
    the leases."""
    leases = []
    for _ in range(limit):
        if count is not None and len(leases) == count:
            return leases
        lease = claim(client, study)
        if lease is None:
            return leases
        v = value(lease["params"])
        r = client.post(f"{API}/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"], "value": v})
        assert r.status_code == 200, r.text
        leases.append(lease)
    raise AssertionError("the study never stopped handing out trials")


def trials(client, study: str) -> list[dict]:
    return client.get(f"{API}/studies/{study}/trials", params={"limit": 1000}).json()["items"]


def parent_study(client, name: str = "coarse", n: int = 12, space: dict = PARENT_SPACE) -> dict:
    create(client, {"name": name, "method": "random", "seed": 3, "max_trials": n, "parameters": space})
    run(client, name)
    return client.get(f"{API}/studies/{name}").json()


# ---- refine --------------------------------------------------------------------------------------

def test_refine_makes_a_child_around_the_top_trials(client):
    parent = parent_study(client)
    assert parent["state"] == "finished" and parent["fidelity"] is None
    done = sorted(trials(client, "coarse"), key=lambda t: (t["value"], t["number"]))
    top = done[:3]
    r = client.post(f"{API}/studies/coarse/refine", json={"top_k": 3, "max_trials": 6, "epochs": 4, "method": "tpe"})
    assert r.status_code == 201, r.text
    child = r.json()

    # lr: the top 3's span in log space, widened by 25% of it on each side, inside the parent's bounds
    logs = sorted(math.log(t["params"]["lr"]) for t in top)
    width = logs[-1] - logs[0]
    lo, hi = max(math.log(1e-4), logs[0] - 0.25 * width), min(0.0, logs[-1] + 0.25 * width)
    assert width >= 0.1 * math.log(1e4)  # the planted top is spread wider than the minimum width
    lr = child["parameters"]["lr"]
    assert lr["distribution"] == "log_uniform_values"
    assert lr["min"] == pytest.approx(math.exp(lo), rel=1e-9) and lr["max"] == pytest.approx(math.exp(hi), rel=1e-9)
    # categoricals: the values seen among the top 3, in the parent's order
    assert child["parameters"]["width"]["values"] == [w for w in (8, 16, 32, 64) if w in {t["params"]["width"] for t in top}]
    # its own budget, method and fidelity (the parent's data seed, all the data, 4 epochs)
    assert child["max_trials"] == 6 and child["method"] == "tpe"
    assert child["fidelity"] == {"epochs": 4, "data_fraction": 1.0, "data_seed": default_data_seed(3)}
    assert child["fidelity_label"] == "4 epochs, 100% data"
    # linked both ways
    assert child["parent"] == {"name": "coarse", "state": "finished", "stage_index": None, "relation": "refine"}
    assert child["warm_start_from"] == "coarse" and child["refine"]["top"] == [t["number"] for t in top]
    assert [c["name"] for c in client.get(f"{API}/studies/coarse").json()["children"]] == [child["name"]]
    # the top 3 run first in the child, at its fidelity, and count toward its budget
    queued = trials(client, child["name"])
    assert [t["params"] for t in queued] == [t["params"] for t in top]
    assert {t["method"] for t in queued} == {"enqueued"} and child["refine"]["rerun"] == [t["number"] for t in top]
    assert all(t["fidelity"] == child["fidelity"] for t in queued)
    lease = claim(client, child["name"])
    assert lease["params"] == {**top[0]["params"], "epochs": 4, "data_fraction": 1.0, "data_seed": default_data_seed(3)}
    assert lease["fidelity"] == child["fidelity"]


def test_the_warm_start_maps_low_fidelity_values_by_rank(client, database_url):
    parent_study(client, space={k: v for k, v in PARENT_SPACE.items() if k != "width"})
    wide = {"top_k": 3, "max_trials": 8, "margin": 1.0}
    child = client.post(f"{API}/studies/coarse/refine", json={**wide, "epochs": 4}).json()
    same = client.post(f"{API}/studies/coarse/refine", json={**wide, "name": "same-fidelity", "rerun_top": False}).json()
    # the child's reruns complete on the child's own (10-epoch-like) scale
    own = [1.0, 2.0, 3.0]
    for value in own:
        lease = claim(client, child["name"])
        client.post(f"{API}/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"], "value": value})
    parents = {t["number"]: t for t in trials(client, "coarse")}
    db = Database(database_url)
    try:
        with db.transaction() as s:
            study = study_store.get_study(s, child["name"])
            space = SearchSpace.from_json(study.space)
            observed = lineage.warm_start_observations(s, study, space, own)
            inside = [n for n in study.refine["inside"] if n not in study.refine["rerun"]]
            plain = study_store.get_study(s, "same-fidelity")
            unmapped = lineage.warm_start_observations(s, plain, SearchSpace.from_json(plain.space), own)
    finally:
        db.dispose()
    raw = [parents[n]["value"] for n in inside]
    assert inside and [o.value for o in observed] == pytest.approx(map_by_rank(raw, own))
    assert all(1.0 <= o.value <= 3.0 for o in observed)   # on the child's scale, not the parent's
    assert sorted(range(len(raw)), key=lambda i: raw[i]) == sorted(range(len(raw)), key=lambda i: observed[i].value)
    # between studies of one fidelity the values are fed as they are
    assert {round(o.value, 12) for o in unmapped} <= {round(t["value"], 12) for t in parents.values()}
    assert len(unmapped) == len(same["refine"]["inside"])


def test_refine_refusals_change_nothing(client):
    create(client, {"name": "empty", "method": "random", "seed": 1, "max_trials": 4, "parameters": PARENT_SPACE})
    r = client.post(f"{API}/studies/empty/refine", json={"top_k": 2, "max_trials": 5})
    assert r.status_code == 409 and r.json()["code"] == "not_enough_trials"
    parent_study(client, "p", n=4)
    cases = [
        ({"top_k": 5, "max_trials": 5}, ["body", "top_k"], "must be <= 4"),
        ({"top_k": 2}, ["body", "max_trials"], "Field required"),
        ({"top_k": "2", "max_trials": 5}, ["body", "top_k"], "integer"),
        ({"top_k": 2, "max_trials": 5, "data_fraction": 1.5}, ["body", "data_fraction"], "less than or equal to 1"),
        ({"top_k": 2, "max_trials": 5, "classes": 1}, ["body", "classes"], "greater than or equal to 2"),
        ({"top_k": 2, "max_trials": 5, "nope": 1}, ["body", "nope"], "Extra inputs"),
        ({"top_k": 2, "max_trials": 5, "name": "p"}, ["body", "name"], "already exists"),
        ({"top_k": 2, "max_trials": 5, "method": "custom"}, ["body", "method"], "Input should be"),
    ]
    for body, loc, message in cases:
        r = client.post(f"{API}/studies/p/refine", json=body)
        assert r.status_code == 422, (body, r.text)
        (detail,) = r.json()["detail"]
        assert detail["loc"] == loc and message in detail["msg"], (body, detail)
    assert client.post(f"{API}/studies/missing/refine", json={"top_k": 1, "max_trials": 2}).status_code == 404
    assert [s["name"] for s in client.get(f"{API}/studies").json()] == ["empty", "p"]
    assert client.get(f"{API}/studies/p").json()["children"] == []


def test_deleting_a_parent_keeps_its_child(client):
    parent_study(client, "p", n=4)
    child = client.post(f"{API}/studies/p/refine", json={"top_k": 2, "max_trials": 3}).json()
    assert client.delete(f"{API}/studies/p").status_code == 204
    kept = client.get(f"{API}/studies/{child['name']}").json()
    assert kept["parent"] is None and kept["refine"]["parent"] == "p" and kept["counts"]["waiting"] == 2


# ---- stages --------------------------------------------------------------------------------------

STAGED = {
    "name": "staged", "method": "random", "seed": 11, "parameters": PARENT_SPACE,
    "stages": [{"trials": 6, "epochs": 2, "data_fraction": 0.1},
               {"refine": {"top_k": 2}, "trials": 4, "epochs": 10, "repeat_top": {"top_k": 1, "seeds": 2}}],
}


def test_stages_start_by_themselves_and_claims_follow_them(client):
    root = create(client, STAGED)
    seed = default_data_seed(11)
    assert root["max_trials"] == 6 and root["stage_index"] == 0 and root["active_stage"] == "staged"
    assert root["fidelity"] == {"epochs": 2, "data_fraction": 0.1, "data_seed": seed}
    assert [s["state"] for s in root["stages"]] == ["finished" if False else "running", "pending"]
    assert root["stages"][1]["fidelity"] == {"epochs": 10, "data_fraction": 1.0, "data_seed": seed}
    held = [claim(client, "staged") for _ in range(6)]
    assert claim(client, "staged") is None  # the budget is out while its trials run
    assert all(h["params"]["epochs"] == 2 and h["params"]["data_fraction"] == 0.1 and h["params"]["data_seed"] == seed
               for h in held)
    for h in held[:-1]:
        client.post(f"{API}/trials/{h['trial_id']}/complete", json={"lease_token": h["lease_token"], "value": loss(h["params"])})
    assert client.get(f"{API}/studies/staged").json()["children"] == []  # one trial still running
    last = held[-1]
    client.post(f"{API}/trials/{last['trial_id']}/complete", json={"lease_token": last["lease_token"], "value": loss(last["params"])})
    root = client.get(f"{API}/studies/staged").json()
    assert root["state"] == "finished" and root["active_stage"] == "staged-stage-1"
    assert root["children"] == [{"name": "staged-stage-1", "state": "running", "stage_index": 1, "relation": "stage"}]
    stage1 = client.get(f"{API}/studies/staged-stage-1").json()
    assert stage1["parent"]["name"] == "staged" and stage1["stage_index"] == 1 and stage1["max_trials"] == 4
    assert stage1["warm_start_from"] == "staged" and stage1["refine"]["relation"] == "stage"
    top2 = sorted(trials(client, "staged"), key=lambda t: (t["value"], t["number"]))[:2]
    # a worker still naming the first stage is handed the second stage's trials: the top 2 first
    leases = run(client, "staged")
    assert {lease["study"] for lease in leases} == {"staged-stage-1"}
    first = [{k: v for k, v in lease["params"].items() if k in PARENT_SPACE} for lease in leases[:2]]
    assert first == [t["params"] for t in top2]
    assert all(lease["params"]["epochs"] == 10 and lease["params"]["data_fraction"] == 1.0 for lease in leases)
    # 4 trials, then its repeat_top: the best configuration twice more with new seeds
    assert len(leases) == 4 + 2 and [lease["params"].get("seed") is not None for lease in leases] == [False] * 4 + [True] * 2
    stage1 = client.get(f"{API}/studies/staged-stage-1").json()
    assert stage1["state"] == "finished" and stage1["max_trials"] == 6 and stage1["repeats"][0]["source"] == "document"
    root = client.get(f"{API}/studies/staged").json()
    assert [(s["study"], s["state"], s["ended"]) for s in root["stages"]] == [
        ("staged", "finished", 6), ("staged-stage-1", "finished", 6)]
    assert stage1["best_configuration"]["count"] == 3  # its original run and two repeats
    assert all(t["fidelity"]["epochs"] == 10 for t in trials(client, "staged-stage-1"))
    assert all(t["fidelity"] == {"epochs": 2, "data_fraction": 0.1, "data_seed": seed} for t in trials(client, "staged"))


def test_steering_a_staged_study_by_its_name_reaches_the_active_stage(client):
    create(client, {**STAGED, "stages": [{"trials": 2, "epochs": 1}, {"trials": 2, "epochs": 2}]})
    for h in [claim(client, "staged") for _ in range(2)]:
        client.post(f"{API}/trials/{h['trial_id']}/complete", json={"lease_token": h["lease_token"], "value": 1.0})
    paused = client.post(f"{API}/studies/staged/pause")
    assert paused.status_code == 200 and paused.json()["name"] == "staged-stage-1" and paused.json()["state"] == "paused"
    assert client.get(f"{API}/studies/staged").json()["state"] == "finished"  # stage 0 stays as it ended
    assert claim(client, "staged") is None
    resumed = client.post(f"{API}/studies/staged/resume").json()
    assert resumed["name"] == "staged-stage-1" and resumed["state"] == "running"
    assert claim(client, "staged")["study"] == "staged-stage-1"
    stopped = client.post(f"{API}/studies/staged/stop").json()
    assert stopped["name"] == "staged-stage-1" and stopped["state"] == "stopped"


def test_a_stage_is_created_once(client, database_url):
    create(client, {**STAGED, "stages": [{"trials": 2}, {"refine": {"top_k": 1}, "trials": 2}]})
    run(client, "staged", count=2)
    db = Database(database_url)
    try:
        with db.transaction() as s:   # a second server that also saw the first stage end
            stage_domain.on_finished(s, study_store.get_study(s, "staged"))
        with db.transaction() as s:
            children = study_store.children_of(s, study_store.get_study(s, "staged").id)
    finally:
        db.dispose()
    assert [c.name for c in children] == ["staged-stage-1"]


@pytest.mark.parametrize("change, loc, message", [
    ({"stages": [{"trials": 4}, {"refine": {"top_k": 5}, "trials": 2}]}, ["body", "stages", 1, "refine", "top_k"],
     "must be <= the previous stage's trials (4)"),
    ({"stages": [{"trials": 4, "data_fraction": 0}]}, ["body", "stages", 0, "data_fraction"], "(0, 1]"),
    ({"stages": [{"trials": 4, "bogus": 1}]}, ["body", "stages", 0, "bogus"], "unknown key"),
    ({"stages": [{"refine": {"top_k": 1}, "trials": 4}]}, ["body", "stages", 0, "refine"], "no earlier stage"),
    ({"stages": [{"trials": 4}], "max_trials": 4}, ["body", "max_trials"], "each stage's `trials`"),
    ({"stages": [{"trials": 4, "method": "nope"}]}, ["body", "stages", 0, "method"], "unknown method"),
    ({"stages": [{"trials": 4}], "fidelity": {"data_fraction": 2}}, ["body", "fidelity", "data_fraction"], "(0, 1]"),
    ({"fidelity": {"epochs": 2}, "parameters": {**PARENT_SPACE, "epochs": {"values": [1, 2]}}},
     ["body", "parameters", "epochs"], "cannot be searched"),
    ({"repeat_top": {"top_k": 2, "seeds": 0}, "max_trials": 4}, ["body", "repeat_top", "seeds"], "integer >= 1"),
    ({"repeat_top": {"top_k": 2}}, ["body", "repeat_top"], "give max_trials"),
])
def test_bad_craft_documents_are_422_naming_the_path(client, change, loc, message):
    body = {"name": "bad", "method": "random", "parameters": PARENT_SPACE, **change}
    r = client.post(f"{API}/studies", json=body)
    assert r.status_code == 422, r.text
    (detail,) = r.json()["detail"]
    assert detail["loc"] == loc and message in detail["msg"], detail
    assert client.get(f"{API}/studies").json() == []


# ---- fidelity ------------------------------------------------------------------------------------

def test_a_searched_data_fraction_is_fidelity_and_the_best_is_at_the_top_one(client):
    space = {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
             "data_fraction": {"values": [0.1, 1.0]}}
    create(client, {"name": "frac", "method": "random", "seed": 1, "max_trials": 3, "parameters": space})
    planted = [({"lr": 0.01, "data_fraction": 0.1}, 0.05),   # the lowest value, on a tenth of the data
               ({"lr": 0.02, "data_fraction": 1.0}, 0.50), ({"lr": 0.03, "data_fraction": 1.0}, 0.40)]
    for params, _ in planted:
        assert client.post(f"{API}/studies/frac/enqueue", json={"params": params}).status_code == 201
    values = {0.01: 0.05, 0.02: 0.50, 0.03: 0.40}
    run(client, "frac", value=lambda p: values[p["lr"]])
    study = client.get(f"{API}/studies/frac").json()
    assert study["best_trial"]["value"] == 0.40 and study["best_trial"]["fidelity"]["data_fraction"] == 1.0
    assert [t["fidelity"] for t in trials(client, "frac")] == [
        {"data_fraction": 0.1, "data_seed": 0}, {"data_fraction": 1.0, "data_seed": 0}, {"data_fraction": 1.0, "data_seed": 0}]


def test_a_managed_fidelity_is_not_a_parameter(client):
    create(client, {"name": "m", "method": "random", "seed": 1, "max_trials": 3, "parameters": PARENT_SPACE,
                    "fidelity": {"epochs": 3, "data_fraction": 0.5, "data_seed": 9}})
    params = {"lr": 0.01, "width": 8, "dropout": 0.1}
    r = client.post(f"{API}/studies/m/enqueue", json={"params": {**params, "epochs": 5}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "params", "epochs"]
    assert "fidelity (3 epochs, 50% data)" in r.json()["detail"][0]["msg"]
    t = client.post(f"{API}/studies/m/enqueue", json={"params": params}).json()
    assert t["params"] == params and t["fidelity"] == {"epochs": 3, "data_fraction": 0.5, "data_seed": 9}
    assert t["config_key"] == config_key(params)
    lease = claim(client, "m")
    assert lease["params"] == {**params, "epochs": 3, "data_fraction": 0.5, "data_seed": 9}


# ---- repeats -------------------------------------------------------------------------------------

def test_a_lucky_single_run_does_not_win_once_repeated(client):
    create(client, {"name": "noisy", "method": "random", "seed": 5, "max_trials": 4, "parameters": PARENT_SPACE})
    configs = [{"lr": 0.01, "width": 32, "dropout": 0.1}, {"lr": 0.02, "width": 32, "dropout": 0.1},
               {"lr": 0.05, "width": 16, "dropout": 0.2}, {"lr": 0.1, "width": 8, "dropout": 0.3}]
    for c in configs:
        client.post(f"{API}/studies/noisy/enqueue", json={"params": c})
    # config 0 had a lucky run (0.40); its repeats show its true level (~0.70); config 1 is steady at 0.50
    first = {0.01: 0.40, 0.02: 0.50, 0.05: 0.80, 0.1: 0.90}
    run(client, "noisy", value=lambda p: first[p["lr"]])
    study = client.get(f"{API}/studies/noisy").json()
    assert study["state"] == "finished" and study["best_trial"]["params"]["lr"] == 0.01
    assert study["best_configuration"]["count"] == 1 and study["best_configuration"]["p_best_over_runner_up"] is None

    r = client.post(f"{API}/studies/noisy/repeat", json={"top_k": 2, "seeds": 3})
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["max_trials"] == 4 + 6 and len(answer["trials"]) == 6
    assert [g["params"]["lr"] for g in answer["configurations"]] == [0.01, 0.02]
    by_config = {}
    for t in answer["trials"]:
        assert t["method"] == "repeat" and t["state"] == "waiting" and isinstance(t["params"]["seed"], int)
        by_config.setdefault(t["config_key"], []).append(t["params"]["seed"])
    assert set(by_config) == {config_key(configs[0]), config_key(configs[1])}
    assert all(len(set(seeds)) == 3 for seeds in by_config.values())
    assert client.get(f"{API}/studies/noisy").json()["state"] == "running"  # reopened for its repeats

    repeats = {0.01: iter([0.70, 0.72, 0.68]), 0.02: iter([0.49, 0.51, 0.52])}
    run(client, "noisy", value=lambda p: next(repeats[p["lr"]]))
    study = client.get(f"{API}/studies/noisy").json()
    assert study["state"] == "finished" and study["counts"]["completed"] == 10
    best = study["best_configuration"]
    assert best["params"] == configs[1] and best["count"] == 4 and best["mean"] == pytest.approx(0.505)
    assert best["std"] == pytest.approx(0.01290994, rel=1e-6) and best["trials"] == [1, 7, 8, 9]
    assert best["runner_up"]["params"] == configs[0] and best["runner_up"]["mean"] == pytest.approx(0.625)
    # sigma pooled over both (3 df each): sqrt((0.0683 + 0.0005) / 6) = 0.1071; the lead 0.12 over
    # 0.1071 * sqrt(1/4 + 1/4) is t = 1.585 on 6 df: P = 0.918
    assert best["noise_sigma"] == pytest.approx(0.10708, rel=1e-3) and best["noise_df"] == 6
    assert best["p_best_over_runner_up"] == pytest.approx(0.918, abs=1e-3) and "beats the runner-up" in best["statement"]
    assert study["best_trial"]["params"]["lr"] == 0.02 and study["best_trial"]["value"] == 0.49
    assert sorted(len(g["trials"]) for g in study["repeat_groups"]) == [4, 4]
    # a refine ranks configurations (a repeated one at its mean), not its runs one by one
    child = client.post(f"{API}/studies/noisy/refine", json={"top_k": 2, "max_trials": 4}).json()
    assert child["refine"]["top"] == [1, 0] and child["refine"]["rerun"] == [1, 0]
    assert [t["params"] for t in trials(client, child["name"])] == [configs[1], configs[0]]


def test_repeat_refusals(client):
    create(client, {"name": "r", "method": "random", "seed": 5, "max_trials": 3, "parameters": PARENT_SPACE})
    assert client.post(f"{API}/studies/r/repeat", json={"top_k": 1, "seeds": 2}).status_code == 409
    run(client, "r")
    for body, loc in (({"top_k": 4, "seeds": 2}, ["body", "top_k"]), ({"top_k": 1, "seeds": 0}, ["body", "seeds"]),
                      ({"top_k": 1, "seeds": 101}, ["body", "seeds"]), ({"top_k": 1, "seed": 2}, ["body", "seed"])):
        r = client.post(f"{API}/studies/r/repeat", json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, (body, r.text)
    # a seed is taken by enqueue even though the space has none; a bad one is refused
    create(client, {"name": "e", "method": "random", "seed": 5, "max_trials": 3, "parameters": PARENT_SPACE})
    params = {"lr": 0.01, "width": 8, "dropout": 0.1}
    for seed in (-1, 2**31, True, "3"):
        r = client.post(f"{API}/studies/e/enqueue", json={"params": {**params, "seed": seed}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "params", "seed"], seed
    t = client.post(f"{API}/studies/e/enqueue", json={"params": {**params, "seed": 7}}).json()
    assert t["params"]["seed"] == 7 and t["config_key"] == config_key(params)
    assert client.post(f"{API}/studies/r/stop").status_code == 409  # finished: nothing to stop
    client.post(f"{API}/studies/e/stop")
    run(client, "e")
    assert client.post(f"{API}/studies/e/repeat", json={"top_k": 1, "seeds": 2}).status_code == 409  # stopped
    assert client.get(f"{API}/studies/r").json()["max_trials"] == 3
    assert client.get(f"{API}/studies/e").json()["max_trials"] == 3


# ---- the data fraction as the pruners' resource --------------------------------------------------

@pytest.mark.parametrize("resource, stops", [("data", True), ("epochs", False)])
def test_asha_on_full_data_epochs(client, resource, stops):
    """Hand-computed: A (25% of the data) reports epochs 1-4, B (all the data) reports epoch 1. With
    resource data and unit 0.25 (the smallest fraction), A's epochs are steps 1-4 and B's first epoch
    is step 4: it crosses rungs 1, 2 and 4 at once and at rung 4 ranks 2 of 2 (0.65 against A's
    0.60): only the top 1 (1/2) continues, so it stops. Counted in epochs, B is at rung 1 only,
    where it beats A's 0.90, and goes on."""
    space = {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
             "data_fraction": {"values": [0.25, 1.0]}}
    study = create(client, {"name": "hb", "method": "random", "seed": 1, "max_trials": 2, "parameters": space,
                            "pruner": {"type": "asha", "grace_period": 1, "reduction_factor": 2, "resource": resource}})
    expected = {"type": "asha", "grace_period": 1, "reduction_factor": 2, "max_resource": None, "strict": True}
    if resource == "data":
        expected.update(resource="data", resource_unit=0.25)
    assert study["pruner"] == expected
    for params in ({"lr": 0.01, "data_fraction": 0.25}, {"lr": 0.02, "data_fraction": 1.0}):
        client.post(f"{API}/studies/hb/enqueue", json={"params": params})
    a = claim(client, "hb")
    for step, value in enumerate([0.9, 0.8, 0.7, 0.6], start=1):
        answer = client.post(f"{API}/trials/{a['trial_id']}/report",
                             json={"lease_token": a["lease_token"], "step": step, "metrics": {"val_loss": value}}).json()
        assert answer["should_stop"] is False
    client.post(f"{API}/trials/{a['trial_id']}/complete", json={"lease_token": a["lease_token"], "value": 0.6})
    b = claim(client, "hb")
    answer = client.post(f"{API}/trials/{b['trial_id']}/report",
                         json={"lease_token": b["lease_token"], "step": 1, "metrics": {"val_loss": 0.65}}).json()
    assert answer["should_stop"] is stops
    if stops:
        assert "at rung 4 the value 0.65 ranks 2 of 2" in answer["reason"]
        assert client.get(f"{API}/trials/{b['trial_id']}").json()["stop_step"] == 1  # the step as reported


def test_the_resource_option_is_checked(client):
    for pruner, message in (({"type": "asha", "resource": "images"}, "must be one of epochs, data"),
                            ({"type": "hyperband", "min_iter": 1, "resource": "data"}, "W&B's hyperband"),
                            ({"type": "none", "resource": "data"}, "only tuneserve's")):
        r = client.post(f"{API}/studies", json={"name": "x", "parameters": PARENT_SPACE, "pruner": pruner})
        assert r.status_code == 422 and message in r.json()["detail"][0]["msg"], r.text


def test_refining_a_study_that_searched_its_fidelity_knobs(client):
    """A parent that searched epochs and data_fraction as parameters: the child fixes the data
    fraction (all the data by default) and keeps epochs a searched, narrowed parameter unless the
    refine sets them."""
    space = {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
             "epochs": {"distribution": "int_uniform", "min": 1, "max": 20},
             "data_fraction": {"values": [0.25, 0.5, 1.0]}}
    create(client, {"name": "knobs", "method": "random", "seed": 8, "max_trials": 10, "parameters": space})
    run(client, "knobs", value=lambda p: abs(math.log10(p["lr"]) + 2) - p["epochs"] / 100)
    child = client.post(f"{API}/studies/knobs/refine", json={"top_k": 3, "max_trials": 4, "rerun_top": False}).json()
    assert child["fidelity"] == {"data_fraction": 1.0, "data_seed": default_data_seed(8)}
    assert child["parameters"]["data_fraction"] == {"value": 1.0}
    assert child["parameters"]["epochs"]["distribution"] == "int_uniform"   # still searched
    lease = claim(client, child["name"])
    assert lease["params"]["data_fraction"] == 1.0 and 1 <= lease["params"]["epochs"] <= 20
    fixed = client.post(f"{API}/studies/knobs/refine", json={"top_k": 3, "max_trials": 4, "epochs": 30}).json()
    assert fixed["fidelity"]["epochs"] == 30 and fixed["parameters"]["epochs"] == {"value": 30}
    assert all(t["fidelity"]["epochs"] == 30 and "epochs" not in t["params"] for t in trials(client, fixed["name"]))


def test_the_sdk_refines_and_repeats(live_server):
    from tuneserve import Client

    with Client(live_server.url) as sdk:
        sdk.create_study(name="sdk", method="random", seed=2, max_trials=4, parameters=PARENT_SPACE)
        for trial in sdk.ask("sdk", count=4):
            trial.complete(loss(trial.params))
        child = sdk.refine("sdk", top_k=2, max_trials=3, epochs=5)
        assert child.parent.name == "sdk" and child.fidelity["epochs"] == 5 and child.counts.waiting == 2
        answer = sdk.repeat("sdk", top_k=1, seeds=2)
        assert len(answer.trials) == 2 and answer.max_trials == 6 and answer.configurations[0].count == 1


def test_the_dashboard_data_carries_the_fidelity(client):
    create(client, {"name": "managed", "method": "random", "seed": 1, "max_trials": 2, "parameters": PARENT_SPACE,
                    "fidelity": {"epochs": 2, "data_fraction": 0.1}})
    space = {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}, "data_fraction": {"values": [0.1, 1.0]}}
    create(client, {"name": "searched", "method": "random", "seed": 1, "max_trials": 3, "parameters": space})
    create(client, {"name": "constant", "method": "random", "seed": 1, "max_trials": 2,
                    "parameters": {**PARENT_SPACE, "data_fraction": {"value": 0.5}}})
    for params in ({"lr": 0.01, "data_fraction": 1.0}, {"lr": 0.02, "data_fraction": 0.1}, {"lr": 0.03, "data_fraction": 1.0}):
        client.post(f"{API}/studies/searched/enqueue", json={"params": params})
    for name in ("managed", "searched", "constant"):
        run(client, name)
    assert client.get("/dashboard/api/studies/managed/history").json()["fidelity_label"] == "2 epochs, 10% data"
    assert client.get("/dashboard/api/studies/constant/history").json()["fidelity_label"] == "50% data"
    history = client.get("/dashboard/api/studies/searched/history").json()
    assert [history["fidelities"][i] for i in history["fidelity"]] == ["100% data", "10% data", "100% data"]
    page = client.get("/dashboard/api/studies/searched/trials").json()
    assert [t["fidelity_label"] for t in page["items"]] == ["100% data", "10% data", "100% data"]
    assert all(t["config_key"] for t in page["items"])
