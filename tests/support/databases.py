"""Test databases: a SQLite file per test, and a throwaway PostgreSQL database per test session.

PostgreSQL comes from TUNESERVE_TEST_PG_URL (default: the local server, database `test`); a
database of our own is created next to it so parallel test runs never share tables.
TUNESERVE_TEST_BACKENDS=sqlite (or postgres) narrows the matrix for a quick local run.
"""
from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("TUNESERVE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = [b for b in os.environ.get("TUNESERVE_TEST_BACKENDS", "sqlite,postgres").split(",") if b]


def create_pg_database(admin_url: str = PG_ADMIN_URL, prefix: str = "tuneserve_test") -> str:
    """A new, empty database beside `admin_url`'s (the benchmarks use it too); its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    name = make_url(url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def truncate_all(url: str) -> None:
    """Empty every table but alembic_version (tokens too: one left behind would turn auth on for
    the next test)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


def columns_of(url: str, table: str) -> set[str]:
    """The column names a table has now (the migration tests look before and after a revision)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        found = {c["name"] for c in inspect(conn).get_columns(table)}
    engine.dispose()
    return found


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = set(inspect(conn).get_table_names())
    engine.dispose()
    return found
