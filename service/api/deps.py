"""Request dependencies: the database (one transaction per request, opened in the route) and auth."""
from __future__ import annotations

import secrets

from fastapi import Depends, HTTPException, Request, status

from service.config import Settings
from service.db.engine import Database


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


# The dashboard's login turns a token into this cookie (HttpOnly, SameSite=Strict), so a browser
# presents it on every page and data call the way a client sends its bearer header.
TOKEN_COOKIE = "tuneserve_token"


def presented_token(request: Request) -> str | None:
    """The token a request carries: `Authorization: Bearer <token>`, else the dashboard's cookie."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    return request.cookies.get(TOKEN_COOKIE)


def token_is_valid(settings: Settings, token: str | None) -> bool:
    """The one check of a presented token string (API header, dashboard cookie and login form)."""
    if not settings.api_token:
        return True
    return token is not None and secrets.compare_digest(token.encode(), settings.api_token.encode())


def require_token(request: Request, settings: Settings = Depends(get_settings)) -> None:
    if not token_is_valid(settings, presented_token(request)):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (Authorization: Bearer <TUNESERVE_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
