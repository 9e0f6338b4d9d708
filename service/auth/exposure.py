"""The start-up rule: no server binds beyond loopback with no token configured, unless insecure.

`tuneserve server` calls check_exposure before it binds; create_app's start-up calls it again
with the settings' host (so the rule holds for `uvicorn --factory tuneserve_service.main:create_app` with
TUNESERVE_HOST set), and guard.refuse_exposed applies it to every request by the address the
request arrived on (so it holds whatever host uvicorn was told).
"""
from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from tuneserve_service.auth.guard import is_loopback
from tuneserve_service.config import Settings, redacted_url


class InsecureBind(RuntimeError):
    """Binding beyond loopback with no token and without `insecure`."""


def tokens_exist(database_url: str) -> bool:
    """Whether the database holds any named token (False when it cannot say: not migrated yet)."""
    from tuneserve_service.db.engine import Database
    from tuneserve_service.store import tokens as token_store

    db = Database(database_url, pool_size=1)
    try:
        with db.transaction() as s:
            return token_store.any_tokens(s)
    except SQLAlchemyError:
        return False
    finally:
        db.dispose()


def check_exposure(settings: Settings, host: str | None = None, has_tokens: bool | None = None) -> None:
    """Raise InsecureBind when serving on `host` (default settings.host) would expose the API with
    no auth: not loopback, no TUNESERVE_API_TOKEN, no named token, and `insecure` not set."""
    host = host if host is not None else settings.host
    if settings.insecure or is_loopback(host) or settings.api_token:
        return
    if has_tokens is None:
        has_tokens = tokens_exist(settings.database_url)
    if has_tokens:
        return
    raise InsecureBind(
        f"refusing to serve on {host}: no API token is configured, so anyone who can reach this address "
        f"could create and delete studies on {redacted_url(settings.database_url)}. Set TUNESERVE_API_TOKEN, "
        "or create a token first (tuneserve token create NAME --role admin), or pass --insecure "
        "(TUNESERVE_INSECURE=true) if the network is trusted."
    )
