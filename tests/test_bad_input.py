"""No input produces a 500: a battery of malformed and extreme requests against every route."""
from __future__ import annotations

import json

import pytest

from tests.helpers import claim, make_study

API = "/api/v1"
HUGE = 2**70


def send(client, method, path, body=None, raw=None):
    if raw is not None:
        return client.request(method, API + path, content=raw, headers={"content-type": "application/json"})
    if body is None:
        return client.request(method, API + path)
    return client.request(method, API + path, content=json.dumps(body), headers={"content-type": "application/json"})


def test_extreme_and_malformed_requests_never_500(client):
    make_study(client, max_trials=50)
    lease = claim(client)
    tid, tok = lease["trial_id"], lease["lease_token"]
    cases = [
        ("get", f"/trials/{HUGE}", None, None),
        ("get", "/trials/abc", None, None),
        ("get", "/trials/-1", None, None),
        ("post", f"/trials/{HUGE}/report", {"lease_token": tok, "step": 1, "metrics": {}}, None),
        ("post", f"/trials/{tid}/report", {"lease_token": tok, "step": HUGE, "metrics": {}}, None),
        ("post", f"/trials/{tid}/report", {"lease_token": tok, "step": 1, "metrics": {"val_loss": HUGE ** 20}}, None),
        ("post", f"/trials/{tid}/report", {"lease_token": tok, "step": 1, "metrics": {"x" * 5000: 1.0}}, None),
        ("post", f"/trials/{tid}/report", {"lease_token": tok, "step": 1, "metrics": [1, 2]}, None),
        ("post", f"/trials/{tid}/report", None, b"\xff\xfe garbage"),
        ("post", f"/trials/{tid}/report", None, b""),
        ("post", f"/trials/{tid}/report", {"lease_token": "x" * 10_000, "step": 1, "metrics": {}}, None),
        ("post", f"/trials/{tid}/complete", {"lease_token": tok, "value": "1.0e999"}, None),
        ("post", f"/trials/{tid}/complete", {"lease_token": tok, "value": HUGE ** 20}, None),
        ("post", f"/trials/{tid}/heartbeat", {"lease_token": None}, None),
        ("post", "/trials/claim", {"worker_id": "", "study": None}, None),
        ("post", "/trials/claim", {"worker_id": "w", "study": "x" * 1000}, None),
        ("post", "/studies/s/ask", {"count": HUGE}, None),
        ("post", "/studies/s/enqueue", {"params": {"lr": HUGE ** 20}}, None),
        ("post", "/studies/s/enqueue", {"params": {"lr": {"a": {"b": {"c": 1}}}}}, None),
        ("post", "/studies/s/enqueue", {"params": "lr=1"}, None),
        ("get", "/studies/s/trials?limit=99999999999999999999", None, None),
        ("get", "/studies/s/trials?offset=-5", None, None),
        ("post", "/studies", {"name": "n", "parameters": {"lr": {"min": HUGE ** 20, "max": HUGE ** 21}}}, None),
        ("post", "/studies", {"name": "n", "parameters": {"lr": {"distribution": "log_uniform", "min": 0, "max": 1e6}}}, None),
        ("post", "/studies", {"name": "n", "parameters": {"a": {"parameters": {}}}}, None),
        ("post", "/studies", {"name": "n", "seed": HUGE, "parameters": {"a": {"value": 1}}}, None),
        ("post", "/studies", {"name": "n" * 500, "parameters": {"a": {"value": 1}}}, None),
        ("post", "/studies", {"name": "n", "parameters": {"a": {"values": [{"x": 1}]}}}, None),
        ("post", "/studies", {"name": "n", "parameters": {"a": {"min": 0, "max": 1, "q": 0}}}, None),
        ("post", "/studies", {"name": "n", "parameters": None}, None),
    ]
    for method, path, body, raw in cases:
        r = send(client, method, path, body, raw)
        assert r.status_code < 500, (method, path, body, r.status_code, r.text)
        assert r.status_code in (404, 409, 422, 200, 201, 204), (path, r.status_code)
    # None of it touched the trial that is running.
    trial = client.get(f"{API}/trials/{tid}").json()
    assert trial["state"] in ("running", "diverged") and trial["value"] is None


@pytest.mark.parametrize("value", [float("inf"), 1e308 * 10])
def test_overflowing_values_are_divergence_not_errors(client, value):
    make_study(client)
    lease = claim(client)
    r = send(client, "post", f"/trials/{lease['trial_id']}/complete", {"lease_token": lease["lease_token"], "value": value})
    assert r.status_code == 200 and r.json()["trial"]["state"] == "diverged"
