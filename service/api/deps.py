"""Request dependencies: the database (the domain function a route calls opens its transactions:
tuneserve_service/domain/__init__.py) and the caller (authenticated and authorised by tuneserve_service.auth.guard's policy).

A caller presents its token as `Authorization: Bearer <token>`, or, in a browser, as the cookie the
dashboard's login sets (HttpOnly, SameSite=Strict): the same token, the same checks, the same roles.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from starlette.concurrency import run_in_threadpool

from tuneserve_service.auth.guard import (
    ANONYMOUS, Caller, TokenCache, authorize, bearer_secret, checked_secret, identify, refuse_exposed,
)
from tuneserve_service.config import Settings
from tuneserve_service.db.engine import Database
from tuneserve_service.errors import Unauthenticated

TOKEN_COOKIE = "tuneserve_token"

# Ids are 32-bit integers in the database: a larger one is a 422, not a driver overflow. Every route
# that takes a trial id in its path (the API's, the logs', the dashboard's) declares it with this.
MAX_TRIAL_ID = 2**31 - 1
TrialId = Annotated[int, Path(ge=1, le=MAX_TRIAL_ID, description="The trial's id")]


# Async on purpose: FastAPI runs a sync dependency in the thread pool, so a plain `def` here cost
# every request a second thread hop beside its sync endpoint's (issue 21's profile).
async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def presented_secret(request: Request) -> str:
    """The token a request carries: the bearer header, else the dashboard's cookie."""
    header = request.headers.get("authorization")
    if header:
        return bearer_secret(header)
    cookie = request.cookies.get(TOKEN_COOKIE)
    if cookie:
        return checked_secret(cookie)
    raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")


async def authenticate(request: Request) -> Caller:
    """Who calls; 401 when a token is needed and missing or wrong (no route policy applied).

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
    secret = presented_secret(request)
    caller = identify(settings, cache, secret, lookup=False)
    if caller is None:
        caller = await run_in_threadpool(identify, settings, cache, secret)
    return caller


async def require_caller(request: Request) -> Caller:
    """The authenticated caller, allowed to call this route; 401 / 403 otherwise."""
    caller = await authenticate(request)
    route = request.scope.get("route")
    # request.url only when there is no route: building it cost 1.3% of the server's CPU per request.
    authorize(caller, request.method, route.path if hasattr(route, "path") else request.url.path)
    return caller


def auth_required(request: Request) -> bool:
    """Whether this server asks for a token at all (the shared setting, or any named token)."""
    settings: Settings = request.app.state.settings
    return bool(settings.api_token) or request.app.state.tokens.any_tokens()


def caller_for(request: Request, secret: str | None) -> Caller | None:
    """The caller a token string stands for, or None when it stands for no one (the dashboard's
    login form and its ?token= links). Blocking: call it from a sync route."""
    if not auth_required(request):
        return ANONYMOUS
    try:
        return identify(request.app.state.settings, request.app.state.tokens, checked_secret(secret or ""))
    except Unauthenticated:
        return None


def page_caller(request: Request) -> Caller | None:
    """The caller of a dashboard page (header or cookie), or None: the page sends it to the login."""
    if not auth_required(request):
        return ANONYMOUS
    try:
        return caller_for(request, presented_secret(request))
    except Unauthenticated:
        return None
