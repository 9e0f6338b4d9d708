"""The tuneserve REST API over httpx: the worker daemon's transport and the Python SDK.

    from workers.client import TuneClient
    client = TuneClient("http://127.0.0.1:8000")
    client.create_study({"name": "digits", "metric": {"name": "val_loss", "goal": "minimize"},
                         "method": "tpe", "parameters": {"lr": {"min": 1e-4, "max": 1e-1,
                         "distribution": "log_uniform_values"}}, "max_trials": 20})
    trial = client.ask("digits")[0]          # a HeldTrial: params, report(), complete(), ...
    trial.report(1, val_loss=0.3)
    trial.complete(0.3)

Answers are the server's JSON (dicts), so the client needs nothing of the service's code. Errors:
`ApiError` (4xx, with `status`, `code`, `detail`), `LeaseLost` (409/404 on a held trial: the trial is
someone else's now), `ServerUnavailable` (no answer, or 5xx, after the retry budget). Transport
errors and 5xx are retried with exponential backoff and full jitter; claim is the one call that is
not idempotent, and a claim whose answer is lost simply expires with its lease.
"""
from __future__ import annotations

import json as jsonlib
import math
import random
import threading
import time
from typing import Any, Callable

import httpx

API = "/api/v1"


class ApiError(Exception):
    def __init__(self, status: int, detail: Any, code: str | None = None):
        super().__init__(f"HTTP {status}: {detail}" + (f" ({code})" if code else ""))
        self.status, self.detail, self.code = status, detail, code


class LeaseLost(ApiError):
    """The server no longer lets this caller act on the trial (lease expired or taken over)."""


class ServerUnavailable(Exception):
    """No usable answer from the server within the retry budget."""


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


class TuneClient:
    """A client for one server. `retry_seconds`: how long a call keeps retrying an unreachable
    server (None: forever). `cancel`: an Event that, once set, stops the retrying early."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0,
                 retry_seconds: float | None = 30.0, backoff_cap: float = 5.0,
                 cancel: threading.Event | None = None,
                 on_retry: Callable[[str, Exception, float], None] | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self.retry_seconds, self.backoff_cap = retry_seconds, backoff_cap
        self.cancel = cancel or threading.Event()
        self.on_retry = on_retry

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "TuneClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                content: bytes | None = None, headers: dict[str, str] | None = None,
                held: bool = False, retry_seconds: float | None | str = "default",
                cancel: threading.Event | None = None) -> Any:
        """One API call with retries. `held`: the call is about a trial this caller holds, so 409
        and 404 mean the lease is lost. `retry_seconds` and `cancel` override the client's for this
        call. Returns the decoded JSON, or None for 204."""
        budget = self.retry_seconds if retry_seconds == "default" else retry_seconds
        cancel = cancel or self.cancel
        if json is not None:
            # NaN and infinities go out as JSON's NaN/Infinity tokens (httpx refuses them): a
            # non-finite loss is information the server acts on (the trial ends as diverged).
            content = jsonlib.dumps(json, allow_nan=True).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
        deadline = math.inf if budget is None else time.monotonic() + budget
        backoff = Backoff(cap=self.backoff_cap)
        while True:
            try:
                resp = self.http.request(method, API + path, params=params, content=content, headers=headers)
                if resp.status_code < 500:
                    break
                error: Exception = ServerUnavailable(f"HTTP {resp.status_code} from {method} {path}")
            except httpx.TransportError as exc:
                error = exc
            delay = backoff.next()
            if cancel.is_set() or time.monotonic() + delay > deadline:
                raise ServerUnavailable(f"{method} {path}: {error}") from error
            if self.on_retry is not None:
                self.on_retry(f"{method} {path}", error, delay)
            cancel.wait(delay)
        if resp.status_code == 204:
            return None
        if resp.status_code >= 400:
            body = _json_or_text(resp)
            detail = body.get("detail", body) if isinstance(body, dict) else body
            code = body.get("code") if isinstance(body, dict) else None
            cls = LeaseLost if held and resp.status_code in (404, 409) else ApiError
            raise cls(resp.status_code, detail, code)
        return resp.json()

    def health(self) -> bool:
        try:
            return self.http.get("/healthz").json().get("ok") is True
        except (httpx.HTTPError, ValueError):
            return False

    # --- studies --------------------------------------------------------------------------------

    def create_study(self, spec: dict[str, Any] | None = None, **fields: Any) -> dict:
        """POST /studies with a StudyCreate document (a dict, keyword fields, or both)."""
        return self.request("POST", "/studies", json={**(spec or {}), **fields})

    def create_study_yaml(self, document: str) -> dict:
        """POST /studies with a W&B sweep document as YAML text."""
        return self.request("POST", "/studies", content=document.encode(),
                            headers={"Content-Type": "application/yaml"})

    def list_studies(self, state: str | None = None) -> list[dict]:
        return self.request("GET", "/studies", params={"state": state} if state else None)

    def get_study(self, name: str) -> dict:
        return self.request("GET", f"/studies/{name}")

    def delete_study(self, name: str) -> None:
        self.request("DELETE", f"/studies/{name}")

    def pause_study(self, name: str) -> dict:
        return self.request("POST", f"/studies/{name}/pause")

    def resume_study(self, name: str) -> dict:
        return self.request("POST", f"/studies/{name}/resume")

    def stop_study(self, name: str) -> dict:
        return self.request("POST", f"/studies/{name}/stop")

    def enqueue(self, name: str, params: dict[str, Any]) -> dict:
        return self.request("POST", f"/studies/{name}/enqueue", json={"params": params})

    def ask(self, name: str, count: int = 1, worker_id: str = "sdk") -> list["HeldTrial"]:
        leases = self.request("POST", f"/studies/{name}/ask", json={"count": count, "worker_id": worker_id})
        return [HeldTrial(self, lease) for lease in leases]

    def trials(self, name: str, state: str | None = None, limit: int | None = None,
               offset: int | None = None) -> dict:
        query = {k: v for k, v in {"state": state, "limit": limit, "offset": offset}.items() if v is not None}
        return self.request("GET", f"/studies/{name}/trials", params=query or None)

    def get_trial(self, trial_id: int) -> dict:
        return self.request("GET", f"/trials/{trial_id}")

    # --- the worker protocol --------------------------------------------------------------------

    def claim(self, worker_id: str, study: str | None = None, **kw: Any) -> dict | None:
        """A TrialLease, or None when there is no work."""
        return self.request("POST", "/trials/claim", json={"worker_id": worker_id, "study": study}, **kw)

    def heartbeat(self, trial_id: int, lease_token: str, **kw: Any) -> dict:
        return self.request("POST", f"/trials/{trial_id}/heartbeat", json={"lease_token": lease_token},
                            held=True, **kw)

    def report(self, trial_id: int, lease_token: str, step: int, metrics: dict[str, float], **kw: Any) -> dict:
        return self.request("POST", f"/trials/{trial_id}/report",
                            json={"lease_token": lease_token, "step": step, "metrics": metrics}, held=True, **kw)

    def report_many(self, trial_id: int, lease_token: str, reports: list[dict[str, Any]], **kw: Any) -> dict:
        """`reports`: [{"step": int, "metrics": {...}}, ...]"""
        return self.request("POST", f"/trials/{trial_id}/report",
                            json={"lease_token": lease_token, "reports": reports}, held=True, **kw)

    def complete(self, trial_id: int, lease_token: str, value: float | None = None,
                 metrics: dict[str, float] | None = None, claim_next: dict[str, Any] | None = None,
                 **kw: Any) -> dict:
        """`{"trial": TrialRead, "next": TrialLease or None}`; claim_next = {"worker_id", "study"}."""
        body = {"lease_token": lease_token, "value": value, "metrics": metrics or {}, "claim_next": claim_next}
        return self.request("POST", f"/trials/{trial_id}/complete", json=body, held=True, **kw)

    def prune(self, trial_id: int, lease_token: str, reason: str = "", **kw: Any) -> dict:
        return self.request("POST", f"/trials/{trial_id}/prune",
                            json={"lease_token": lease_token, "reason": reason}, held=True, **kw)

    def fail(self, trial_id: int, lease_token: str, reason: str, kind: str = "error", **kw: Any) -> dict:
        return self.request("POST", f"/trials/{trial_id}/fail",
                            json={"lease_token": lease_token, "reason": reason, "kind": kind}, held=True, **kw)

    def release(self, trial_id: int, lease_token: str, **kw: Any) -> dict:
        return self.request("POST", f"/trials/{trial_id}/release", json={"lease_token": lease_token},
                            held=True, **kw)


class HeldTrial:
    """A trial this client holds (from ask or claim): its lease plus the calls that need it."""

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


def _json_or_text(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text
