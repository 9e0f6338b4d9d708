"""`TuneClient`: the tuneserve API answering plain JSON (dicts), kept for code written before the
typed client. New code: `from tuneserve import Client` (the same calls, answering wire types).

Both share one transport (tuneserve/_transport.py: httpx, retries by tenacity honouring
Retry-After) and one set of errors: `ApiError` (4xx, with `status`, `code`, `detail`), `LeaseLost`
(409/404 on a held trial), `ServerUnavailable` (no answer, or 5xx, after the retry budget).
`Backoff` is the daemon's own sleep policy when idle or restarting a slot.
"""
from __future__ import annotations

import random
from typing import Any

from tuneserve.client import Client
from tuneserve.errors import ApiError, LeaseLost, ServerUnavailable

__all__ = ["TuneClient", "HeldTrial", "Backoff", "ApiError", "LeaseLost", "ServerUnavailable"]


class Backoff:
    """Exponential backoff with full jitter: sleep a random time in [0, min(cap, base * 2^n)]."""

    def __init__(self, base: float = 0.2, cap: float = 5.0):
        self.base, self.cap, self.attempt = base, cap, 0

    def next(self) -> float:
        delay = random.uniform(0, min(self.cap, self.base * 2 ** self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        # Never a zero sleep: a server that is down must not turn the worker into a busy loop.
        return max(delay, self.base / 4)

    def reset(self) -> None:
        self.attempt = 0


class TuneClient(Client):
    """`tuneserve.Client` with every answer left as the server's JSON (dicts and lists), and
    `base_url` as the first argument as before."""

    def __init__(self, base_url: str, token: str | None = None, **kw: Any):
        super().__init__(base_url, token or "", **kw)

    def _as(self, model: Any, data: Any) -> Any:
        return data

    def ask(self, name: str, count: int = 1, worker_id: str = "sdk") -> list["HeldTrial"]:
        leases = self.request("POST", f"/studies/{name}/ask", json={"count": count, "worker_id": worker_id})
        return [HeldTrial(self, lease) for lease in leases]


class HeldTrial:
    """A trial a TuneClient holds (from ask or claim): its lease (a dict) plus the calls that need it."""

    def __init__(self, client: TuneClient, lease: dict[str, Any]):
        self.client, self.lease = client, lease

    @property
    def id(self) -> int:
        return self.lease["trial_id"]

    @property
    def params(self) -> dict[str, Any]:
        return self.lease["params"]

    @property
    def token(self) -> str:
        return self.lease["lease_token"]

    def heartbeat(self) -> dict:
        return self.client.heartbeat(self.id, self.token)

    def report(self, step: int, **metrics: float) -> bool:
        """Returns False when the server says stop."""
        return not self.client.report(self.id, self.token, step, metrics).get("should_stop", False)

    def complete(self, value: float | None = None, **metrics: float) -> dict:
        return self.client.complete(self.id, self.token, value, metrics)["trial"]

    def prune(self, reason: str = "") -> dict:
        return self.client.prune(self.id, self.token, reason)

    def fail(self, reason: str, kind: str = "error") -> dict:
        return self.client.fail(self.id, self.token, reason, kind)

    def release(self) -> dict:
        return self.client.release(self.id, self.token)
