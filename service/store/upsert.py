"""One INSERT ... ON CONFLICT DO UPDATE for both backends (PostgreSQL's and SQLite's dialects share
the form but not the construct)."""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


@lru_cache(maxsize=16)
def upsert(dialect: str, table: Table, keys: tuple[str, ...], updates: tuple[str, ...]):
    """Insert a row of `table`; when `keys` clash with a stored row, overwrite its `updates` columns."""
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in updates})
