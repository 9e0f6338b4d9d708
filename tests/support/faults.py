"""The fault suite's scenarios, shared by the CI tests (tests/test_faults_live.py, small sizes) and
benchmarks/faults.py (full sizes, one table row per scenario and backend).

Each scenario starts real uvicorn servers on loopback over a throwaway database of its own, runs
simulated workers (threads, httpx: claim, report, complete; 503 and dropped connections retried
as a worker would), injects its fault, and then checks the database directly:

- duplicated: a completion acknowledged to two different leases of one trial, or one attempt of a
  trial held by two workers;
- lost: budget numbers with no trial row, trials not ended, acknowledged completions not stored;
- budget exact: exactly max_trials rows, numbered 0..max_trials-1, all completed, study finished;
- 5xx: every 5xx answer, split into 503s inside an outage window (allowed) and any other (not);
- max running: the most trials in state running, sampled every 100 ms from the database, and the
  most leases the workers held at once (each is at most the study's max_concurrent, when set).

All traffic goes to 127.0.0.1, every loop is bounded by count and time, and only the processes
and database connections the scenario created are stopped (connections are recognised by their
application_name).
"""
from __future__ import annotations

import json
import random
import secrets
import select
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.databases import PG_ADMIN_URL
from tests.support.live_server import LiveServer

SERVER_APP = "tuneserve-fault-server"  # application_name of the servers' connections
SPACE = {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
         "width": {"values": [16, 32, 64]}, "dropout": {"min": 0.0, "max": 0.5}}
TRANSPORT_ERRORS = (httpx.TransportError,)


# ---- databases ---------------------------------------------------------------------------------

class ScratchDatabase:
    """A throwaway database: a SQLite file, or a PostgreSQL database created for this scenario.

    `server_url` is what the servers use: on PostgreSQL it names SERVER_APP as application_name
    and carries a password (trust auth ignores it), so the logs can be checked for it."""

    def __init__(self, backend: str, tmp: Path):
        self.backend, self.tmp = backend, tmp
        self.password = "pw-" + secrets.token_hex(8)
        if backend == "sqlite":
            self.path = tmp / "faults.db"
            self.url = self.server_url = f"sqlite:///{self.path}"
            self.name = None
        else:
            self.name = f"tuneserve_faults_{uuid.uuid4().hex[:10]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            admin.dispose()
            base = make_url(PG_ADMIN_URL).set(database=self.name)
            self.url = base.render_as_string(hide_password=False)
            self.server_url = base.set(password=self.password, query={"application_name": SERVER_APP}) \
                .render_as_string(hide_password=False)
        self._engine = None

    @property
    def engine(self):
        if self._engine is None:
            self._engine = create_engine(self.url, pool_size=2, max_overflow=0)
        return self._engine

    def drop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self.backend == "postgres":
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            admin.dispose()

    # -- faults (PostgreSQL: only this database's server connections; SQLite: a lock on this file) --

    def terminate_server_connections(self) -> int:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            n = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND application_name = :app"), {"db": self.name, "app": SERVER_APP}).scalar_one()
        admin.dispose()
        return n

    def refuse_connections(self, refuse: bool) -> None:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}'))
        admin.dispose()

    def outage(self, seconds: float, stop: threading.Event) -> None:
        """The database is unusable for `seconds`: PostgreSQL drops every server connection and
        refuses new ones; SQLite is held locked by another process (here: another connection)."""
        if self.backend == "postgres":
            self.refuse_connections(True)
            try:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and not stop.is_set():
                    self.terminate_server_connections()
                    stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
            finally:
                self.refuse_connections(False)
        else:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            try:
                conn.execute("BEGIN EXCLUSIVE")
                stop.wait(seconds)
                conn.execute("ROLLBACK")
            finally:
                conn.close()


# ---- what the workers saw ------------------------------------------------------------------------

@dataclass
class Record:
    lock: threading.Lock = field(default_factory=threading.Lock)
    holds: list[tuple[int, int, str]] = field(default_factory=list)  # (trial, attempt, worker)
    acked: list[tuple[int, str, float]] = field(default_factory=list)  # completions answered 200: (trial, lease, value)
    statuses: list[tuple[float, int, str]] = field(default_factory=list)  # 5xx: (time, status, route)
    errors: list[str] = field(default_factory=list)  # answers no worker should get
    transport_errors: int = 0
    lease_lost: int = 0
    late_refused: int = 0
    late_accepted: int = 0
    client_running: int = 0
    client_running_max: int = 0
    requests: int = 0

    def hold(self, lease: dict, worker: str) -> None:
        with self.lock:
            self.holds.append((lease["trial_id"], lease["attempt"], worker))
            self.client_running += 1
            self.client_running_max = max(self.client_running_max, self.client_running)

    def let_go(self) -> None:
        with self.lock:
            self.client_running -= 1


class Api:
    """A worker's HTTP calls, retried the way a worker retries: 503 after Retry-After, dropped
    connections after a short backoff, both for at most `patience` seconds."""

    def __init__(self, base_urls: list[str], record: Record, token: str | None = None, patience: float = 120.0):
        self.urls, self.record, self.patience = base_urls, record, patience
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(timeout=30, headers=headers)
        self.turn = random.randrange(len(base_urls))

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response | None:
        deadline = time.monotonic() + self.patience
        while time.monotonic() < deadline:
            self.turn = (self.turn + 1) % len(self.urls)  # several servers: alternate between them
            try:
                r = self.http.request(method, self.urls[self.turn] + "/api/v1" + path,
                                      content=None if body is None else json.dumps(body),
                                      headers={"content-type": "application/json"})
            except TRANSPORT_ERRORS:
                with self.record.lock:
                    self.record.transport_errors += 1
                time.sleep(random.uniform(0.1, 0.4))
                continue
            with self.record.lock:
                self.record.requests += 1
                if r.status_code >= 500:
                    self.record.statuses.append((time.monotonic(), r.status_code, path.split("/")[1]))
            if r.status_code == 503:
                time.sleep(min(2.0, float(r.headers.get("retry-after", "1"))) * random.uniform(0.5, 1.0))
                continue
            return r
        return None


# ---- the worker loop -----------------------------------------------------------------------------

@dataclass
class Load:
    study: str
    workers: int
    pause_every: int = 0  # every n-th trial of a worker sleeps past its lease before completing
    pause_seconds: float = 0.0
    ask_every: int = 0  # every n-th worker asks (count 2) instead of claiming
    token_for: Callable[[int], str | None] = lambda i: None


def run_workers(urls: list[str], load: Load, record: Record, budget_s: float) -> None:
    deadline = time.monotonic() + budget_s
    threads = [threading.Thread(target=_worker, args=(urls, load, record, i, deadline), daemon=True)
               for i in range(load.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(budget_s + 60)


def _worker(urls: list[str], load: Load, record: Record, index: int, deadline: float) -> None:
    name = f"w{index}"
    api = Api(urls, record, load.token_for(index))
    try:
        _work(api, load, record, name, index, deadline)
    except Exception as err:  # noqa: BLE001 - the verdict reports it
        with record.lock:
            record.errors.append(f"{name}: {err!r}"[:500])
    finally:
        api.close()


def _work(api: Api, load: Load, record: Record, name: str, index: int, deadline: float) -> None:
    asking = bool(load.ask_every) and index % load.ask_every == 0
    queue: list[dict] = []
    n = 0
    while time.monotonic() < deadline:
        if not queue:
            if asking:
                r = api.call("POST", f"/studies/{load.study}/ask", {"count": 2, "worker_id": name})
                got = r.json() if r is not None and r.status_code == 200 else []
            else:
                r = api.call("POST", "/trials/claim", {"worker_id": name, "study": load.study})
                got = [r.json()] if r is not None and r.status_code == 200 else []
            if not got:
                if r is not None and r.status_code not in (200, 204):
                    raise AssertionError(f"claim answered {r.status_code}: {r.text[:300]}")
                s = api.call("GET", f"/studies/{load.study}")
                if s is not None and s.json()["state"] == "finished":
                    return
                time.sleep(0.2)
                continue
            for lease in got:
                record.hold(lease, name)
            queue = got
        lease = queue.pop(0)
        n += 1
        queue += _one_trial(api, load, record, lease, name, pause=bool(load.pause_every) and n % load.pause_every == 0,
                            claim_next=not asking and not queue and n % 2 == 0)


def _one_trial(api: Api, load: Load, record: Record, lease: dict, name: str, pause: bool, claim_next: bool) -> list:
    tid, tok = lease["trial_id"], lease["lease_token"]
    value = float(tid % 97) / 97
    r = api.call("POST", f"/trials/{tid}/report", {"lease_token": tok, "step": 1, "metrics": {"val_loss": value + 0.1}})
    if r is None or r.status_code != 200:
        record.let_go()
        _lost(record, r, tid)
        return []
    if pause:
        time.sleep(load.pause_seconds)  # a worker stalled past its lease (a GC pause, a frozen VM)
    record.let_go()  # before the request: the server may hand the slot on as soon as it commits
    body: dict[str, Any] = {"lease_token": tok, "value": value}
    if claim_next:
        body["claim_next"] = {"worker_id": name, "study": load.study}
    r = api.call("POST", f"/trials/{tid}/complete", body)
    if r is None or r.status_code != 200:
        if pause:
            with record.lock:
                record.late_refused += 1
        _lost(record, r, tid)
        return []
    with record.lock:
        record.acked.append((tid, tok, value))
        if pause:
            record.late_accepted += 1
    nxt = r.json().get("next")
    if nxt:
        record.hold(nxt, name)
        return [nxt]
    return []


def _lost(record: Record, r: httpx.Response | None, tid: int) -> None:
    if r is not None and r.status_code in (409,):
        with record.lock:
            record.lease_lost += 1
        return
    raise AssertionError(f"trial {tid}: {None if r is None else (r.status_code, r.text[:300])}")


# ---- sampling and verdicts -------------------------------------------------------------------------

class RunningSampler:
    """Counts trials in state running every `every` seconds, straight from the database."""

    def __init__(self, db: ScratchDatabase, study: str, every: float = 0.1):
        self.db, self.study, self.every = db, study, every
        self.max_running, self.samples, self.errors = 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = self.db.engine.connect()
        try:
            while not self._stop.is_set():
                try:
                    n = conn.execute(text(
                        "SELECT count(*) FROM trials t JOIN studies s ON s.id = t.study_id "
                        "WHERE s.name = :n AND t.state = 'running'"), {"n": self.study}).scalar_one()
                    conn.rollback()
                    self.max_running = max(self.max_running, n)
                    self.samples += 1
                except Exception:  # noqa: BLE001 - a sample lost to the outage; the next one counts
                    self.errors += 1
                    conn.rollback()
                self._stop.wait(self.every)
        finally:
            conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


@dataclass
class Outcome:
    scenario: str
    backend: str
    size: str
    duplicated: int
    lost: int
    budget_exact: bool
    fivexx_in_outage: int
    fivexx_other: int
    max_running: int
    max_running_client: int
    limit: int | None
    seconds: float
    completed_per_s: float
    notes: str = ""
    failed_checks: list[str] = field(default_factory=list)  # scenario-specific expectations not met
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        capped = self.limit is None or (self.max_running <= self.limit and self.max_running_client <= self.limit)
        return (self.duplicated == 0 and self.lost == 0 and self.budget_exact and self.fivexx_other == 0 and capped
                and not self.failed_checks)


def verdict(scenario: str, backend: str, db: ScratchDatabase, study: str, max_trials: int, record: Record,
            sampler: RunningSampler | None, started: float, outages: list[tuple[float, float]],
            limit: int | None = None, size: str = "", notes: str = "") -> Outcome:
    elapsed = time.monotonic() - started
    with db.engine.connect() as conn:
        state = conn.execute(text("SELECT state FROM studies WHERE name = :n"), {"n": study}).scalar_one()
        rows = conn.execute(text(
            "SELECT t.id, t.number, t.state, t.value, t.lease_token FROM trials t JOIN studies s ON s.id = t.study_id "
            "WHERE s.name = :n"), {"n": study}).all()
    by_id = {r.id: r for r in rows}
    # Duplicated: completions acknowledged to two leases of one trial, or one attempt held twice.
    leases_acked = defaultdict(set)
    for tid, tok, _ in record.acked:
        leases_acked[tid].add(tok)
    holders = Counter((tid, attempt) for tid, attempt, _ in record.holds)
    duplicated = sum(len(v) - 1 for v in leases_acked.values() if len(v) > 1) \
        + sum(n - 1 for n in holders.values() if n > 1)
    # Lost: numbers with no row, rows not ended, acknowledged completions the database does not have.
    numbers = sorted(r.number for r in rows)
    missing = len(set(range(max_trials)) - set(numbers))
    unfinished = sum(1 for r in rows if r.state in ("waiting", "running"))
    unstored = sum(1 for tid, tok, value in record.acked
                   if tid not in by_id or by_id[tid].state != "completed" or by_id[tid].lease_token != tok
                   or by_id[tid].value is None or abs(by_id[tid].value - value) > 1e-12)
    lost = missing + unfinished + unstored
    completed = sum(1 for r in rows if r.state == "completed")
    exact = numbers == list(range(max_trials)) and completed == max_trials and state == "finished"
    in_outage = other = 0
    for t, status, _route in record.statuses:
        if status == 503 and any(a - 0.5 <= t <= b + 8.0 for a, b in outages):
            in_outage += 1
        else:
            other += 1
    return Outcome(
        failed_checks=[f"worker error: {e}" for e in record.errors[:5]],
        scenario=scenario, backend=backend, size=size, duplicated=duplicated, lost=lost, budget_exact=exact,
        fivexx_in_outage=in_outage, fivexx_other=other,
        max_running=sampler.max_running if sampler else -1, max_running_client=record.client_running_max,
        limit=limit, seconds=elapsed, completed_per_s=completed / elapsed if elapsed else 0.0, notes=notes,
        details={"study_state": state, "rows": len(rows), "completed": completed, "missing": missing,
                 "unfinished": unfinished, "unstored": unstored, "lease_lost": record.lease_lost,
                 "transport_errors": record.transport_errors, "late_refused": record.late_refused,
                 "late_accepted": record.late_accepted, "requests": record.requests,
                 "statuses": Counter(s for _, s, _ in record.statuses),
                 "samples": sampler.samples if sampler else 0},
    )


# ---- scenarios -------------------------------------------------------------------------------------

def _servers(db: ScratchDatabase, tmp: Path, count: int = 1, env: dict[str, str] | None = None) -> list[LiveServer]:
    servers = []
    for i in range(count):
        s = LiveServer(db.server_url, env={"TUNESERVE_DB_POOL_SIZE": "8", **(env or {})},
                       log_path=tmp / f"server{i}.log")
        s.start(timeout=90)
        servers.append(s)
    return servers


def _create_study(url: str, body: dict, token: str | None = None) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = httpx.post(url + "/api/v1/studies", json=body, headers=headers, timeout=60)
    assert r.status_code == 201, r.text


def scenario_load(backend: str, workers: int, trials: int, *, outage_s: float = 0.0, kill9: bool = False,
                  tmp: Path | None = None, budget_s: float = 600) -> Outcome:
    """Workers run a random study to its end; optionally the database goes away for `outage_s`
    (PostgreSQL: connections terminated and refused; SQLite: the file locked) or the server is
    killed with SIGKILL and restarted, both about a second in."""
    tmp = Path(tmp or tempfile.mkdtemp(prefix="faults-"))
    db = ScratchDatabase(backend, tmp)
    # SQLite's lock wait is the time to a 503 in its outage; a short one keeps it prompt.
    env = {"TUNESERVE_DB_BUSY_TIMEOUT": "2"} if backend == "sqlite" and outage_s else {}
    servers = _servers(db, tmp, env=env)
    name = "load"
    lease = 60.0 if outage_s else 5.0  # a lease outlives the outage; after a kill, orphans return soon
    try:
        _create_study(servers[0].url, {"name": name, "method": "random", "parameters": SPACE, "max_trials": trials,
                                       "lease_seconds": lease, "max_retries": 20, "seed": 1})
        record, outages, stop = Record(), [], threading.Event()
        fault = None
        if outage_s:
            def outage():
                time.sleep(1.0)
                t0 = time.monotonic()
                db.outage(outage_s, stop)
                outages.append((t0, time.monotonic()))
            fault = threading.Thread(target=outage, daemon=True)
        elif kill9:
            def crash():
                time.sleep(1.0)
                servers[0].kill()
                time.sleep(1.0)
                servers[0].start(timeout=90)
            fault = threading.Thread(target=crash, daemon=True)
        started = time.monotonic()
        with RunningSampler(db, name) as sampler:
            if fault:
                fault.start()
            run_workers([s.url for s in servers], Load(name, workers), record, budget_s)
            if fault:
                fault.join(outage_s + 120)
        scenario = "db outage" if outage_s else ("server kill -9" if kill9 else "load")
        notes = f"{outage_s:g} s outage" if outage_s else ("killed and restarted" if kill9 else "")
        out = verdict(scenario, backend, db, name, trials, record, sampler, started, outages,
                      size=f"{workers}x{trials}", notes=notes)
        out.failed_checks += [f"secret in a log: {leak}" for leak in secrets_in_logs(tmp, [db.password], record)]
        if kill9 and record.transport_errors == 0:
            out.failed_checks.append("the kill was not felt (no dropped connection)")
        if outage_s and out.fivexx_in_outage == 0:
            out.failed_checks.append("the outage was not felt (no 503)")
        return out
    finally:
        for s in servers:
            s.stop()
        db.drop()


def scenario_paused_worker(backend: str, workers: int, trials: int, tmp: Path | None = None,
                           budget_s: float = 600) -> Outcome:
    """Every 5th trial of each worker stalls past its 2 s lease before completing: the trial must
    go to someone else, and the stalled completion must be refused (409), never accepted twice."""
    tmp = Path(tmp or tempfile.mkdtemp(prefix="faults-"))
    db = ScratchDatabase(backend, tmp)
    servers = _servers(db, tmp, env={"TUNESERVE_REAPER_INTERVAL": "0.2"})
    name = "paused"
    try:
        _create_study(servers[0].url, {"name": name, "method": "random", "parameters": SPACE, "max_trials": trials,
                                       "lease_seconds": 2, "max_retries": 50, "seed": 2})
        record = Record()
        started = time.monotonic()
        with RunningSampler(db, name) as sampler:
            run_workers([s.url for s in servers], Load(name, workers, pause_every=5, pause_seconds=3.5), record,
                        budget_s)
        out = verdict("worker paused past lease", backend, db, name, trials, record, sampler, started, [],
                      size=f"{workers}x{trials}",
                      notes=f"{record.late_refused} stalled completions refused (409), {record.late_accepted} taken")
        if record.late_refused == 0:
            out.failed_checks.append("no stalled completion was refused: the scenario exercised nothing")
        return out
    finally:
        for s in servers:
            s.stop()
        db.drop()


def scenario_max_concurrent(backend: str, cap: int, workers: int, trials: int, method: str = "tpe",
                            processes: int = 2, tmp: Path | None = None, budget_s: float = 600) -> Outcome:
    """Two server processes on one database, a study with max_concurrent = cap, workers claiming
    and asking through both: never more than `cap` trials running (sampled every 100 ms, and
    counted by the workers holding leases)."""
    tmp = Path(tmp or tempfile.mkdtemp(prefix="faults-"))
    db = ScratchDatabase(backend, tmp)
    servers = _servers(db, tmp, count=processes)
    name = f"cap{cap}"
    try:
        _create_study(servers[0].url, {"name": name, "method": method, "parameters": SPACE, "max_trials": trials,
                                       "max_concurrent": cap, "lease_seconds": 30, "max_retries": 5, "seed": 3})
        record = Record()
        started = time.monotonic()
        with RunningSampler(db, name) as sampler:
            run_workers([s.url for s in servers], Load(name, workers, ask_every=4), record, budget_s)
        return verdict(f"max_concurrent {cap}, {processes} servers", backend, db, name, trials, record, sampler,
                       started, [], limit=cap, size=f"{workers}x{trials}", notes=method)
    finally:
        for s in servers:
            s.stop()
        db.drop()


def scenario_auth(backend: str, workers: int, trials: int, tmp: Path | None = None, budget_s: float = 600) -> Outcome:
    """A server with the shared admin token and named worker tokens: workers run a study with their
    own tokens while good, wrong, revoked, non-ASCII and other workers' tokens are tried."""
    tmp = Path(tmp or tempfile.mkdtemp(prefix="faults-"))
    db = ScratchDatabase(backend, tmp)
    admin = "admin-" + secrets.token_hex(8)
    servers = _servers(db, tmp, env={"TUNESERVE_API_TOKEN": admin, "TUNESERVE_TOKEN_CACHE_SECONDS": "1"})
    url, name = servers[0].url, "auth"
    adm = {"authorization": f"Bearer {admin}"}
    checks: dict[str, bool] = {}
    try:
        tokens = []
        for i in range(3):
            r = httpx.post(url + "/api/v1/tokens", json={"name": f"worker-{i}", "role": "worker"}, headers=adm)
            assert r.status_code == 201, r.text
            tokens.append(r.json()["token"])
        revoked = httpx.post(url + "/api/v1/tokens", json={"name": "gone", "role": "worker"}, headers=adm).json()["token"]
        assert httpx.delete(url + "/api/v1/tokens/gone", headers=adm).status_code == 204
        _create_study(url, {"name": name, "method": "random", "parameters": SPACE, "max_trials": trials,
                            "lease_seconds": 30, "max_retries": 5, "seed": 4}, admin)
        with httpx.Client(base_url=url + "/api/v1", timeout=30) as c:
            def status(method, path, headers=None, body=None):
                return c.request(method, path, headers=headers or {}, json=body).status_code

            w0 = {"authorization": f"Bearer {tokens[0]}"}
            w1 = {"authorization": f"Bearer {tokens[1]}"}
            checks["good token 200"] = status("GET", f"/studies/{name}", w0) == 200
            checks["no token 401"] = status("GET", f"/studies/{name}") == 401
            checks["wrong token 401"] = status("GET", f"/studies/{name}", {"authorization": "Bearer nope"}) == 401
            checks["revoked token 401"] = status("GET", f"/studies/{name}", {"authorization": f"Bearer {revoked}"}) == 401
            checks["non-ASCII token 401"] = all(
                status(m, p, {"authorization": "Bearer tökén".encode()}, {}) == 401
                for m, p in [("GET", "/studies"), ("POST", "/trials/claim"), ("POST", "/trials/1/complete"),
                             ("POST", "/studies"), ("GET", "/tokens")])
            checks["worker creates study 403"] = status("POST", "/studies", w0, {"name": "x", "parameters": SPACE}) == 403
            checks["worker deletes study 403"] = status("DELETE", f"/studies/{name}", w0) == 403
            lease = c.post("/trials/claim", json={"worker_id": "a", "study": name}, headers=w0).json()
            tid, tok = lease["trial_id"], lease["lease_token"]
            checks["other worker's token on a lease 403"] = status(
                "POST", f"/trials/{tid}/complete", w1, {"lease_token": tok, "value": 1.0}) == 403
            checks["forged lease 409"] = status(
                "POST", f"/trials/{tid}/complete", w0, {"lease_token": "0" * 32, "value": 1.0}) == 409
            checks["holder completes 200"] = status(
                "POST", f"/trials/{tid}/complete", w0, {"lease_token": tok, "value": 0.5}) == 200
            checks["other token re-completes 409"] = status(
                "POST", f"/trials/{tid}/complete", w1, {"lease_token": tok, "value": 0.5}) == 409
        record = Record()
        with record.lock:
            record.acked.append((tid, tok, 0.5))
        started = time.monotonic()
        with RunningSampler(db, name) as sampler:
            run_workers([url], Load(name, workers, token_for=lambda i: tokens[i % len(tokens)]), record, budget_s)
        failed = [k for k, ok in checks.items() if not ok]
        out = verdict("auth: good/wrong/revoked/non-ASCII/other's", backend, db, name, trials, record, sampler,
                      started, [], size=f"{workers}x{trials}",
                      notes=f"{len(checks) - len(failed)}/{len(checks)} auth checks as expected")
        out.failed_checks += failed
        out.failed_checks += [f"secret in a log: {leak}" for leak in
                              secrets_in_logs(tmp, [admin, *tokens, revoked, db.password], record)]
        return out
    finally:
        for s in servers:
            s.stop()
        db.drop()


def scenario_bodies(backend: str, workers: int, trials: int, tmp: Path | None = None, budget_s: float = 600) -> Outcome:
    """Oversized (declared and chunked), slow-body, slow-header and deeply nested requests sent
    while workers run a study: each is refused (413 / 408 / 422), and the workers are not held up."""
    tmp = Path(tmp or tempfile.mkdtemp(prefix="faults-"))
    db = ScratchDatabase(backend, tmp)
    servers = _servers(db, tmp, env={"TUNESERVE_BODY_TIMEOUT": "3", "TUNESERVE_HEADER_TIMEOUT": "3"})
    url, port, name = servers[0].url, servers[0].port, "bodies"
    answers: dict[str, str] = {}
    try:
        _create_study(url, {"name": name, "method": "random", "parameters": SPACE, "max_trials": trials,
                            "lease_seconds": 30, "max_retries": 5, "seed": 5})

        def attacks():
            answers["50 MB declared"] = _raw(port, b"POST /api/v1/trials/claim HTTP/1.1\r\nhost: x\r\n"
                                                   b"content-type: application/json\r\ncontent-length: 50000000\r\n\r\n")
            answers["chunked over limit"] = _chunked(port, 3_000_000)
            answers["slow body"] = _raw(port, b"POST /api/v1/trials/claim HTTP/1.1\r\nhost: x\r\n"
                                              b"content-length: 100\r\n\r\n{", trickle=b" " * 99)
            answers["slow headers"] = _raw(port, b"GET /healthz HTTP/1.1\r\n", trickle=b"x-slow: " + b"a" * 200)
            deep = "[" * 5000 + "]" * 5000
            answers["JSON 5000 deep"] = str(httpx.post(url + "/api/v1/trials/claim", timeout=30, content=deep,
                                                       headers={"content-type": "application/json"}).status_code)
            yaml_deep = "name: y\nparameters: " + "[" * 3000 + "]" * 3000
            answers["YAML 3000 deep"] = str(httpx.post(url + "/api/v1/studies", timeout=30, content=yaml_deep,
                                                       headers={"content-type": "application/yaml"}).status_code)

        attacker = threading.Thread(target=attacks, daemon=True)
        record = Record()
        started = time.monotonic()
        with RunningSampler(db, name) as sampler:
            attacker.start()
            run_workers([url], Load(name, workers), record, budget_s)
            attacker.join(120)
        expected = {"50 MB declared": "413", "chunked over limit": "413", "slow body": "408", "slow headers": "408",
                    "JSON 5000 deep": "422", "YAML 3000 deep": "422"}
        wrong = {k: answers.get(k) for k, v in expected.items() if answers.get(k) != v}
        out = verdict("oversized/slow/deep bodies", backend, db, name, trials, record, sampler, started, [],
                      size=f"{workers}x{trials}",
                      notes=f"{len(expected) - len(wrong)}/{len(expected)} refused as expected (413/408/422)")
        out.failed_checks += [f"{k}: answered {v}, expected {expected[k]}" for k, v in wrong.items()]
        out.details["answers"] = answers
        return out
    finally:
        for s in servers:
            s.stop()
        db.drop()


def _raw(port: int, head: bytes, trickle: bytes = b"", every: float = 0.25, limit_s: float = 30) -> str:
    """Send `head`, then `trickle` byte by byte; the status code of the answer, or 'closed'."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        sock.sendall(head)
        data, deadline = b"", time.monotonic() + limit_s
        sock.settimeout(every)
        pending = list(trickle)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    break
            except TimeoutError:
                if pending:
                    try:
                        sock.sendall(bytes([pending.pop(0)]))
                    except OSError:
                        break
            except ConnectionResetError:
                break
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed"


def _chunked(port: int, total: int) -> str:
    """A chunked upload of `total` bytes, sent as fast as the server takes it, until it answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/trials/claim HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        sent, data = 0, b""
        while sent < total and not data:
            try:
                sock.sendall(b"4000\r\n" + b" " * 0x4000 + b"\r\n")
                sent += 0x4000
                if select.select([sock], [], [], 0)[0]:
                    data += sock.recv(65536)
            except OSError:
                break
        sock.settimeout(5)
        try:
            data += sock.recv(65536)
        except OSError:
            pass
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed"


def secrets_in_logs(tmp: Path, secrets_: list[str], record: Record) -> list[str]:
    """Which secrets (passwords, API tokens, lease tokens the workers held) appear in any server log."""
    logs = "".join(p.read_text(errors="replace") for p in tmp.glob("server*.log"))
    leaked = [s[:6] + "..." for s in secrets_ if s and s in logs]
    leaked += [f"lease {tok[:6]}..." for _, tok, _ in record.acked if tok in logs]
    return leaked
