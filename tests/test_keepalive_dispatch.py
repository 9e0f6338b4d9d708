"""The keep-alive dispatch (service/api/keepalive.py) answers exactly what FastAPI's router answers.

The same sequence of requests (ordinary heartbeats, reports and renewals, then every kind of bad or
refused one) runs twice from the same empty database: once with the dispatch, once with it off
(`keepalive_dispatch=False`: FastAPI's routing and dependencies, the reference). The answers must be
the same, status, body and the headers a client reads, with only the lease's expiry time (a clock
reading) compared by presence.
"""
from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from tests.support.databases import BACKENDS, truncate_all
from tuneserve_service.config import Settings
from tuneserve_service.main import create_app

SPACE = {"lr": {"min": 0.001, "max": 0.1, "distribution": "log_uniform_values"}}
SHARED = "keepalive-shared-token-for-tests"
HEADERS = ("content-type", "www-authenticate", "retry-after")


@pytest.fixture(params=BACKENDS)
def fresh_url(request, tmp_path):
    """A function that returns an empty migrated database of this backend, emptied again at each call."""
    calls = []

    def make() -> str:
        calls.append(1)
        if request.param == "sqlite":
            path = tmp_path / f"run{len(calls)}.db"
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
            return f"sqlite:///{path}"
        url = request.getfixturevalue("pg_session_url")
        truncate_all(url)
        return url

    return make


def _answer(response) -> tuple:
    body = response.content
    try:
        body = json.loads(body)
    except ValueError:
        pass
    expiries = []

    def strip(node):
        if isinstance(node, dict):
            if "lease_expires_at" in node:
                expiries.append(node["lease_expires_at"] is not None)
                node = {k: v for k, v in node.items() if k != "lease_expires_at"}
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return response.status_code, strip(body), expiries, {h: response.headers.get(h) for h in HEADERS}


def _run(url: str, dispatch: bool, token: str | None) -> list[tuple]:
    """Every request of the sequence, with its answer."""
    settings = Settings(database_url=url, keepalive_dispatch=dispatch, reaper_interval=3600,
                        **({"api_token": token} if token else {}))
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    out = []
    with TestClient(create_app(settings)) as c:
        def post(path, body=None, *, raw=None, headers=None):
            hdrs = {**auth, **(headers or {})}
            r = (c.post(path, content=raw, headers=hdrs) if raw is not None
                 else c.post(path, json=body, headers=hdrs))
            out.append((path, body if raw is None else raw, _answer(r)))
            return r

        before = _counts(c.get("/metrics", headers=auth).text)
        # the set-up's answers carry clock readings and random draws: not compared
        r = c.post("/api/v1/studies", json={"name": "ka", "parameters": SPACE, "lease_seconds": 600, "seed": 7}, headers=auth)
        assert r.status_code == 201, r.text
        leases = [c.post("/api/v1/trials/claim", json={"worker_id": "w", "study": "ka"}, headers=auth).json()
                  for _ in range(3)]
        (a, ta), (b, tb), (d, td) = [(x["trial_id"], x["lease_token"]) for x in leases]
        hb, rp = f"/api/v1/trials/{a}/heartbeat", f"/api/v1/trials/{a}/report"
        # ordinary requests
        post(hb, {"lease_token": ta})
        post(rp, {"lease_token": ta, "step": 1, "metrics": {"val_loss": 0.9, "train_loss": 1.1}})
        post(rp, {"lease_token": ta, "reports": [{"step": 2, "metrics": {"val_loss": 0.8}},
                                                 {"step": 3, "metrics": {"val_loss": 0.7}}]})
        post(hb, {"lease_token": ta})
        post(rp, {"lease_token": ta, "step": 3, "metrics": {"val_loss": 0.7}})        # the same step again
        post(rp, {"lease_token": ta, "step": 3, "metrics": {"val_loss": 0.5}})        # a conflicting one: 409
        post("/api/v1/leases/renew", {"leases": [{"trial_id": a, "lease_token": ta},
                                                 {"trial_id": b, "lease_token": "0" * 32},
                                                 {"trial_id": 99999, "lease_token": td}]})
        post(rp, {"lease_token": tb, "step": 1, "metrics": {"val_loss": 1e308}})
        post(rp, {"lease_token": tb, "step": 2, "metrics": {"val_loss": -1e308}})
        # refused by the domain: not the lease, no such trial, a diverged trial
        post(hb, {"lease_token": "f" * 32})
        post("/api/v1/trials/424242/heartbeat", {"lease_token": ta})
        post(f"/api/v1/trials/{d}/report", raw=b'{"lease_token": "%s", "step": 1, "metrics": {"val_loss": NaN}}'
             % td.encode(), headers={"content-type": "application/json"})
        post(f"/api/v1/trials/{d}/heartbeat", {"lease_token": td})                  # ended by the NaN: 409
        # bad input: validation, JSON, content type, ids, sizes
        post(hb, {"lease_token": ta, "extra": 1})
        post(hb, {})
        post(hb, {"lease_token": 12})
        post(rp, {"lease_token": ta, "step": -1, "metrics": {"val_loss": 1.0}})
        post(rp, {"lease_token": ta, "step": 1, "metrics": {"val_loss": 1.0}, "reports": [{"step": 2, "metrics": {}}]})
        post(rp, {"lease_token": ta, "step": 1, "metrics": {"val_loss": "low"}})
        post("/api/v1/leases/renew", {"leases": []})
        post("/api/v1/leases/renew", [1, 2])
        post(hb, raw=b"{not json", headers={"content-type": "application/json"})
        post(hb, raw=b"", headers={"content-type": "application/json"})
        post(hb, raw=b"null", headers={"content-type": "application/json"})
        post(hb, raw=json.dumps({"lease_token": ta}).encode(), headers={"content-type": "text/plain"})
        post(hb, raw=json.dumps({"lease_token": ta}).encode(), headers={"content-type": "application/json; charset=utf-8"})
        post("/api/v1/trials/0/heartbeat", {"lease_token": ta})
        post(f"/api/v1/trials/{2**31}/heartbeat", {"lease_token": ta})
        post("/api/v1/trials/00012/heartbeat", {"lease_token": ta})
        post("/api/v1/trials/-3/report", {"lease_token": ta})
        # authentication: no header, a wrong token
        if token:
            r = c.post(hb, json={"lease_token": ta})
            out.append((hb, "no token", _answer(r)))
            r = c.post(hb, json={"lease_token": ta}, headers={"Authorization": "Bearer wrong-token-xyz"})
            out.append((hb, "wrong token", _answer(r)))
            r = c.post("/api/v1/leases/renew", json={"leases": [{"trial_id": a, "lease_token": ta}]},
                       headers={"Authorization": "Basic abc"})
            out.append(("renew", "basic auth", _answer(r)))
        after = _counts(c.get("/metrics", headers=auth).text)
    # What the requests added to /metrics's counters (the registry is the process's: compare deltas).
    out.append(("metrics", "requests counted", {k: after[k] - before.get(k, 0) for k in after
                                                if after[k] != before.get(k, 0)}))
    return out


def _counts(exposition: str) -> dict[str, float]:
    """tuneserve_http_requests_total by label set, for the keep-alive routes."""
    found = {}
    for line in exposition.splitlines():
        if line.startswith("tuneserve_http_requests_total{") and any(
                word in line for word in ("/heartbeat", "/report", "/leases/renew")):
            labels, value = line.rsplit(" ", 1)
            found[labels.split("{", 1)[1].rstrip("}")] = float(value)
    return found


@pytest.mark.parametrize("token", [None, SHARED])
def test_dispatch_answers_as_the_router(fresh_url, token):
    reference = _run(fresh_url(), dispatch=False, token=token)
    dispatched = _run(fresh_url(), dispatch=True, token=token)
    assert len(dispatched) == len(reference)
    for (path, body, want), (_, _, got) in zip(reference, dispatched):
        assert got == want, f"POST {path} {body!r}"
    # The sequence did reach every answer it means to compare.
    statuses = {answer[0] for _, _, answer in reference[:-1]}
    assert {200, 404, 409, 422}.issubset(statuses)
    if token:
        assert 401 in statuses
    # Counted by route template: every heartbeat answered 200 under one label, whatever its trial id.
    sent = sum(1 for path, _, answer in dispatched[:-1] if path.endswith("/heartbeat") and answer[0] == 200)
    counted = dispatched[-1][2]
    assert counted['method="POST",route="/api/v1/trials/{trial_id}/heartbeat",status="200"'] == sent >= 3
