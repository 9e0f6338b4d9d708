"""The one place where exceptions become HTTP status codes and bodies.

- Domain errors (service/errors.py) map by class: 404, 409, 401, 403, 422, 503.
- A database that is down, refuses connections, drops one mid-request, runs out of pooled
  connections or stays locked (SQLite) is a 503 with Retry-After, never a 500: the request changed
  nothing (its transaction rolled back) and may be sent again.
- Validation errors (422) keep FastAPI's shape, `{"detail": [{"loc", "msg", "type"}]}`, but echo
  at most a short excerpt of a scalar input, nothing of an object or list (they may hold tokens),
  and never the value of a field whose name says token, password or secret.
"""
from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from tuneserve_service import errors as e

log = logging.getLogger("tuneserve.api")

STATUS = {
    e.StudyNotFound: 404,
    e.TrialNotFound: 404,
    e.LogNotFound: 404,
    e.TokenNotFound: 404,
    e.StudyExists: 409,
    e.TokenExists: 409,
    e.TrialNotHeld: 409,
    e.ConflictingCompletion: 409,
    e.ConflictingReport: 409,
    e.InvalidStudyState: 409,
    e.GateConflict: 409,
    e.BudgetExhausted: 409,
    e.NotEnoughTrials: 409,
    e.NoVariant: 409,
    e.NotRerunnable: 409,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotLeaseHolder: 403,
    e.DatabaseUnavailable: 503,
}

EXCERPT_CHARS = 40
MESSAGE_CHARS = 1000
_SECRET_WORDS = ("token", "password", "secret", "authorization")
# What a secret looks like wherever it turns up in echoed text: an API token (tuneserve_service.auth.tokens
# prefix) or a lease token (32 hex digits).
_SECRET_TEXT = re.compile(r"tsv_[A-Za-z0-9_\-]*|(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of `value`, with anything shaped like a token masked first."""
    text = _SECRET_TEXT.sub("<redacted>", value if isinstance(value, str) else repr(value))
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _is_secret(loc) -> bool:
    return any(word in str(part).lower() for part in loc for word in _SECRET_WORDS)


def _scalar(value: Any, limit: int) -> Any:
    """A JSON-safe short form of a scalar: finite numbers, booleans and null as they are."""
    if value is None or isinstance(value, bool) or isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return excerpt(value if isinstance(value, str) else repr(value), limit)


def clean_validation_error(err: dict[str, Any]) -> dict[str, Any]:
    loc = [p if isinstance(p, int) and abs(p) < 2**53 else excerpt(str(p)) for p in err.get("loc", ())]
    out: dict[str, Any] = {"loc": loc, "msg": excerpt(str(err.get("msg", "")), MESSAGE_CHARS),
                           "type": err.get("type", "value_error")}
    if "input" in err:
        value = err["input"]
        if _is_secret(loc):
            out["input"] = "<redacted>"
        elif not isinstance(value, (dict, list, tuple, set, bytes)):
            out["input"] = _scalar(value, EXCERPT_CHARS)
    if isinstance(err.get("ctx"), dict):
        out["ctx"] = {k: _scalar(v, 200) for k, v in err["ctx"].items()}
    return out


def retry_headers(request: Request) -> dict[str, str]:
    settings = getattr(request.app.state, "settings", None)
    return {"Retry-After": str(getattr(settings, "retry_after", 2))}


def database_unavailable(request: Request, why: str) -> JSONResponse:
    return JSONResponse(
        status_code=503, headers=retry_headers(request),
        content={"detail": f"the database is unavailable ({why}); retry shortly", "code": "database_unavailable"},
    )


async def _domain_error(request: Request, exc: e.DomainError) -> JSONResponse:
    if isinstance(exc, e.InvalidInput):
        # Same shape as FastAPI's own validation errors, so clients parse one format.
        content = {"detail": [clean_validation_error({"loc": list(exc.loc), "msg": exc.message, "type": "value_error"})]}
        return JSONResponse(status_code=422, content=_without_shared_token(request, content))
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    elif status == 503:
        headers = retry_headers(request)
    return JSONResponse(status_code=status, headers=headers,
                        content={"detail": excerpt(exc.message, MESSAGE_CHARS), "code": exc.code, **exc.extra})


def _without_shared_token(request: Request, content: dict[str, Any]) -> dict[str, Any]:
    """The shared token has no recognisable shape: mask it wherever an echo might carry it."""
    shared = getattr(getattr(request.app.state, "settings", None), "api_token", None)
    if not shared:
        return content
    text = json.dumps(content)
    return json.loads(text.replace(json.dumps(shared)[1:-1], "<redacted>")) if shared in text else content


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    content = {"detail": [clean_validation_error(err) for err in exc.errors()]}
    return JSONResponse(status_code=422, content=_without_shared_token(request, content))


def is_database_down(exc: BaseException) -> bool:
    """Errors that mean the database could not be used, as opposed to a bad statement."""
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                        sa_exc.DisconnectionError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        # SQLite's "file is not a database" / "disk image is malformed": the file is unusable.
        return exc.connection_invalidated or type(exc.orig) is sqlite3.DatabaseError
    return False


async def _database_error(request: Request, exc: sa_exc.SQLAlchemyError) -> JSONResponse:
    if is_database_down(exc):
        # The class and the driver's first line only: statements and parameters stay out of logs.
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).splitlines() or [""])[0][:200]
        log.warning("database unavailable on %s %s: %s: %s", request.method, request.url.path,
                    type(cause).__name__, first_line)
        return database_unavailable(request, type(cause).__name__)
    log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error", "code": "internal_error"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(sa_exc.SQLAlchemyError, _database_error)
