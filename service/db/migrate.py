"""Run the Alembic migrations programmatically (server start-up, CLI, tests).

The migrations live in `migrations/` at the top of a source checkout; a wheel ships the same files
as `service/db/migrations` (see setup.py), so an installed tuneserve finds them beside this module.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def migrations_dir() -> Path:
    """The Alembic script folder: the installed copy, else the source checkout's."""
    for candidate in (HERE / "migrations", HERE.parents[1] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"no Alembic migrations beside {HERE} or in {HERE.parents[1]}")


def alembic_config(database_url: str) -> Config:
    # No alembic.ini needed (an installed package has none): the two options it set, set here.
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
