"""Engine and session factory for SQLite (embedded) and PostgreSQL, plus the database clock.

SQLite runs in WAL mode with a busy timeout and starts every transaction with BEGIN IMMEDIATE, so
writers queue on the database lock instead of failing with "database is locked" half-way through a
read-modify-write. PostgreSQL uses READ COMMITTED and row locks (FOR UPDATE SKIP LOCKED) in the store.

Faults: every wait on the database is bounded (pool checkout, connect, SQLite's lock), and what
runs out is an exception that api/errors.py answers with 503 + Retry-After. A pooled PostgreSQL
connection whose server end has gone away (pg_terminate_backend, a restart) is noticed at checkout
by a zero-time poll of its socket and replaced before the request uses it: no round trip, unlike
`pool_pre_ping`. Engines never log statement parameters (lease tokens travel in them).
"""
from __future__ import annotations

from contextlib import contextmanager
import json
import math
import select
import threading
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, Engine, Float, String, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement

from tuneserve_service.errors import DatabaseUnavailable


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


def _finite(value):
    """`value` with every non-finite float (NaN, +-Infinity) replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_dumps(value) -> str:
    """The engines' JSON serializer: strict JSON, every non-finite float written as null.

    PostgreSQL's json and jsonb refuse the NaN and Infinity tokens Python's json.dumps writes by
    default (SQLite stores them and they read back), so one value that overflowed (an evidence figure
    of 1.8e308 rounded to inf) made every retry of a trial's ending a 500 there. Mapping them here
    means no path can store them, on either backend. Metrics keep their non-finite values as the
    strings "NaN" / "Infinity" (views.json_safe_metrics) before they get here."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: the rare path
        return json.dumps(_finite(value), allow_nan=False)


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and route them to psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(
    url: str, pool_size: int = 16, *, max_overflow: int | None = None, pool_timeout: float = 10.0,
    connect_timeout: int = 5, busy_timeout: float = 10.0, **extra,
) -> Engine:
    """An engine with bounded waits; `extra` goes to create_engine (e.g. isolation_level)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
            pool_size=pool_size,
            max_overflow=pool_size if max_overflow is None else max_overflow,
            pool_timeout=pool_timeout,
            hide_parameters=True,
            json_serializer=json_dumps,
            **extra,
        )
        _configure_sqlite(engine, busy_timeout)
        return engine
    connect_args = {"connect_timeout": connect_timeout, **extra.pop("connect_args", {})}
    # Overflow covers the request thread pool (40 threads) so no request waits for a connection.
    if max_overflow is None:
        max_overflow = max(pool_size, 40 - pool_size)
    # SQLAlchemy closes an overflow connection when it comes back, so under sustained load (more
    # requests in flight than pool_size) a process connected and disconnected all the time: a
    # PostgreSQL backend started per request or two, and psycopg's connect at 2.7% of the server's
    # CPU (issue 21's profile). The overflow is kept open instead, once opened: the most a process
    # holds is the same pool + overflow as before (which deployments budget for), now also while
    # it idles after a busy moment.
    engine = create_engine(
        url, pool_size=pool_size + max_overflow, max_overflow=0, pool_recycle=3600,
        pool_timeout=pool_timeout, hide_parameters=True, connect_args=connect_args, json_serializer=json_dumps,
        **extra,
    )
    event.listen(engine, "checkout", _replace_if_closed_by_server)
    return engine


def _replace_if_closed_by_server(dbapi_conn, _record, _proxy) -> None:
    """An idle pooled connection has nothing to read: if its socket is readable, the server sent
    a goodbye (FATAL: terminating connection) or closed it. DisconnectionError makes the pool
    discard it and check out a fresh one, so the request never sees the dead connection."""
    try:
        if dbapi_conn.closed or dbapi_conn.broken:
            raise DisconnectionError("connection closed")
        readable, _, _ = select.select([dbapi_conn.pgconn.socket], [], [], 0)
    except DisconnectionError:
        raise
    except Exception as err:  # noqa: BLE001 - no socket left to poll: the connection is gone
        raise DisconnectionError(f"connection unusable: {type(err).__name__}") from None
    if readable:
        raise DisconnectionError("the server closed this pooled connection")


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transaction control away from the sqlite3 module so BEGIN IMMEDIATE is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Readers (Database.read) begin DEFERRED: in WAL mode they never wait for, or block, a writer.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("tuneserve_read") else "BEGIN IMMEDIATE")


class Database:
    """Owns the engine; `transaction()` is the one unit of work a request runs in."""

    def __init__(self, url: str, pool_size: int = 16, *, max_overflow: int | None = None,
                 pool_timeout: float = 10.0, connect_timeout: int = 5, busy_timeout: float = 10.0,
                 server_prepare: bool = True):
        self.url = normalize_url(url)
        waits = dict(pool_timeout=pool_timeout, connect_timeout=connect_timeout, busy_timeout=busy_timeout)
        # psycopg prepares a statement on the server after 5 runs; PgBouncer in transaction mode before
        # 1.21 (or without max_prepared_statements) cannot follow it across server connections.
        prepare = {} if server_prepare or make_url(self.url).get_backend_name() == "sqlite" else {"prepare_threshold": None}
        self.engine = make_engine(self.url, pool_size=pool_size, max_overflow=max_overflow, **waits,
                                  **({"connect_args": prepare} if prepare else {}))
        self.dialect = self.engine.dialect.name
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.engine.execution_options(tuneserve_read=True), expire_on_commit=False)
        # SQLite has one writer at a time. Queueing this process's transactions on a lock is much
        # cheaper than SQLite's busy handler, which sleeps and retries; other processes still
        # queue on busy_timeout. The wait is bounded too: a file locked by another process for
        # longer is a 503, not a request that hangs with every later one queued behind it.
        self._sqlite_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._busy_timeout = busy_timeout
        # PostgreSQL: a few autocommit connections with asynchronous commit, for single statements
        # that take a hot row lock (trial number reservations) and for lease renewals (renewal()).
        # In autocommit the lock is released inside the server when the statement ends, never held
        # while a Python thread waits for the GIL. Asynchronous commit (no wait for the WAL flush) is safe for a reservation: its loss in
        # a crash is harmless, and the trial insert that uses the number is an ordinary commit after
        # it, which flushes the WAL up to and including the reservation.
        # 8 kept open (plus 4 overflow): every heartbeat goes through this pool, and an overflow
        # connection is closed when it comes back, so a smaller pool reconnected under load (the
        # profile after issue 21 showed psycopg's connect at 3% of the server's CPU).
        self.autocommit_engine = (
            make_engine(self.url, pool_size=8, max_overflow=4, **waits, isolation_level="AUTOCOMMIT",
                        connect_args={"options": "-c synchronous_commit=off", **prepare})
            if self.dialect == "postgresql" else None
        )

    @classmethod
    def from_settings(cls, settings) -> "Database":
        return cls(settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow,
                   pool_timeout=settings.db_pool_timeout, connect_timeout=settings.db_connect_timeout,
                   busy_timeout=settings.db_busy_timeout, server_prepare=settings.db_server_prepare)

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """On SQLite, this process's write lock around a unit of work (one writer at a time: a
        DatabaseUnavailable when it stays taken for the busy timeout); nothing on PostgreSQL."""
        if self._sqlite_lock is None:
            yield
            return
        if not self._sqlite_lock.acquire(timeout=self._busy_timeout):
            raise DatabaseUnavailable(f"the database stayed locked for {self._busy_timeout:g} s")
        try:
            yield
        finally:
            self._sqlite_lock.release()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit when the block ends normally, roll back on any exception."""
        with self._writer(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def core(self) -> Iterator[Connection]:
        """A transaction on a plain Connection, for a unit of work that runs only Core statements
        (a report that cannot end its trial): no ORM Session to set up and tear down, which cost a
        report as much as one of its statements (issue 21's profile). Commits when the block ends
        normally, rolls back on any exception; on SQLite it takes the same process lock and BEGIN
        IMMEDIATE as transaction()."""
        with self._writer(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def renewal(self) -> Iterator[Connection]:
        """The unit of work of a lease renewal (a heartbeat, POST /leases/renew): on PostgreSQL an
        autocommit connection with asynchronous commit, so the fenced UPDATE is one round trip (no
        BEGIN, no COMMIT, no wait for the WAL flush); on SQLite a transaction on a plain Connection
        (core()). What a crash of the
        database can lose is the last fraction of a second of renewals: a lease then runs out as if
        that heartbeat had not been sent (the trial is requeued, the worker's next call is a 409);
        fencing is the UPDATE's own, so nothing is ever renewed that the caller did not hold. The
        rare writes after it (a provisional diagnosis, a re-check's stop) autocommit one by one."""
        if self.autocommit_engine is None:
            with self.core() as conn:
                yield conn
            return
        with self.autocommit_engine.connect() as conn:
            yield conn

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
