"""Request dependencies: the database (one transaction per request, opened in the route) and the
caller (authenticated and authorised by service.auth.guard's policy)."""
from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from service.auth.guard import ANONYMOUS, Caller, TokenCache, authorize, bearer_secret, identify, refuse_exposed
from service.config import Settings
from service.db.engine import Database


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def require_caller(request: Request) -> Caller:
    """The authenticated caller, allowed to call this route; 401 / 403 otherwise.

    Async, so a request whose token is already known costs no thread hop; the database is read
    (in the thread pool) only when the token cache has to be refreshed."""
    settings: Settings = request.app.state.settings
    cache: TokenCache = request.app.state.tokens
    if not settings.api_token:
        any_tokens = cache.cached_any()
        if any_tokens is None:
            any_tokens = await run_in_threadpool(cache.any_tokens)
        if not any_tokens:
            server = request.scope.get("server")
            refuse_exposed(settings, server[0] if server else None)
            return ANONYMOUS
    secret = bearer_secret(request.headers.get("authorization"))
    caller = identify(settings, cache, secret, lookup=False)
    if caller is None:
        caller = await run_in_threadpool(identify, settings, cache, secret)
    route = request.scope.get("route")
    authorize(caller, request.method, getattr(route, "path", request.url.path))
    return caller
