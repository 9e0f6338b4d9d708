"""Run the Alembic migrations programmatically (server start-up, CLI, tests).

The migrations live in `migrations/` at the top of a source checkout; a wheel ships the same files
as `service/db/migrations` (see setup.py), so an installed tuneserve finds them beside this module.

Revisions 0009 (craft wiring) and 0010 (gates) were renumbered 0008 and 0009, closing a gap; 0010 is
now the enum checks. A database stamped before the renumbering says "0009" or "0010" for what are
now 0008 and 0009. The id alone cannot tell old from new, the schema can: a new 0009 has
`studies.gate`, a new 0010 has the `ck_trials_state` constraint. `restamp_legacy` rewrites an old
stamp before Alembic reads it (migrations/env.py calls it, so `alembic upgrade` does the same).
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

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


def restamp_legacy(connection: Connection) -> str | None:
    """Rewrite a stamp from before the renumbering (module docstring); the new stamp, or None if
    nothing was changed. Commits its change."""
    names = inspect(connection).get_table_names()
    if "alembic_version" not in names or "studies" not in names:
        return None
    stamped = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    new = None
    if stamped == ["0009"]:
        if "gate" not in {c["name"] for c in inspect(connection).get_columns("studies")}:
            new = "0008"
    elif stamped == ["0010"]:
        checks = {c["name"] for c in inspect(connection).get_check_constraints("trials")}
        if "ck_trials_state" not in checks:
            new = "0009"
    if new is not None:
        connection.execute(text("UPDATE alembic_version SET version_num = :new"), {"new": new})
    connection.commit()
    return new
