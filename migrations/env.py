"""Alembic environment: migrates the database named by the caller or TUNESERVE_DATABASE_URL.

On PostgreSQL an advisory lock is held while migrating, so several server replicas starting at once
run the migrations one after another instead of racing.

On SQLite foreign keys are not enforced while migrating (they are checked at the end instead): a
migration that rebuilds a table (batch mode, e.g. 0010 adding CHECK constraints) drops the old table,
which with enforcement on would cascade to every row that references it. SQLite reads that pragma
only outside a transaction, so it is set before the migrations' transaction begins.

A database stamped with a revision id that was renumbered is restamped first (db/migrate.py).
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import text

from tuneserve_service.config import Settings
from tuneserve_service.db.engine import make_engine, normalize_url
from tuneserve_service.db.migrate import restamp_legacy
from tuneserve_service.db.models import Base

MIGRATION_LOCK_ID = 7_302_114  # arbitrary, fixed: the advisory lock every replica agrees on

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return normalize_url(config.attributes.get("database_url") or Settings().database_url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
                conn.commit()
            try:
                _run(conn)
            finally:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
                    conn.commit()
    finally:
        engine.dispose()


def _run(connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if connection.in_transaction():
        connection.commit()
    if sqlite:
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        restamp_legacy(connection)
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migrations left rows whose foreign keys point nowhere: {broken[:10]}")
        connection.commit()
    finally:
        if sqlite:
            if connection.in_transaction():
                connection.rollback()
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
