"""Tokens and who may do what: the shared token, named admin and worker tokens (hashed at rest),
revocation, malformed headers, leases bound to the token that claimed them, and the loopback rule."""
from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tuneserve_service.auth import InsecureBind, Role, check_exposure, create_token, list_tokens, revoke_token
from tuneserve_service.config import Settings
from tuneserve_service.db.engine import Database
from tuneserve_service.errors import TokenNotFound
from tuneserve_service.main import create_app
from tests.helpers import study_body

API = "/api/v1"
SHARED = "shared-secret-token"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def app_factory(database_url):
    clients = []

    def make(**settings) -> TestClient:
        app = create_app(Settings(database_url=database_url, reaper_interval=0.2, token_cache_seconds=0, **settings))
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def admin(app_factory):
    """A server with the shared token; returns (client, headers of an admin)."""
    return app_factory(api_token=SHARED), bearer(SHARED)


def new_token(client, headers, name: str, role: str) -> str:
    r = client.post(f"{API}/tokens", json={"name": name, "role": role}, headers=headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"name", "role", "token", "created_at"} and body["role"] == role
    return body["token"]


def protected_routes(app) -> list[tuple[str, str]]:
    out = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith(API):
            concrete = path.replace("{name}", "s").replace("{trial_id}", "1")
            out += [(method.upper(), concrete) for method in operations]
    return out


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer ", "Basic c2hhcmVkOnRva2Vu", "bearer wrong-token", "Bearer " + SHARED + "x",
    "Token " + SHARED, "Bearer a b",
])
def test_missing_wrong_and_malformed_tokens_are_401(admin, header):
    client, _ = admin
    headers = {"authorization": header} if header is not None else {}
    r = client.get(f"{API}/studies", headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer" and r.json()["code"] == "unauthenticated"


def test_non_ascii_tokens_are_401_on_every_protected_route(admin):
    client, _ = admin
    routes = protected_routes(client.app)
    assert len(routes) >= 15
    for raw in ("Bearer tökén".encode("utf-8"), "Bearer tökén".encode("latin-1"), b"Bearer \xff\xfe\x00x",
                "Bearer 🔑".encode("utf-8")):
        for method, path in routes:
            r = client.request(method, path, headers={"authorization": raw}, json={})
            assert r.status_code == 401, (method, path, raw, r.status_code, r.text)


def test_shared_token_is_an_admin(admin):
    client, headers = admin
    assert client.post(f"{API}/studies", json=study_body("s"), headers=headers).status_code == 201
    assert client.get(f"{API}/studies/s", headers=headers).status_code == 200
    assert client.get("/healthz").status_code == 200  # the health check needs no token


def test_worker_tokens_run_trials_but_do_not_manage_studies_or_tokens(admin):
    client, adm = admin
    worker = bearer(new_token(client, adm, "gpu-1", "worker"))
    assert client.post(f"{API}/studies", json=study_body("s"), headers=adm).status_code == 201
    # What a worker does: read, claim, ask, heartbeat, report, complete, fail, prune, release.
    assert client.get(f"{API}/studies", headers=worker).status_code == 200
    lease = client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": "s"}, headers=worker).json()
    tid, tok = lease["trial_id"], lease["lease_token"]
    assert client.post(f"{API}/trials/{tid}/heartbeat", json={"lease_token": tok}, headers=worker).status_code == 200
    r = client.post(f"{API}/trials/{tid}/report", json={"lease_token": tok, "step": 1, "metrics": {"val_loss": 1.0}},
                    headers=worker)
    assert r.status_code == 200
    assert client.post(f"{API}/trials/{tid}/complete", json={"lease_token": tok, "value": 1.0},
                       headers=worker).status_code == 200
    asked = client.post(f"{API}/studies/s/ask", json={"count": 2}, headers=worker)
    assert asked.status_code == 200 and len(asked.json()) == 2
    a, b = asked.json()
    assert client.post(f"{API}/trials/{a['trial_id']}/fail", json={"lease_token": a["lease_token"]},
                       headers=worker).status_code == 200
    assert client.post(f"{API}/trials/{b['trial_id']}/release", json={"lease_token": b["lease_token"]},
                       headers=worker).status_code == 200
    # What it may not: create, change or delete studies, enqueue, manage tokens.
    before = client.get(f"{API}/studies/s", headers=adm).json()
    refused = [
        client.post(f"{API}/studies", json=study_body("t"), headers=worker),
        client.delete(f"{API}/studies/s", headers=worker),
        client.post(f"{API}/studies/s/pause", headers=worker),
        client.post(f"{API}/studies/s/stop", headers=worker),
        client.post(f"{API}/studies/s/enqueue", json={"params": {}}, headers=worker),
        client.post(f"{API}/tokens", json={"name": "x", "role": "admin"}, headers=worker),
        client.get(f"{API}/tokens", headers=worker),
        client.delete(f"{API}/tokens/gpu-1", headers=worker),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all(r.json()["code"] == "forbidden" for r in refused)
    after = client.get(f"{API}/studies/s", headers=adm).json()
    assert after == before and after["state"] == "running"  # nothing refused changed anything
    assert [t["name"] for t in client.get(f"{API}/tokens", headers=adm).json()] == ["gpu-1"]


def test_tokens_are_listed_without_secrets_stored_hashed_and_revoked_at_once(admin, database_url):
    client, adm = admin
    secret = new_token(client, adm, "ci", "admin")
    listed = client.get(f"{API}/tokens", headers=adm).json()
    assert [(t["name"], t["role"]) for t in listed] == [("ci", "admin")] and "token" not in listed[0]
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM api_tokens WHERE name = 'ci'")).scalar_one()
    engine.dispose()
    assert stored == hashlib.sha256(secret.encode()).hexdigest() and secret not in stored
    assert client.get(f"{API}/studies", headers=bearer(secret)).status_code == 200
    assert client.post(f"{API}/tokens", json={"name": "ci", "role": "worker"}, headers=adm).status_code == 409
    assert client.post(f"{API}/tokens", json={"name": "bad name", "role": "worker"}, headers=adm).status_code == 422
    assert client.post(f"{API}/tokens", json={"name": "x", "role": "root"}, headers=adm).status_code == 422
    assert client.delete(f"{API}/tokens/ci", headers=adm).status_code == 204
    assert client.get(f"{API}/studies", headers=bearer(secret)).status_code == 401
    assert client.delete(f"{API}/tokens/ci", headers=adm).status_code == 404


def test_a_lease_is_bound_to_the_token_that_claimed_it(admin):
    client, adm = admin
    a = bearer(new_token(client, adm, "worker-a", "worker"))
    b = bearer(new_token(client, adm, "worker-b", "worker"))
    assert client.post(f"{API}/studies", json=study_body("s"), headers=adm).status_code == 201
    lease = client.post(f"{API}/trials/claim", json={"worker_id": "a", "study": "s"}, headers=a).json()
    tid, tok = lease["trial_id"], lease["lease_token"]
    # B has stolen A's lease token, but not A's API token: every call on the trial is refused.
    for path, body in [("heartbeat", {}), ("report", {"step": 1, "metrics": {"val_loss": 5.0}}),
                       ("complete", {"value": 5.0}), ("fail", {"reason": "x"}), ("prune", {}), ("release", {})]:
        r = client.post(f"{API}/trials/{tid}/{path}", json={"lease_token": tok, **body}, headers=b)
        assert r.status_code == 403 and r.json()["code"] == "not_lease_holder", (path, r.text)
    trial = client.get(f"{API}/trials/{tid}", headers=adm).json()
    assert trial["state"] == "running" and trial["reports"] == [] and trial["worker_id"] == "a"
    # The admin token is another identity too: no one but the claimer acts on a lease.
    r = client.post(f"{API}/trials/{tid}/complete", json={"lease_token": tok, "value": 5.0}, headers=adm)
    assert r.status_code == 403
    assert client.post(f"{API}/trials/{tid}/complete", json={"lease_token": tok, "value": 1.0},
                       headers=a).status_code == 200
    # Once completed, only A's lease repeats the completion; B with the same lease token gets the state.
    again = client.post(f"{API}/trials/{tid}/complete", json={"lease_token": tok, "value": 1.0}, headers=b)
    assert again.status_code == 409 and again.json()["state"] == "completed"
    assert client.post(f"{API}/trials/{tid}/complete", json={"lease_token": tok, "value": 1.0},
                       headers=a).status_code == 200


def test_offline_tokens_from_a_plain_session(app_factory, database_url):
    db = Database(database_url, pool_size=1)
    try:
        with db.transaction() as s:
            secret = create_token(s, "first-admin", Role.ADMIN)
            create_token(s, "w1", "worker")
        with db.transaction() as s:
            assert [(t.name, t.role) for t in list_tokens(s)] == [("first-admin", Role.ADMIN), ("w1", Role.WORKER)]
        # A running server picks the database's tokens up: auth is on, the bootstrap token is admin.
        client = app_factory()
        assert client.get(f"{API}/studies").status_code == 401
        assert client.post(f"{API}/studies", json=study_body("s"), headers=bearer(secret)).status_code == 201
        with db.transaction() as s:
            revoke_token(s, "w1")
            with pytest.raises(TokenNotFound):
                revoke_token(s, "w1")
    finally:
        db.dispose()


def test_no_token_serves_loopback_only_unless_insecure(app_factory):
    local = app_factory()
    assert local.get(f"{API}/studies").status_code == 200  # no token configured, loopback: open
    exposed = TestClient(local.app, base_url="http://192.0.2.10:8000")  # arrives on a network address
    r = exposed.get(f"{API}/studies")
    assert r.status_code == 403 and "loopback" in r.json()["detail"]
    insecure = app_factory(insecure=True)
    assert TestClient(insecure.app, base_url="http://192.0.2.10:8000").get(f"{API}/studies").status_code == 200


def test_check_exposure_refuses_a_public_bind_without_auth(database_url):
    with pytest.raises(InsecureBind, match="--insecure"):
        check_exposure(Settings(database_url=database_url, host="0.0.0.0"))
    check_exposure(Settings(database_url=database_url, host="127.0.0.1"))
    check_exposure(Settings(database_url=database_url, host="::1"))
    check_exposure(Settings(database_url=database_url, host="0.0.0.0", insecure=True))
    check_exposure(Settings(database_url=database_url, host="0.0.0.0", api_token="t"))
    check_exposure(Settings(database_url=database_url, host="0.0.0.0"), has_tokens=True)
    with pytest.raises(InsecureBind):
        check_exposure(Settings(database_url=database_url), host="10.1.2.3")


def test_app_start_up_applies_the_exposure_check(database_url):
    app = create_app(Settings(database_url=database_url, host="0.0.0.0"))
    with pytest.raises(InsecureBind):
        with TestClient(app):
            pass


def test_no_token_means_no_first_token_over_rest(app_factory, database_url):
    """An anonymous caller on a server with no token cannot create the first one (it would lock
    every other caller out); the CLI on the server's host can, and its admin then creates more."""
    from typer.testing import CliRunner

    from tuneserve_service.cli import app as cli_app

    client = app_factory()
    r = client.post(f"{API}/tokens", json={"name": "mine", "role": "admin"})
    assert r.status_code == 403, r.text
    assert "tuneserve token create" in r.json()["detail"] and "TUNESERVE_API_TOKEN" in r.json()["detail"]
    assert client.get(f"{API}/studies").status_code == 200  # nobody was locked out
    assert client.get(f"{API}/tokens").json() == []

    made = CliRunner().invoke(cli_app, ["token", "create", "ops", "--role", "admin", "--database-url", database_url],
                              catch_exceptions=False)
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[0]
    assert client.get(f"{API}/studies").status_code == 401  # auth is on now
    worker = new_token(client, bearer(secret), "gpu-1", "worker")
    assert client.get(f"{API}/studies", headers=bearer(worker)).status_code == 200


def test_the_shared_token_may_create_the_first_named_token(admin):
    client, adm = admin
    new_token(client, adm, "first", "admin")
