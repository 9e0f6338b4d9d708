"""The worker protocol's keep-alive requests (heartbeat, report, POST /leases/renew) dispatched
without FastAPI's routing and dependency solving, which were a third of the server's CPU on them
(issue 21's profile: route matching across every route, `solve_dependencies`, the request and
exception wrappers).

Only the ordinary request is dispatched here, and it runs what FastAPI would run: the body parsed
and validated as FastAPI does it (`json.loads`, then the route's model), the caller authenticated
and authorised by the same dependency (`require_caller`), and the same route function, in the
thread pool (a heartbeat through the same domain call as a batch of them: api/heartbeats.py, where
heartbeats that arrive together renew together). An exception from either goes to the app's own
handlers (api/errors.py), so a 401, 409 or 503 is the same answer. Anything out of the ordinary
(a body that is not JSON or does not validate, another content type, an id out of range) is handed
to the app unchanged, which answers it the way it answers every request.
tests/test_keepalive_dispatch.py sends the same requests both ways and compares the answers.

Sits inside BodyLimits (which has read the body under its limits and replays it whole) and
HttpMetrics (which labels by the route this sets in the scope).
"""
from __future__ import annotations

import inspect
import json
import re
from typing import Any, Callable

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tuneserve._defaults import API_PREFIX
from tuneserve_service.api import leases, trials
from tuneserve_service.api.deps import MAX_TRIAL_ID, require_caller
from tuneserve_service.api.responses import json_model
from tuneserve.schemas.trials import LeaseRequest, RenewRequest, ReportRequest

_TRIAL = re.compile(re.escape(API_PREFIX) + r"/trials/([1-9][0-9]{0,9})/(heartbeat|report)")
_RENEW = API_PREFIX + "/leases/renew"
_JSON = (b"application/json",)


class _Route:
    """One dispatched route: its APIRoute (for authorisation and the metrics label), the route
    function, and the body model it validates."""

    def __init__(self, router, endpoint: Callable[..., Any], model: type[BaseModel]):
        self.route = next(r for r in router.routes if getattr(r, "endpoint", None) is endpoint)
        self.endpoint = endpoint
        self.model = model


class KeepAliveDispatch:
    """Pure ASGI middleware: serves the ordinary keep-alive request itself, passes on the rest."""

    def __init__(self, app, enabled: bool = True):
        self.app = app
        self.enabled = enabled
        self.heartbeat = _Route(trials.router, trials.heartbeat, LeaseRequest)
        self.report = _Route(trials.router, trials.report, ReportRequest)
        self.renew = _Route(leases.router, leases.renew, RenewRequest)

    async def __call__(self, scope, receive, send):
        if not self.enabled or scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == _RENEW:
            route, trial_id = self.renew, None
        else:
            m = _TRIAL.fullmatch(path)
            if m is None or int(m[1]) > MAX_TRIAL_ID:
                return await self.app(scope, receive, send)
            route, trial_id = (self.heartbeat if m[2] == "heartbeat" else self.report), int(m[1])
        if not _is_json(scope):
            return await self.app(scope, receive, send)
        message = await receive()  # BodyLimits replays the whole body in one message
        body = _valid_body(route.model, message.get("body", b"")) if message["type"] == "http.request" else None

        async def replay():
            nonlocal message
            if message is not None:
                sent, message = message, None
                return sent
            return await receive()

        if body is None:
            return await self.app(scope, replay, send)
        scope["route"] = route.route
        scope["path_params"] = {"trial_id": trial_id} if trial_id is not None else {}
        request = Request(scope, replay)
        try:
            caller = await require_caller(request)
            state = request.app.state
            if route is self.heartbeat:  # heartbeats arriving together renew together (api/heartbeats.py)
                response = json_model(await state.heartbeats.heartbeat(trial_id, body.lease_token, caller.key))
            else:
                db = state.db
                args = (body, caller, db) if trial_id is None else (trial_id, body, caller, db)
                response = await run_in_threadpool(route.endpoint, *args)
        except Exception as exc:  # noqa: BLE001 - answered by the app's handler for it, as FastAPI would
            response = await _handled(request, exc)
        await response(scope, replay, send)


def _is_json(scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";")[0].strip().lower() in _JSON
    return False


def _valid_body(model: type[BaseModel], raw: bytes) -> BaseModel | None:
    """The validated body, as FastAPI reads it (json.loads, then the model); None when either fails."""
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, ValidationError, RecursionError):
        return None


async def _handled(request: Request, exc: Exception):
    """The app's exception handler for `exc` (by its class's MRO, as Starlette's ExceptionMiddleware
    looks it up), or `exc` raised again for the server's error middleware (a 500), which also owns
    any handler of Exception itself."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            break
        handler = handlers.get(cls)
        if handler is not None:
            response = handler(request, exc)
            return await response if inspect.isawaitable(response) else response
    raise exc
