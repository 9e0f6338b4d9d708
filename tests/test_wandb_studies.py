"""W&B sweep behaviour of a study over REST: display names and slugs, bayes on gp or tpe,
metric.target finishing the study, metric.impute, and W&B's hyperband re-checking a running
trial at its heartbeat."""
from __future__ import annotations

import pytest

from tuneserve_service.domain.core import impute
from tuneserve_service.optimizers.registry import GP_MAX_DIMENSIONS, resolve_engine
from tuneserve_service.space import parse_parameters
from tuneserve_service.store import studies as study_store
from tests.helpers import study_body

API = "/api/v1"


def create(client, **doc):
    r = client.post(f"{API}/studies", json=doc)
    assert r.status_code == 201, r.text
    return r.json()


def run_trial(client, study: str, reports: list[float], end: str = "complete", value: float | None = None) -> dict:
    lease = client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": study}).json()
    tid, tok = lease["trial_id"], lease["lease_token"]
    for step, v in enumerate(reports, start=1):
        client.post(f"{API}/trials/{tid}/report", json={"lease_token": tok, "step": step, "metrics": {"loss": v}})
    if end == "complete":
        r = client.post(f"{API}/trials/{tid}/complete", json={"lease_token": tok, "value": value})
        assert r.status_code == 200, r.text
    elif end == "fail":
        client.post(f"{API}/trials/{tid}/fail", json={"lease_token": tok, "reason": "crash", "kind": "error"})
    elif end == "prune":
        client.post(f"{API}/trials/{tid}/prune", json={"lease_token": tok, "reason": "told to"})
    return lease


SPACE = {"x": {"min": 0.0, "max": 1.0}}
LOSS = {"name": "loss", "goal": "minimize"}


# --- names -------------------------------------------------------------------------------------

def test_a_display_name_gets_a_unique_slug(client):
    first = create(client, name="My LR sweep #1 (ResNet)", method="random", parameters=SPACE)
    assert first["name"] == "my-lr-sweep-1-resnet" and first["display_name"] == "My LR sweep #1 (ResNet)"
    second = create(client, name="My LR sweep #1 (ResNet)", method="random", parameters=SPACE)
    assert second["name"] == "my-lr-sweep-1-resnet-2"                     # display names need not be unique
    assert client.get(f"{API}/studies/my-lr-sweep-1-resnet-2").json()["display_name"] == "My LR sweep #1 (ResNet)"
    unicode = create(client, name="Lernrate für CNN", method="random", parameters=SPACE)
    assert unicode["name"] == "lernrate-fur-cnn"
    assert client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": first["name"]}).status_code == 200


def test_a_url_safe_name_is_the_url_name_and_must_be_free(client):
    created = create(client, name="lr-sweep", method="random", parameters=SPACE)
    assert created["name"] == created["display_name"] == "lr-sweep"
    r = client.post(f"{API}/studies", json={"name": "lr-sweep", "parameters": SPACE})
    assert r.status_code == 409 and r.json()["code"] == "study_exists"
    # A display name whose slug is taken by it gets a suffix instead.
    assert create(client, name="LR sweep", parameters=SPACE)["name"] == "lr-sweep-2"


def test_no_name_gets_a_generated_one(client):
    a = create(client, parameters=SPACE)
    b = create(client, parameters=SPACE)
    assert a["name"].startswith("sweep-") and len(a["name"]) == len("sweep-") + 8
    assert a["name"] != b["name"] and a["display_name"] == a["name"]


# --- bayes ----------------------------------------------------------------------------------------

def test_bayes_runs_on_gp_for_small_spaces_and_tpe_beyond(client):
    small = create(client, method="bayes", metric=LOSS, parameters={
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}, "opt": {"values": ["sgd", "adam"]}})
    assert (small["method"], small["engine"]) == ("bayes", "gp")
    wide = create(client, method="bayes", metric=LOSS, parameters={
        f"p{i}": {"min": 0.0, "max": 1.0} for i in range(GP_MAX_DIMENSIONS + 1)})
    assert (wide["method"], wide["engine"]) == ("bayes", "tpe")
    lease = client.post(f"{API}/studies/{small['name']}/ask", json={"count": 2}).json()
    assert {l["method"] for l in lease} <= {"random", "gp"}           # prior draws first, then the GP


@pytest.mark.parametrize("params, engine", [
    ({"a": {"values": list(range(20))}}, "gp"),                       # 20 one-hot coordinates
    ({"a": {"values": list(range(21))}}, "tpe"),
    ({"a": {"values": [1, 2]}, "b": {"value": 3}}, "gp"),
    ({"a": {"value": 3}}, "tpe"),
])
def test_bayes_engine_rule(params, engine):
    assert resolve_engine("bayes", parse_parameters(params)) == engine
    assert resolve_engine("tpe_hyperopt", parse_parameters(params)) == "tpe_hyperopt"


# --- metric.target ------------------------------------------------------------------------------

@pytest.mark.parametrize("goal, values, finishing", [("minimize", [0.5, 0.2, 0.05], 2), ("maximize", [0.5, 0.95, 0.2], 1)])
def test_target_finishes_the_study(client, goal, values, finishing):
    target = 0.1 if goal == "minimize" else 0.9
    study = create(client, name="t", method="random", max_trials=10, metric={"name": "loss", "goal": goal,
                                                                              "target": target}, parameters=SPACE)
    assert study["metric"]["target"] == target
    bystander = client.post(f"{API}/trials/claim", json={"worker_id": "b", "study": "t"}).json()
    for i, v in enumerate(values):
        run_trial(client, "t", [], value=v)
        state = client.get(f"{API}/studies/t").json()
        assert state["state"] == ("finished" if i >= finishing else "running"), (i, state["state"])
        if i >= finishing:
            break
    read = client.get(f"{API}/studies/t").json()
    assert read["target_reached_by"] == finishing + 1          # the bystander holds trial number 0
    assert client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": "t"}).status_code == 204
    hb = client.post(f"{API}/trials/{bystander['trial_id']}/heartbeat", json={"lease_token": bystander["lease_token"]})
    assert hb.json()["should_stop"] is True and "finished" in hb.json()["reason"]


def test_the_last_trial_of_the_budget_can_still_be_the_one_that_reached_the_target(client):
    create(client, name="t", method="random", max_trials=2, metric={**LOSS, "target": 0.1}, parameters=SPACE)
    run_trial(client, "t", [], value=0.5)
    run_trial(client, "t", [], value=0.05)
    read = client.get(f"{API}/studies/t").json()
    assert read["state"] == "finished" and read["target_reached_by"] == 1


def test_a_value_short_of_the_target_or_a_stopped_study_is_left_alone(client):
    create(client, name="t", method="random", max_trials=5, metric={**LOSS, "target": 0.1}, parameters=SPACE)
    run_trial(client, "t", [], value=0.1000001)
    assert client.get(f"{API}/studies/t").json()["state"] == "running"
    lease = client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": "t"}).json()
    client.post(f"{API}/studies/t/stop")
    client.post(f"{API}/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"], "value": 0.0})
    read = client.get(f"{API}/studies/t").json()
    assert read["state"] == "stopped" and read["target_reached_by"] is None


# --- impute -------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy, expected", [
    # trial 1 failed after 4.0, 3.5; trial 2 was pruned after 5.0, 1.5; trial 4 failed silently.
    ("latest", {1: 3.5, 2: 1.5, 4: None}),
    ("best", {1: 3.5, 2: 1.5, 4: None}),
    ("worst", {1: 5.0, 2: 5.0, 4: 5.0}),
])
def test_impute_fills_failed_and_pruned_trials_as_wandb_does(client, db, strategy, expected):
    create(client, name="i", method="tpe", metric={**LOSS, "impute": strategy}, parameters=SPACE)
    run_trial(client, "i", [3.0, 2.0, 2.5], value=2.2)
    run_trial(client, "i", [4.0, 3.5], end="fail")
    run_trial(client, "i", [5.0, 1.5], end="prune")
    run_trial(client, "i", [2.8], end="running")
    run_trial(client, "i", [], end="fail")
    with db.transaction() as s:
        study = study_store.get_study(s, "i")
        assert impute.wanted(study)
        completed, pending = impute.observations(s, study)
    assert len(completed) == 4 and len(pending) == 1               # the running trial stays pending
    assert completed[0].value == 2.2
    for number, value in expected.items():
        obs = completed[number if number < 3 else 3]
        assert obs.value == value
        assert obs.state == ("completed" if value is not None else "failed")


def test_impute_while_running_learns_from_running_trials(client, db):
    create(client, name="r", method="gp", metric={**LOSS, "impute_while_running": "best"}, parameters=SPACE)
    run_trial(client, "r", [3.0, 2.0, 2.5], value=2.2)
    run_trial(client, "r", [2.8, 1.9, 2.4], end="running")
    run_trial(client, "r", [], end="running")
    with db.transaction() as s:
        completed, pending = impute.observations(s, study_store.get_study(s, "r"))
    assert [o.value for o in completed] == [2.2, 1.9] and len(pending) == 1
    leases = client.post(f"{API}/studies/r/ask", json={"count": 2}).json()
    assert len(leases) == 2


def test_without_impute_the_history_is_the_optimizers_own(client, db):
    create(client, name="n", method="tpe", metric=LOSS, parameters=SPACE)
    with db.transaction() as s:
        assert not impute.wanted(study_store.get_study(s, "n"))


# --- W&B's hyperband over REST ------------------------------------------------------------------

def test_wandb_hyperband_rechecks_a_running_trial_at_its_heartbeat(client):
    create(client, name="h", method="random", max_trials=10, metric=LOSS, parameters=SPACE,
           early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2})
    early = client.post(f"{API}/trials/claim", json={"worker_id": "a", "study": "h"}).json()
    r = client.post(f"{API}/trials/{early['trial_id']}/report",
                    json={"lease_token": early["lease_token"], "step": 1, "metrics": {"loss": 2.0}})
    assert r.json()["should_stop"] is False                          # alone at band 1
    for v in (1.0, 1.1, 1.2):
        run_trial(client, "h", [v], value=v)
    # No new report from `early`: its band-1 value now ranks last of four, threshold sorted(...)[2] = 1.2.
    hb = client.post(f"{API}/trials/{early['trial_id']}/heartbeat", json={"lease_token": early["lease_token"]})
    assert hb.json()["should_stop"] is True and "band 1" in hb.json()["reason"]
    again = client.post(f"{API}/trials/{early['trial_id']}/heartbeat", json={"lease_token": early["lease_token"]})
    assert again.json()["should_stop"] is True                       # stored on the trial
    assert client.get(f"{API}/studies/h").json()["pruner"] == {"type": "hyperband", "min_iter": 1, "eta": 2,
                                                               "strict": True}


def test_a_trial_at_its_last_epoch_is_not_pruned_at_its_report_or_heartbeat(client):
    # epochs 2 and bands 1, 2, 4: band 2 is a trial's last report, where a stop would save nothing and
    # rank a finished run as a pruned one. The same rank one epoch earlier still stops.
    create(client, name="last", method="random", max_trials=10, metric=LOSS,
           parameters={**SPACE, "train": {"parameters": {"epochs": {"value": 2}}}},
           early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2})
    for v in (1.0, 1.1, 1.2):
        run_trial(client, "last", [v, v], value=v)
    late = client.post(f"{API}/trials/claim", json={"worker_id": "a", "study": "last"}).json()
    tid, tok = late["trial_id"], late["lease_token"]
    r = client.post(f"{API}/trials/{tid}/report", json={"lease_token": tok, "step": 1, "metrics": {"loss": 0.5}})
    assert r.json()["should_stop"] is False
    r = client.post(f"{API}/trials/{tid}/report", json={"lease_token": tok, "step": 2, "metrics": {"loss": 9.0}})
    assert r.json()["should_stop"] is False                          # worst of four at band 2, its last epoch
    hb = client.post(f"{API}/trials/{tid}/heartbeat", json={"lease_token": tok})
    assert hb.json()["should_stop"] is False
    assert client.post(f"{API}/trials/{tid}/complete", json={"lease_token": tok, "value": 9.0}).status_code == 200
    assert client.get(f"{API}/trials/{tid}").json()["state"] == "completed"
    early = client.post(f"{API}/trials/claim", json={"worker_id": "a", "study": "last"}).json()
    r = client.post(f"{API}/trials/{early['trial_id']}/report",
                    json={"lease_token": early["lease_token"], "step": 1, "metrics": {"loss": 9.0}})
    assert r.json()["should_stop"] is True and "band 1" in r.json()["reason"]


@pytest.mark.parametrize("epochs, stopped", [(2, False), (3, True)])
def test_asha_does_not_stop_a_managed_fidelitys_last_epoch(client, epochs, stopped):
    # Rungs 1, 2, 4: at rung 2 the trial is the worst of three and ASHA stops it, unless epoch 2 is its last.
    r = client.post(f"{API}/studies", json=study_body("fa", fidelity={"epochs": epochs},
                                                      pruner={"type": "asha", "grace_period": 1, "reduction_factor": 2}))
    assert r.status_code == 201, r.text
    for v in (1.0, 1.1):
        lease = client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": "fa"}).json()
        client.post(f"{API}/trials/{lease['trial_id']}/report", json={"lease_token": lease["lease_token"], "reports": [
            {"step": 1, "metrics": {"val_loss": v}}, {"step": 2, "metrics": {"val_loss": v}}]})
    lease = client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": "fa"}).json()
    assert lease["params"]["epochs"] == epochs
    tid, tok = lease["trial_id"], lease["lease_token"]
    r = client.post(f"{API}/trials/{tid}/report", json={"lease_token": tok, "step": 1, "metrics": {"val_loss": 0.9}})
    assert r.json()["should_stop"] is False                          # the best at rung 1
    r = client.post(f"{API}/trials/{tid}/report", json={"lease_token": tok, "step": 2, "metrics": {"val_loss": 5.0}})
    assert r.json()["should_stop"] is stopped


def test_a_native_pruner_is_not_rechecked_at_heartbeats(client):
    r = client.post(f"{API}/studies", json=study_body("m", pruner={"type": "asha", "grace_period": 1,
                                                                    "reduction_factor": 2}))
    assert r.status_code == 201
    lease = client.post(f"{API}/trials/claim", json={"worker_id": "a", "study": "m"}).json()
    client.post(f"{API}/trials/{lease['trial_id']}/report",
                json={"lease_token": lease["lease_token"], "step": 1, "metrics": {"val_loss": 9.0}})
    hb = client.post(f"{API}/trials/{lease['trial_id']}/heartbeat", json={"lease_token": lease["lease_token"]})
    assert hb.json()["should_stop"] is False
