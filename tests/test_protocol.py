"""The worker protocol over REST: leases, fencing, idempotent reports, completion, divergence, pruning."""
from __future__ import annotations

import json
import time

import pytest

from tests.helpers import claim, make_study

API = "/api/v1"


def post(client, path, body):
    # json.dumps keeps NaN and Infinity (as JavaScript-style literals), which is what a Python worker sends.
    return client.post(API + path, content=json.dumps(body), headers={"content-type": "application/json"})


def test_report_is_idempotent_per_step_and_renews_lease(client):
    make_study(client)
    lease = claim(client)
    tid, tok = lease["trial_id"], lease["lease_token"]
    first = post(client, f"/trials/{tid}/report", {"lease_token": tok, "step": 1, "metrics": {"val_loss": 2.0}})
    assert first.status_code == 200 and first.json()["should_stop"] is False
    again = post(client, f"/trials/{tid}/report", {"lease_token": tok, "step": 1, "metrics": {"val_loss": 2.0}})
    assert again.status_code == 200  # a retry of the same report
    other = post(client, f"/trials/{tid}/report", {"lease_token": tok, "step": 1, "metrics": {"val_loss": 9.0}})
    assert other.status_code == 409 and other.json()["code"] == "conflicting_report" and other.json()["step"] == 1
    batch = post(client, f"/trials/{tid}/report", {"lease_token": tok, "reports": [
        {"step": 2, "metrics": {"val_loss": 1.5, "train_loss": 1.4}},
        {"step": 3, "metrics": {"val_loss": 1.2, "train_loss": 1.0}}]})
    assert batch.status_code == 200
    trial = client.get(f"{API}/trials/{tid}").json()
    assert [(r["step"], r["metrics"]["val_loss"]) for r in trial["reports"]] == [(1, 2.0), (2, 1.5), (3, 1.2)]
    assert trial["last_step"] == 3
    assert trial["lease_expires_at"] >= lease["lease_expires_at"]


def test_complete_twice_same_value_ok_different_value_409(client):
    make_study(client)
    lease = claim(client)
    tid, tok = lease["trial_id"], lease["lease_token"]
    r1 = post(client, f"/trials/{tid}/complete", {"lease_token": tok, "value": 0.25, "metrics": {"val_acc": 0.9}})
    assert r1.status_code == 200 and r1.json()["trial"]["state"] == "completed"
    r2 = post(client, f"/trials/{tid}/complete", {"lease_token": tok, "value": 0.25})
    assert r2.status_code == 200 and r2.json()["trial"]["value"] == 0.25
    r3 = post(client, f"/trials/{tid}/complete", {"lease_token": tok, "value": 0.5})
    assert r3.status_code == 409 and r3.json()["state"] == "completed"
    assert client.get(f"{API}/trials/{tid}").json()["value"] == 0.25


def test_complete_takes_value_from_metrics_or_last_report(client):
    make_study(client)
    a = claim(client)
    post(client, f"/trials/{a['trial_id']}/report", {"lease_token": a["lease_token"], "step": 1, "metrics": {"val_loss": 0.7}})
    r = post(client, f"/trials/{a['trial_id']}/complete", {"lease_token": a["lease_token"]})
    assert r.json()["trial"]["value"] == 0.7
    b = claim(client)
    r = post(client, f"/trials/{b['trial_id']}/complete", {"lease_token": b["lease_token"], "metrics": {"val_loss": 0.3}})
    assert r.json()["trial"]["value"] == 0.3
    c = claim(client)
    r = post(client, f"/trials/{c['trial_id']}/complete", {"lease_token": c["lease_token"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "value"]
    assert client.get(f"{API}/trials/{c['trial_id']}").json()["state"] == "running"


def test_calls_without_the_lease_are_409_naming_state(client):
    make_study(client)
    lease = claim(client)
    tid = lease["trial_id"]
    for path, extra in [("report", {"step": 1, "metrics": {"val_loss": 1.0}}), ("heartbeat", {}),
                        ("complete", {"value": 1.0}), ("fail", {"reason": "x"}), ("prune", {}), ("release", {})]:
        r = post(client, f"/trials/{tid}/{path}", {"lease_token": "not-the-token", **extra})
        assert r.status_code == 409, (path, r.text)
        assert r.json()["state"] == "running"
    post(client, f"/trials/{tid}/fail", {"lease_token": lease["lease_token"], "reason": "boom", "kind": "error"})
    r = post(client, f"/trials/{tid}/report", {"lease_token": lease["lease_token"], "step": 2, "metrics": {"val_loss": 1.0}})
    assert r.status_code == 409 and r.json()["state"] == "failed" and "failed" in r.json()["detail"]
    assert client.get(f"{API}/trials/{tid}").json()["reports"] == []
    assert post(client, "/trials/99999/report", {"lease_token": "t", "step": 1, "metrics": {}}).status_code == 404
    assert client.get(f"{API}/trials/99999").status_code == 404


@pytest.mark.parametrize("body, loc", [
    ({"step": -1, "metrics": {"val_loss": 1.0}}, ["body", "step"]),
    ({"step": 1, "metrics": {"val_loss": "high"}}, ["body", "metrics", "val_loss"]),
    ({"step": 1}, ["body"]),
    ({"metrics": {}}, ["body"]),
    ({"step": "one", "metrics": {}}, ["body", "step"]),
])
def test_invalid_report_is_422_and_stores_nothing(client, body, loc):
    make_study(client)
    lease = claim(client)
    r = post(client, f"/trials/{lease['trial_id']}/report", {"lease_token": lease["lease_token"], **body})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][: len(loc)] == loc
    trial = client.get(f"{API}/trials/{lease['trial_id']}").json()
    assert trial["reports"] == [] and trial["state"] == "running"


def test_bad_fail_kind_is_422(client):
    make_study(client)
    lease = claim(client)
    r = post(client, f"/trials/{lease['trial_id']}/fail", {"lease_token": lease["lease_token"], "kind": "meh"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "kind"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_report_ends_trial_as_diverged(client, bad):
    make_study(client)
    lease = claim(client)
    tid, tok = lease["trial_id"], lease["lease_token"]
    r = post(client, f"/trials/{tid}/report", {"lease_token": tok, "step": 1, "metrics": {"train_loss": bad, "val_loss": 1.0}})
    assert r.status_code == 200 and r.json()["should_stop"] is True and "diverged" in r.json()["reason"]
    trial = client.get(f"{API}/trials/{tid}").json()
    assert trial["state"] == "diverged" and trial["value"] is None and trial["fail_kind"] == "diverged"
    assert isinstance(trial["reports"][0]["metrics"]["train_loss"], str)


def test_non_finite_completion_is_diverged_and_never_best(client):
    make_study(client)
    good = claim(client)
    post(client, f"/trials/{good['trial_id']}/complete", {"lease_token": good["lease_token"], "value": 3.0})
    bad = claim(client)
    r = post(client, f"/trials/{bad['trial_id']}/complete", {"lease_token": bad["lease_token"], "value": float("-inf")})
    assert r.status_code == 200 and r.json()["trial"]["state"] == "diverged"
    study = client.get(f"{API}/studies/s").json()
    assert study["best_trial"]["id"] == good["trial_id"] and study["counts"]["diverged"] == 1


def test_expired_lease_requeues_then_fails_and_fences_old_holder(client):
    make_study(client, lease_seconds=1, max_retries=1)
    first = claim(client, worker="w1")
    time.sleep(1.8)  # lease 1 s, reaper every 0.2 s
    trial = client.get(f"{API}/trials/{first['trial_id']}").json()
    assert trial["state"] == "waiting" and trial["attempt"] == 1
    second = claim(client, worker="w2")
    assert second["trial_id"] == first["trial_id"] and second["params"] == first["params"]
    assert second["attempt"] == 1 and second["lease_token"] != first["lease_token"]
    # The first holder wakes up: everything it sends is refused, the new holder's work is untouched.
    r = post(client, f"/trials/{first['trial_id']}/complete", {"lease_token": first["lease_token"], "value": 0.0})
    assert r.status_code == 409 and "lease" in r.json()["detail"]
    assert client.get(f"{API}/trials/{first['trial_id']}").json()["worker_id"] == "w2"
    time.sleep(1.8)
    trial = client.get(f"{API}/trials/{first['trial_id']}").json()
    assert trial["state"] == "failed" and trial["fail_kind"] == "lease_expired"


def test_heartbeats_keep_the_lease(client):
    make_study(client, lease_seconds=2)  # beats every 0.3 s for 3 s: 1.7 s of margin on a loaded box
    lease = claim(client)
    for _ in range(10):
        time.sleep(0.3)
        r = post(client, f"/trials/{lease['trial_id']}/heartbeat", {"lease_token": lease["lease_token"]})
        assert r.status_code == 200 and r.json()["should_stop"] is False
    assert client.get(f"{API}/trials/{lease['trial_id']}").json()["state"] == "running"


def test_release_puts_trial_back_without_using_a_retry(client):
    make_study(client)
    lease = claim(client)
    r = post(client, f"/trials/{lease['trial_id']}/release", {"lease_token": lease["lease_token"]})
    assert r.json()["state"] == "waiting" and r.json()["attempt"] == 0
    again = claim(client, worker="w2")
    assert again["trial_id"] == lease["trial_id"] and again["attempt"] == 0


def test_complete_and_claim_next_in_one_request(client):
    make_study(client, max_trials=2)
    lease = claim(client)
    r = post(client, f"/trials/{lease['trial_id']}/complete", {
        "lease_token": lease["lease_token"], "value": 1.0,
        "reports": [{"step": 1, "metrics": {"val_loss": 1.2}}, {"step": 2, "metrics": {"val_loss": 1.0}}],
        "claim_next": {"worker_id": "w1", "study": "s"}})
    body = r.json()
    assert body["trial"]["state"] == "completed" and body["next"]["number"] == 1
    assert len(client.get(f"{API}/trials/{lease['trial_id']}").json()["reports"]) == 2
    nxt = body["next"]
    r = post(client, f"/trials/{nxt['trial_id']}/complete", {"lease_token": nxt["lease_token"], "value": 1.0,
                                                          "claim_next": {"worker_id": "w1", "study": "s"}})
    assert r.json()["next"] is None


def test_pruner_decision_comes_back_and_prune_confirms(client):
    make_study(client, max_trials=20, pruner={"type": "asha", "grace_period": 1, "reduction_factor": 2})
    good = []
    for v in (1.0, 1.1, 1.2):
        l = claim(client)
        post(client, f"/trials/{l['trial_id']}/report", {"lease_token": l["lease_token"], "step": 1, "metrics": {"val_loss": v}})
        good.append(l)
    bad = claim(client)
    r = post(client, f"/trials/{bad['trial_id']}/report", {"lease_token": bad["lease_token"], "step": 1, "metrics": {"val_loss": 50.0}})
    assert r.json()["should_stop"] is True and r.json()["reason"]
    hb = post(client, f"/trials/{bad['trial_id']}/heartbeat", {"lease_token": bad["lease_token"]})
    assert hb.json()["should_stop"] is True
    pr = post(client, f"/trials/{bad['trial_id']}/prune", {"lease_token": bad["lease_token"], "reason": "told to"})
    assert pr.json()["state"] == "pruned" and pr.json()["value"] == 50.0


def test_no_pruner_never_stops(client):
    make_study(client)
    lease = claim(client)
    for step, v in enumerate([1.0, 5.0, 50.0, 500.0], start=1):
        r = post(client, f"/trials/{lease['trial_id']}/report", {"lease_token": lease["lease_token"], "step": step, "metrics": {"val_loss": v}})
        assert r.json()["should_stop"] is False


def test_optimizer_failure_falls_back_to_random(client, monkeypatch):
    from tuneserve_service.domain.core import suggest

    real = suggest.get_optimizer

    class Broken:
        name = "tpe"

        def suggest(self, *a, **k):
            raise RuntimeError("engine exploded")

    monkeypatch.setattr(suggest, "get_optimizer", lambda m: Broken() if m == "tpe" else real(m))
    make_study(client, method="tpe")
    lease = claim(client)
    assert lease is not None and lease["method"] == "random"
    assert client.get(f"{API}/trials/{lease['trial_id']}").json()["method"] == "random"


def test_max_concurrent_limits_running_trials(client):
    make_study(client, max_concurrent=2, max_trials=10)
    a, b = claim(client), claim(client)
    assert a and b and claim(client) is None
    post(client, f"/trials/{a['trial_id']}/complete", {"lease_token": a["lease_token"], "value": 1.0})
    assert claim(client) is not None


def test_claim_any_study(client):
    make_study(client, "one", max_trials=1)
    make_study(client, "two", max_trials=1)
    got = {claim(client, None)["study"], claim(client, None)["study"]}
    assert got == {"one", "two"}
    assert claim(client, None) is None


def test_a_claim_hands_out_exactly_one_trial(client):
    make_study(client, max_trials=10)
    for lr in (0.1, 0.01, 0.001):
        client.post(f"{API}/studies/s/enqueue", json={"params": {"lr": lr, "dropout": 0.1, "optimizer": {"name": "sgd"}}})
    lease = claim(client)
    counts = client.get(f"{API}/studies/s").json()["counts"]
    assert lease["params"]["lr"] == 0.1
    assert counts["running"] == 1 and counts["waiting"] == 2


def test_the_lease_sweep_finishes_a_spent_study_an_ending_left_running(client):
    """An ending skips the finish check while its own read says the budget is unspent; one that
    raced a reservation of the last numbers could leave a spent study running: the sweep finishes it."""
    from sqlalchemy import text

    from tuneserve_service.domain.core.leases import reap_expired

    make_study(client, "spent", max_trials=1)
    lease = claim(client, "spent")
    r = client.post(f"/api/v1/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"],
                                                                          "value": 0.5})
    assert r.status_code == 200 and client.get("/api/v1/studies/spent").json()["state"] == "finished"
    db = client.app.state.db
    with db.transaction() as s:   # as if the last ending had seen the budget unspent
        s.execute(text("UPDATE studies SET state = 'running' WHERE name = 'spent'"))
    reap_expired(db)
    assert client.get("/api/v1/studies/spent").json()["state"] == "finished"
