"""The one HTTP transport to the tuneserve API, used by the SDK (tuneserve.Client), the command line
and the worker daemon: httpx for the call, tenacity for the retry policy, the bearer token, the
/api/v1 prefix (tuneserve/_defaults.py), and error answers mapped to tuneserve.errors.

Retried: connection errors and timeouts (httpx.TransportError) and 5xx answers; a 503's Retry-After
is honoured (capped at RETRY_AFTER_CAP), otherwise the wait is exponential with full jitter and a
floor, so a server that is down never turns a caller into a busy loop. The budget is wall time
(`retry_seconds`, None for ever); a `cancel` Event ends the retrying early. 4xx answers are never
retried: they become the ApiError subclasses of tuneserve.errors. `retry_seconds=0` makes one attempt
(the command line: a person at a prompt wants the answer, or why not, now).
"""
from __future__ import annotations

import json as jsonlib
import threading
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import httpx
import tenacity

from tuneserve._defaults import API_PREFIX
from tuneserve.errors import ServerUnavailable, TuneserveError, api_error

RETRY_AFTER_CAP = 60.0
BACKOFF_BASE = 0.2

OnRetry = Callable[[str, Exception, float], None]


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None,
                 detail: Any = None):
        super().__init__(message)
        self.retry_after, self.status, self.detail = retry_after, status, detail


class _Cancelled(Exception):
    pass


def retry_after_seconds(resp: httpx.Response) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date; None when absent or unreadable."""
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class _Wait:
    """Retry-After when the server sent one, else full jitter in [0, min(cap, base * 2^n)], never
    below base/4."""

    def __init__(self, cap: float):
        self.jitter = tenacity.wait_random_exponential(multiplier=BACKOFF_BASE, max=cap)

    def __call__(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, RETRY_AFTER_CAP)
        return max(self.jitter(state), BACKOFF_BASE / 4)


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {text}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out: {text}"
    return text


class Transport:
    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0,
                 retry_seconds: float | None = 30.0, backoff_cap: float = 5.0,
                 cancel: threading.Event | None = None, on_retry: OnRetry | None = None,
                 http_transport: httpx.BaseTransport | None = None):
        if token and not token.isascii():
            raise TuneserveError("the token must be plain ASCII text")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=http_transport)
        self.retry_seconds, self.backoff_cap = retry_seconds, backoff_cap
        self.cancel = cancel or threading.Event()
        self.on_retry = on_retry

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                content: bytes | None = None, headers: dict[str, str] | None = None,
                held: bool = False, retry_seconds: float | None | str = "default",
                cancel: threading.Event | None = None) -> Any:
        """Decoded JSON, or None for 204. `held`: the call is about a trial this caller holds, so
        404/409 mean LeaseLost. `retry_seconds` and `cancel` override the client's for this call."""
        budget = self.retry_seconds if retry_seconds == "default" else retry_seconds
        cancel = cancel or self.cancel
        call = f"{method} {path}"
        if json is not None:
            # NaN and infinities go out as JSON's NaN/Infinity tokens (httpx refuses them): a
            # non-finite loss is information the server acts on (the trial ends as diverged).
            content = jsonlib.dumps(json, allow_nan=True).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}

        def attempt() -> httpx.Response:
            try:
                resp = self.http.request(method, API_PREFIX + path, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:
                raise _Retryable(f"cannot reach {self.base_url} ({_reason(exc)})") from exc
            if resp.status_code >= 500:
                body = _json_or_text(resp)  # a proxy's HTML error page is cut short
                detail = body.get("detail", body) if isinstance(body, dict) else str(body).strip()[:300]
                raise _Retryable(f"{self.base_url} answered HTTP {resp.status_code}", retry_after_seconds(resp),
                                 resp.status_code, detail)
            return resp

        def sleep(seconds: float) -> None:
            if cancel.wait(seconds):
                raise _Cancelled()

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if self.on_retry is not None and state.outcome is not None and state.next_action is not None:
                self.on_retry(call, state.outcome.exception(), state.next_action.sleep)

        stop = tenacity.stop_never if budget is None else tenacity.stop_before_delay(budget)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=stop | (lambda state: cancel.is_set()),
            wait=_Wait(self.backoff_cap), sleep=sleep, before_sleep=before_sleep, reraise=True,
        )
        try:
            resp = retrying(attempt)
        except _Retryable as exc:
            waited = "" if budget is None or budget <= 0 else f" (gave up after {budget:g} s of retries)"
            raise ServerUnavailable(f"{call}: {exc}{waited}", status=exc.status, detail=exc.detail) from exc
        except _Cancelled:
            raise ServerUnavailable(f"{call}: cancelled while waiting for the server") from None
        if resp.status_code == 204:
            return None
        if resp.status_code >= 400:
            body = _json_or_text(resp)
            detail = body.get("detail", body) if isinstance(body, dict) else body
            code = body.get("code") if isinstance(body, dict) else None
            raise api_error(resp.status_code, detail, code, call, held)
        return resp.json()

    def health(self) -> bool:
        try:
            return self.http.get("/healthz").json().get("ok") is True
        except (httpx.HTTPError, ValueError):
            return False


def _json_or_text(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text
