"""The SDK's exceptions, each with a message a person can act on.

`ApiError` is an answer from the server that refuses the call (4xx): its subclasses say how
(`InvalidRequest` 400/422, `Unauthorized` 401/403, `NotFound` 404, `Conflict` 409, and `LeaseLost`
for a 404/409 about a trial the caller held). `ServerUnavailable` means no usable answer came within
the retry budget (connection refused, timeouts, 5xx).
"""
from __future__ import annotations

from typing import Any


class TuneserveError(Exception):
    """Base class of every error the SDK raises."""


class ServerUnavailable(TuneserveError):
    """No usable answer from the server within the retry budget. `status`: the last answer's 5xx
    status (None when no answer came: connection refused, a timeout), with its `detail`; the
    transport's own error (httpx) is the cause's cause."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None):
        super().__init__(message)
        self.status, self.detail = status, detail


class ApiError(TuneserveError):
    """The server answered with a 4xx. `status`, `detail` (the body's detail: a string or FastAPI's
    list of {loc, msg, type}), `code` (the server's error code, when it sent one)."""

    reason = "refused"

    def __init__(self, status: int, detail: Any, code: str | None = None, call: str = ""):
        self.status, self.detail, self.code, self.call = status, detail, code, call
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.call}: " if self.call else ""
        return f"{where}{self.reason} (HTTP {self.status}): {describe_detail(self.detail)}"


class InvalidRequest(ApiError):
    reason = "invalid request"


class Unauthorized(ApiError):
    reason = "not authorised (set TUNESERVE_TOKEN or pass token=)"


class NotFound(ApiError):
    reason = "not found"


class Conflict(ApiError):
    reason = "conflict"


class LeaseLost(ApiError):
    """The server no longer lets this caller act on the trial (its lease ran out and someone else
    holds it now, or the trial ended)."""

    reason = "lease lost"


def describe_detail(detail: Any) -> str:
    """FastAPI's validation list as `field.path: message; ...`, anything else as text."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = [str(p) for p in item.get("loc", []) if p != "body"]
                parts.append(f"{'.'.join(loc) or 'body'}: {item['msg']}")
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def api_error(status: int, detail: Any, code: str | None, call: str, held: bool) -> ApiError:
    if held and status in (404, 409):
        return LeaseLost(status, detail, code, call)
    cls = {400: InvalidRequest, 422: InvalidRequest, 401: Unauthorized, 403: Unauthorized,
           404: NotFound, 409: Conflict}.get(status, ApiError)
    return cls(status, detail, code, call)
