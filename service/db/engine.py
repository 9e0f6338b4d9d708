"""Engine and session factory for SQLite (embedded) and PostgreSQL, plus the database clock.

SQLite runs in WAL mode with a busy timeout and starts every transaction with BEGIN IMMEDIATE, so
writers queue on the database lock instead of failing with "database is locked" half-way through a
read-modify-write. PostgreSQL uses READ COMMITTED and row locks (FOR UPDATE SKIP LOCKED) in the store.
"""
from __future__ import annotations

from contextlib import contextmanager
import threading
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, Float, String, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement


class db_epoch(FunctionElement):
    """Seconds since the Unix epoch by the database server's clock.

    Leases are compared against this, never against a worker's or a server replica's clock.
    """

    type = Float()
    inherit_cache = True


@compiles(db_epoch, "postgresql")
def _pg_epoch(element, compiler, **kw):  # noqa: ARG001
    return "EXTRACT(EPOCH FROM clock_timestamp())::double precision"


@compiles(db_epoch, "sqlite")
def _sqlite_epoch(element, compiler, **kw):  # noqa: ARG001
    return "((julianday('now') - 2440587.5) * 86400.0)"


class db_token(FunctionElement):
    """A fresh random lease token, computed per row by the database (32 hex characters)."""

    type = String()
    inherit_cache = True


@compiles(db_token, "postgresql")
def _pg_token(element, compiler, **kw):  # noqa: ARG001
    return "replace(gen_random_uuid()::text, '-', '')"


@compiles(db_token, "sqlite")
def _sqlite_token(element, compiler, **kw):  # noqa: ARG001
    return "lower(hex(randomblob(16)))"


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and route them to psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, pool_size: int = 16, max_overflow: int | None = None) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _configure_sqlite(engine)
        return engine
    # Overflow covers the request thread pool (40 threads) so no request waits for a connection.
    # No pre-ping: it would add a round trip to every transaction; connections are recycled hourly.
    overflow = max(pool_size, 40 - pool_size) if max_overflow is None else max_overflow
    return create_engine(url, pool_size=pool_size, max_overflow=overflow, pool_recycle=3600)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transaction control away from the sqlite3 module so BEGIN IMMEDIATE is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Readers (Database.read) begin DEFERRED: in WAL mode they never wait for, or block, a writer.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("tuneserve_read") else "BEGIN IMMEDIATE")


class Database:
    """Owns the engine; `transaction()` is the one unit of work a request runs in."""

    def __init__(self, url: str, pool_size: int = 16, max_overflow: int | None = None):
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, pool_size=pool_size, max_overflow=max_overflow)
        self.dialect = self.engine.dialect.name
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.engine.execution_options(tuneserve_read=True), expire_on_commit=False)
        # SQLite has one writer at a time. Queueing this process's transactions on a lock is much
        # cheaper than SQLite's busy handler, which sleeps and retries; other processes still
        # queue on busy_timeout.
        self._sqlite_lock = threading.Lock() if self.dialect == "sqlite" else None
        # PostgreSQL: a few autocommit connections with asynchronous commit, for single statements
        # that take a hot row lock (trial number reservations). In autocommit the lock is released
        # inside the server when the statement ends, never held while a Python thread waits for the
        # GIL. Asynchronous commit (no wait for the WAL flush) is safe for a reservation: its loss in
        # a crash is harmless, and the trial insert that uses the number is an ordinary commit after
        # it, which flushes the WAL up to and including the reservation.
        self.autocommit_engine = (
            create_engine(self.url, pool_size=4, max_overflow=8, pool_recycle=3600,
                          isolation_level="AUTOCOMMIT",
                          connect_args={"options": "-c synchronous_commit=off"})
            if self.dialect == "postgresql" else None
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit when the block ends normally, roll back on any exception."""
        if self._sqlite_lock is not None:
            with self._sqlite_lock, self._sessions.begin() as session:
                yield session
            return
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work (dashboard, metrics): rolled back at the end. On SQLite it takes
        neither the process's writer lock nor the database's write lock, so a slow aggregate never
        holds up the worker protocol."""
        with self._readers() as session:
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.autocommit_engine is not None:
            self.autocommit_engine.dispose()
