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


def require_token(request: Request, settings: Settings = Depends(get_settings)) -> None:
    if not settings.api_token:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), settings.api_token):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (Authorization: Bearer <TUNESERVE_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
