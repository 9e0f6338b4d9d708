"""The cheap keep-alive (issue 21): a heartbeat is one fenced UPDATE, a report renews the lease in
the same statement that reads its study, POST /leases/renew renews several leases in one UPDATE and
answers each one's verdict, and a known token costs no database read per request."""
from __future__ import annotations

import contextlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from tuneserve_service.config import Settings
from tuneserve_service.main import create_app
from tests.helpers import claim, make_study

API = "/api/v1"


@contextlib.contextmanager
def statements(client):
    """The SQL statements the app's engine runs inside the block (transaction control left out)."""
    seen: list[str] = []
    db = client.app.state.db
    engines = [e for e in (db.engine, db.autocommit_engine) if e is not None]

    def record(conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            seen.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def renew(client, leases, headers=None):
    r = client.post(f"{API}/leases/renew", json={"leases": leases}, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()["leases"]


def test_renew_answers_each_lease_in_order_with_its_verdict(client):
    make_study(client, lease_seconds=60)
    a, b = claim(client), claim(client, worker="w2")
    other_token = "0" * 32
    out = renew(client, [
        {"trial_id": a["trial_id"], "lease_token": a["lease_token"]},
        {"trial_id": b["trial_id"], "lease_token": other_token},
        {"trial_id": 999_999, "lease_token": other_token},
        {"trial_id": b["trial_id"], "lease_token": b["lease_token"]},
    ])
    assert [(v["trial_id"], v["held"], v["should_stop"], v["error"]) for v in out] == [
        (a["trial_id"], True, False, None),
        (b["trial_id"], False, True, "trial_not_running"),
        (999_999, False, True, "trial_not_found"),
        (b["trial_id"], True, False, None),
    ]
    assert out[0]["lease_expires_at"] >= a["lease_expires_at"] and out[3]["lease_expires_at"] >= b["lease_expires_at"]
    # A paused study: every held lease is told to stop, as a heartbeat would be.
    assert client.post(f"{API}/studies/s/pause").status_code == 200
    out = renew(client, [{"trial_id": a["trial_id"], "lease_token": a["lease_token"]}])
    assert out[0]["held"] is True and out[0]["should_stop"] is True and out[0]["stop_kind"] == "study"
    # A completed trial's lease is not held any more.
    r = client.post(f"{API}/trials/{b['trial_id']}/complete", json={"lease_token": b["lease_token"], "value": 0.5})
    assert r.status_code == 200
    out = renew(client, [{"trial_id": b["trial_id"], "lease_token": b["lease_token"]}])
    assert out[0]["held"] is False and out[0]["error"] == "trial_not_running"


def test_renew_is_refused_for_bad_input_naming_the_field(client):
    r = client.post(f"{API}/leases/renew", json={"leases": []})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "leases"
    r = client.post(f"{API}/leases/renew", json={"leases": [{"trial_id": 0, "lease_token": "x"}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "trial_id"


@pytest.fixture
def quiet_client(database_url):
    """The app with its lease sweep far off, so the statements counted are the requests' own."""
    app = create_app(Settings(database_url=database_url, reaper_interval=60))
    with TestClient(app) as c:
        yield c


def test_heartbeat_is_one_update_and_a_report_two_statements(quiet_client):
    client = quiet_client
    make_study(client, lease_seconds=60)
    lease = claim(client)
    tid, tok = lease["trial_id"], lease["lease_token"]
    with statements(client) as seen:
        r = client.post(f"{API}/trials/{tid}/heartbeat", json={"lease_token": tok})
    assert r.status_code == 200 and r.json()["should_stop"] is False
    assert len(seen) == 1 and seen[0].lstrip().upper().startswith("UPDATE TRIALS"), seen
    with statements(client) as seen:
        out = renew(client, [{"trial_id": tid, "lease_token": tok}])
    assert out[0]["held"] is True and len(seen) == 1 and seen[0].lstrip().upper().startswith("UPDATE TRIALS")
    with statements(client) as seen:
        r = client.post(f"{API}/trials/{tid}/report", json={"lease_token": tok, "step": 1, "metrics": {"val_loss": 1.0}})
    assert r.status_code == 200 and r.json()["needs_heartbeat"] is True  # no provisional diagnosis yet
    assert [s.lstrip().split()[0].upper() for s in seen] == ["UPDATE", "INSERT"], seen
    # The next renewal brings news (a step since the stored diagnosis): the diagnosis is refreshed ...
    with statements(client) as seen:
        out = renew(client, [{"trial_id": tid, "lease_token": tok}])
    assert out[0]["diagnosis"]["step"] == 1 and len(seen) > 1
    # ... and then, for PROVISIONAL_EVERY seconds, a report asks for no heartbeat, and one is one UPDATE.
    r = client.post(f"{API}/trials/{tid}/report", json={"lease_token": tok, "step": 2, "metrics": {"val_loss": 0.9}})
    assert r.status_code == 200 and r.json()["needs_heartbeat"] is False
    with statements(client) as seen:
        r = client.post(f"{API}/trials/{tid}/heartbeat", json={"lease_token": tok})
    assert r.status_code == 200 and len(seen) == 1, seen


@pytest.fixture
def token_server(database_url):
    app = create_app(Settings(database_url=database_url, reaper_interval=60, api_token="shared-admin-token"))
    with TestClient(app) as c:
        yield c


def test_a_known_token_costs_no_database_read_per_request(token_server):
    client = token_server
    admin = {"authorization": "Bearer shared-admin-token"}
    r = client.post(f"{API}/tokens", json={"name": "gpu-box", "role": "worker"}, headers=admin)
    assert r.status_code == 201
    worker = {"authorization": f"Bearer {r.json()['token']}"}
    assert client.post(f"{API}/studies", json={"name": "s", "method": "random", "parameters": {"x": {"min": 0, "max": 1}},
                                               "lease_seconds": 60}, headers=admin).status_code == 201
    lease = client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": "s"}, headers=worker).json()
    with statements(client) as seen:
        for _ in range(5):
            r = client.post(f"{API}/trials/{lease['trial_id']}/heartbeat", json={"lease_token": lease["lease_token"]},
                            headers=worker)
            assert r.status_code == 200
        out = renew(client, [{"trial_id": lease["trial_id"], "lease_token": lease["lease_token"]}], worker)
    assert out[0]["held"] is True
    assert not [s for s in seen if "api_tokens" in s], seen
    assert len(seen) == 6
    # The lease is bound to the token that claimed it: the admin's renewal is refused.
    out = renew(client, [{"trial_id": lease["trial_id"], "lease_token": lease["lease_token"]}], admin)
    assert out[0]["held"] is False and out[0]["error"] == "not_lease_holder"
