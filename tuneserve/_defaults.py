"""The few facts every caller of the API shares, each written once: where the API lives under a
server's URL, which server a caller talks to when not told, and the environment variables that tell it.
The SDK, the command line and the worker daemon all read them from here (the server mounts its
routers under API_PREFIX too)."""
from __future__ import annotations

import os

API_PREFIX = "/api/v1"
DEFAULT_SERVER = "http://127.0.0.1:8000"
ENV_SERVER = "TUNESERVE_SERVER"
ENV_TOKEN = "TUNESERVE_TOKEN"


def server_url(server: str | None = None) -> str:
    """`server`, else TUNESERVE_SERVER, else DEFAULT_SERVER."""
    return server or os.environ.get(ENV_SERVER) or DEFAULT_SERVER


def api_token(token: str | None = None) -> str | None:
    """`token` when given (an empty string means none), else TUNESERVE_TOKEN, else None."""
    return (token or None) if token is not None else (os.environ.get(ENV_TOKEN) or None)
