"""Server settings, read from environment variables with the prefix TUNESERVE_ (pydantic-settings)."""
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
        default=None, description="When set, every request except /healthz needs 'Authorization: Bearer <token>'."
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
        description="Extra connections a busy process may open beyond the pool; default max(pool, 40 - pool). "
        "With several replicas on one PostgreSQL keep replicas x (pool + overflow + 12) under max_connections.",
    )
    log_level: str = Field(default="info")
