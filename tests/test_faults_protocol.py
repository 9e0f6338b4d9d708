"""The protocol's promises when things go wrong, in-process on both backends: late and forged
completions, reservations that survive a failure before their params are drawn (the budget stays
exact), database faults answered 503 + Retry-After, dead pooled connections replaced unseen, and
per-trial random streams from a seed sequence (neighbouring seeds share no points)."""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tuneserve_service.config import Settings
from tuneserve_service.domain.core import suggest
from tuneserve_service.main import create_app
from tuneserve_service.store import trials as trial_store
from tests.helpers import claim, make_study, wait_for

API = "/api/v1"


def post(client, path, body):
    return client.post(API + path, content=json.dumps(body), headers={"content-type": "application/json"})



def trials_of(client, study: str = "s") -> list[dict]:
    return client.get(f"{API}/studies/{study}/trials", params={"limit": 1000}).json()["items"]


def lengthen_leases(database_url: str, seconds: float = 120.0) -> None:
    """After a 1 s lease has run out on purpose, later claims get a long one: the runs that follow
    must not expire between their claim and their last request on a loaded CI box (a 409 there
    once failed CI)."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE studies SET lease_seconds = :s"), {"s": seconds})
    engine.dispose()


def test_late_and_forged_completions_are_409_naming_the_state(client, database_url):
    make_study(client, lease_seconds=1, max_retries=3)
    a = claim(client, worker="a")
    tid = a["trial_id"]
    wait_for(lambda: client.get(f"{API}/trials/{tid}").json()["state"] == "waiting", 15, "the lease to run out")
    lengthen_leases(database_url)
    b = claim(client, worker="b")
    assert b["trial_id"] == tid
    assert post(client, f"/trials/{tid}/complete", {"lease_token": b["lease_token"], "value": 0.5}).status_code == 200
    # A wakes up and completes with its stale lease, with B's value or another; a forger tries too.
    for token, value in [(a["lease_token"], 0.5), (a["lease_token"], 0.9), ("f" * 32, 0.5), ("x", 0.5)]:
        r = post(client, f"/trials/{tid}/complete", {"lease_token": token, "value": value})
        assert r.status_code == 409 and r.json()["state"] == "completed", (token, r.text)
    # B's own retry (its answer was lost) is accepted; B changing its value is not.
    assert post(client, f"/trials/{tid}/complete", {"lease_token": b["lease_token"], "value": 0.5}).status_code == 200
    r = post(client, f"/trials/{tid}/complete", {"lease_token": b["lease_token"], "value": 0.7})
    assert r.status_code == 409 and r.json()["code"] == "conflicting_completion"
    trial = client.get(f"{API}/trials/{tid}").json()
    assert trial["value"] == 0.5 and trial["worker_id"] == "b"


def test_a_retried_run_rewrites_its_steps_but_a_run_cannot_contradict_itself(client, database_url):
    make_study(client, lease_seconds=1, max_retries=3)
    a = claim(client, worker="a")
    tid = a["trial_id"]
    for step in (1, 2):
        post(client, f"/trials/{tid}/report", {"lease_token": a["lease_token"], "step": step, "metrics": {"val_loss": 9.0}})
    wait_for(lambda: client.get(f"{API}/trials/{tid}").json()["state"] == "waiting", 15, "the lease to run out")
    lengthen_leases(database_url)
    b = claim(client, worker="b")
    r = post(client, f"/trials/{tid}/report", {"lease_token": b["lease_token"], "step": 1, "metrics": {"val_loss": 1.0}})
    assert r.status_code == 200  # the retry started over: its step 1 replaces the lost run's
    r = post(client, f"/trials/{tid}/report", {"lease_token": b["lease_token"], "step": 1, "metrics": {"val_loss": 2.0}})
    assert r.status_code == 409 and r.json()["code"] == "conflicting_report"
    r = post(client, f"/trials/{tid}/report", {"lease_token": b["lease_token"], "reports": [
        {"step": 3, "metrics": {"val_loss": 1.0}}, {"step": 3, "metrics": {"val_loss": 1.5}}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "reports", 1, "step"]
    reports = client.get(f"{API}/trials/{tid}").json()["reports"]
    assert [(x["step"], x["metrics"]["val_loss"]) for x in reports] == [(1, 1.0), (2, 9.0)]


@pytest.mark.parametrize("where", ["draw", "fill"])
def test_a_failure_between_reservation_and_fill_loses_nothing(client, database_url, monkeypatch, where):
    make_study(client, method="tpe", max_trials=6, lease_seconds=1, max_retries=0)
    boom = OperationalError("UPDATE trials ...", {}, Exception("server closed the connection unexpectedly"))
    calls = {"n": 0}
    target = (suggest, "compute") if where == "draw" else (trial_store, "fill_drawn")
    original = getattr(*target)

    def fail_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise boom
        return original(*args, **kwargs)

    monkeypatch.setattr(*target, fail_once)
    r = client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": "s"})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json()["code"] == "database_unavailable"
    (orphan,) = trials_of(client)
    assert orphan["state"] == "running" and orphan["params"] == {} and orphan["number"] == 0
    # Its lease runs out; it goes back to the queue without using a retry (max_retries is 0), and
    # the next claim draws it.
    wait_for(lambda: trials_of(client)[0]["state"] == "waiting", 15, "the reservation to be requeued")
    lengthen_leases(database_url)
    completed = 0
    while completed < 6:
        lease = claim(client, worker="w")
        assert lease is not None and lease["params"] != {}
        assert post(client, f"/trials/{lease['trial_id']}/complete",
                    {"lease_token": lease["lease_token"], "value": 1.0}).status_code == 200
        completed += 1
    assert claim(client) is None
    items = trials_of(client)
    assert sorted(t["number"] for t in items) == list(range(6))
    assert all(t["state"] == "completed" and t["attempt"] == 0 for t in items)
    assert client.get(f"{API}/studies/s").json()["state"] == "finished"


def test_database_errors_are_503_with_retry_after_never_500(client, monkeypatch, caplog):
    make_study(client)
    lease = claim(client)

    def down(*_a, **_k):
        raise OperationalError("UPDATE trials SET ... WHERE lease_token = ?", {"b_token": lease["lease_token"]},
                               Exception("connection refused"), hide_parameters=True)

    monkeypatch.setattr(trial_store, "touch_held", down)
    with caplog.at_level(logging.DEBUG):
        r = post(client, f"/trials/{lease['trial_id']}/heartbeat", {"lease_token": lease["lease_token"]})
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert lease["lease_token"] not in r.text
    assert "database unavailable" in caplog.text and lease["lease_token"] not in caplog.text


def test_an_unusable_sqlite_file_is_503(tmp_path):
    url = f"sqlite:///{tmp_path / 'broken.db'}"
    app = create_app(Settings(database_url=url, reaper_interval=0.2, db_busy_timeout=0.5))
    with TestClient(app) as c:
        make_study(c)
        (tmp_path / "broken.db").write_bytes(b"this is not a database" * 1000)
        app.state.db.engine.dispose()  # new connections open the damaged file
        r = c.get(f"{API}/studies/s")
        assert r.status_code == 503 and r.headers["retry-after"]


def test_a_locked_sqlite_database_is_503_then_recovers(tmp_path):
    path = tmp_path / "locked.db"
    app = create_app(Settings(database_url=f"sqlite:///{path}", reaper_interval=0.2, db_busy_timeout=0.5))
    with TestClient(app) as c:
        make_study(c)
        other = sqlite3.connect(path, isolation_level=None, timeout=5)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            t0 = time.monotonic()
            r = c.post(f"{API}/trials/claim", json={"worker_id": "w", "study": "s"})
            assert r.status_code == 503 and r.headers["retry-after"]
            assert time.monotonic() - t0 < 5  # bounded by the busy timeout, not hung
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert claim(c) is not None


@pytest.fixture
def pg_client(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL connection handling")
    app = create_app(Settings(database_url=database_url, reaper_interval=30))
    with TestClient(app) as c:
        yield c


def _terminate_connections(url: str, reason_application: str | None = None) -> int:
    """pg_terminate_backend on every connection to this test's own database except ours."""
    name = make_url(url).database
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        n = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": name}).scalar_one()
    admin.dispose()
    return n


def test_dead_pooled_connections_are_replaced_unseen(pg_client, database_url):
    make_study(pg_client, max_trials=100)
    # Fill the pool with several connections, all idle afterwards.
    threads = [threading.Thread(target=lambda: claim(pg_client)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _terminate_connections(database_url) >= 1
    time.sleep(0.3)  # the server's goodbye reaches the pooled sockets
    for _ in range(10):
        lease = claim(pg_client)
        assert lease is not None
        r = post(pg_client, f"/trials/{lease['trial_id']}/complete", {"lease_token": lease["lease_token"], "value": 1.0})
        assert r.status_code == 200, r.text


def test_neighbouring_seeds_share_no_points(client):
    """Seeds s and s+1 (and 0 and 8) once gave mostly the same trials: seed + number."""
    def points(name: str, method: str, seed: int, n: int) -> set[tuple]:
        make_study(client, name, method=method, seed=seed, max_trials=n)
        got = client.post(f"{API}/studies/{name}/ask", json={"count": n}).json()
        assert len(got) == n
        return {json.dumps(t["params"], sort_keys=True) for t in got}

    random_0, random_1, random_8 = (points(f"r{s}", "random", s, 60) for s in (0, 1, 8))
    assert len(random_0) == 60 and not random_0 & random_1 and not random_0 & random_8
    tpe_3, tpe_4 = (points(f"t{s}", "tpe", s, 10) for s in (3, 4))
    assert len(tpe_3) == 10 and not tpe_3 & tpe_4


def test_trial_seeds_come_from_a_seed_sequence():
    seeds = {suggest.trial_seed(s, n, "random") for s in range(20) for n in range(20)}
    assert len(seeds) == 400  # (s, n + 1) and (s + 1, n) no longer collide
    assert suggest.trial_seed(5, 7, "tpe") == suggest.trial_seed(5, 7, "tpe")
    assert suggest.trial_seed(5, 7, "tpe") != suggest.trial_seed(5, 7, "random")
