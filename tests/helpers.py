"""Small builders shared by the API tests."""
from __future__ import annotations

import json
import time
from typing import Any

from tuneserve._defaults import API_PREFIX

SPACE = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "dropout": {"min": 0.0, "max": 0.7},
    "optimizer": {"parameters": {"name": {"values": ["sgd", "adam"]}, "momentum": {"value": 0.9}}},
}


def study_body(name: str = "s", **overrides: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "method": "random",
        "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": SPACE,
        "max_trials": 10,
        "seed": 1,
    }
    body.update(overrides)
    return body


def make_study(client, name: str = "s", **overrides: Any) -> dict[str, Any]:
    r = client.post("/api/v1/studies", json=study_body(name, **overrides))
    assert r.status_code == 201, r.text
    return r.json()


def claim(client, study: str | None = "s", worker: str = "w1") -> dict[str, Any] | None:
    r = client.post("/api/v1/trials/claim", json={"worker_id": worker, "study": study})
    if r.status_code == 204:
        return None
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", poll: float = 0.1):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def post(client, path: str, body: Any = None):
    """POST a JSON body under the API prefix (the in-process TestClient or an httpx.Client)."""
    return client.post(API_PREFIX + path, content=json.dumps(body if body is not None else {}),
                       headers={"content-type": "application/json"})


def enqueue(client, params: dict[str, Any], study: str = "s") -> dict[str, Any]:
    """Enqueue one trial with these params; its read."""
    r = post(client, f"/studies/{study}/enqueue", {"params": params})
    assert r.status_code == 201, r.text
    return r.json()
