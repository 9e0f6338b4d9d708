"""Server settings, read from environment variables with the prefix TUNESERVE_ (pydantic-settings),
and `redacted_url`, the only form in which a database URL may be printed or logged."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("tuneserve-data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNESERVE_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR}/tuneserve.db",
        description="SQLAlchemy URL. The embedded default is a SQLite file under ./tuneserve-data; "
        "postgresql+psycopg://user@host/db switches to PostgreSQL.",
    )
    host: str = Field(default="127.0.0.1", description="Address `tuneserve server` binds.")
    port: int = Field(default=8000, description="Port `tuneserve server` binds.")
    api_token: str | None = Field(
        default=None,
        description="One shared token with the admin role (one-person use). When set, or once a named token "
        "exists (`tuneserve token create`), every request except /healthz needs 'Authorization: Bearer <token>'.",
    )
    insecure: bool = Field(
        default=False,
        description="Serve beyond loopback with no token configured. Without it the server refuses to start on a "
        "non-loopback address, and refuses requests arriving on one, while no token exists.",
    )
    auto_migrate: bool = Field(
        default=True, description="Run the Alembic migrations to head when the server starts."
    )
    reaper_interval: float = Field(
        default=2.0, gt=0, description="Seconds between sweeps that requeue trials whose lease ran out."
    )
    db_pool_size: int = Field(default=16, ge=1, description="Connections kept per server process.")
    db_max_overflow: int | None = Field(
        default=None, ge=0,
        description="Extra connections a busy process may open beyond the pool (on PostgreSQL kept open once "
        "opened, not reconnected per request); default max(pool, 40 - pool). "
        "With several replicas on one PostgreSQL keep replicas x (pool + overflow + 12) under max_connections.",
    )
    db_server_prepare: bool = Field(
        default=True, description="PostgreSQL: let psycopg prepare statements it runs often on the server (its "
        "default, 5 runs). Turn off behind PgBouncer in transaction mode older than 1.21, or one without "
        "max_prepared_statements: a prepared statement then lives on a server connection the next transaction "
        "may not get.",
    )
    db_pool_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a request waits for a pooled connection before a 503."
    )
    db_connect_timeout: int = Field(
        default=5, ge=1, description="Seconds to open a PostgreSQL connection before a 503."
    )
    db_busy_timeout: float = Field(
        default=10.0, gt=0, description="SQLite: seconds to wait for the database lock before a 503."
    )
    retry_after: int = Field(
        default=2, ge=1, description="Retry-After (seconds) sent with a 503 while the database is unavailable."
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body; a larger one is a 413, refused before it is read."
    )
    keepalive_dispatch: bool = Field(
        default=True, description="Serve ordinary heartbeats, reports and lease renewals without FastAPI's routing, "
                                  "heartbeats arriving together in one renewal (api/keepalive.py, api/heartbeats.py: "
                                  "the same answers for less CPU); false sends them through the router one by one.")
    max_json_depth: int = Field(
        default=32, ge=4, le=200, description="Deepest nesting of a JSON or YAML body; deeper is a 422."
    )
    body_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a client has to send a whole request body; slower is a 408."
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a client has to send a request's headers; slower is cut off."
    )
    keep_alive_timeout: int = Field(default=5, ge=1, description="Seconds an idle keep-alive connection is kept.")
    token_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a server process trusts what it read about a token; a token "
        "revoked through another process (or the CLI) is refused at most this much later.",
    )
    log_level: str = Field(default="info")


_SECRET_QUERY_KEYS = ("password", "passwd", "token", "secret", "sslkey", "sslpassword")


def redacted_url(url: str) -> str:
    """`url` with its password (and any secret-looking query value) masked, for printing and logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"
    query = {k: ("redacted" if any(s in k.lower() for s in _SECRET_QUERY_KEYS) else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)
