"""Store functions for trials and reports: claim under a lease, renew, finish, expire, record steps.

Every state change of a held trial is one conditional UPDATE that names the trial, its state and
the caller's lease token (fencing): a worker whose lease ran out matches no row and changes nothing.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Iterable, NamedTuple

from sqlalchemy import (
    Connection, Text, and_, bindparam, case, cast, delete, func, insert, or_, select, text, true, tuple_, update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tuneserve_service.db.engine import db_epoch, db_token
from tuneserve_service.db.models import Study, Trial, TrialReport, utcnow
from tuneserve_service.store.workers import ANY, runs_study
from tuneserve.schemas.objectives import PROGRAM

TRIALS = Trial.__table__
REPORTS = TrialReport.__table__
STUDIES = Study.__table__


def new_token() -> str:
    return secrets.token_hex(16)


def _lease_seconds_of_study():
    return (
        select(STUDIES.c.lease_seconds).where(STUDIES.c.id == TRIALS.c.study_id).scalar_subquery()
    )


def insert_trials(
    session: Session, study_id: int, numbers: Iterable[int], params_list: list[dict[str, Any]],
    methods: list[str], *, state: str, worker_id: str | None = None, lease_seconds: float | None = None,
    holder: str | None = None, drawn: bool = True, fidelities: list[dict[str, Any] | None] | None = None,
    config_keys: list[str | None] | None = None, kind: str = "trial",
) -> list[dict[str, Any]]:
    """Insert trials in one statement; running ones get a lease for `worker_id` (held by `holder`).
    `fidelities` and `config_keys` (one per trial) are recorded as given; `kind` is 'trial' or a
    special run's (service/domain/features/gates.py). Returns the inserted rows, in number order."""
    now = utcnow()
    running = state == "running"
    count = len(params_list)
    fidelities = fidelities if fidelities is not None else [None] * count
    config_keys = config_keys if config_keys is not None else [None] * count
    rows = [
        dict(study_id=study_id, number=number, state=state, params=params, method=method, attempt=0,
             metrics={}, created_at=now, drawn=drawn, worker_id=worker_id if running else None,
             holder=holder if running else None, lease_token=new_token() if running else None,
             started_at=now if running else None, runs=1 if running else 0,
             b_lease=lease_seconds if running else None, fidelity=fidelity, config_key=key, kind=kind)
        for number, params, method, fidelity, key in zip(numbers, params_list, methods, fidelities, config_keys)
    ]
    if not rows:
        return []
    stmt = _LEASED_INSERT if running else _PLAIN_INSERT
    if not running:
        for row in rows:
            del row["b_lease"]
    inserted = session.execute(stmt, rows).mappings().all()
    return sorted((dict(r) for r in inserted), key=lambda r: r["number"])


_LEASED_INSERT = insert(TRIALS).values(lease_expires_at=db_epoch() + bindparam("b_lease")).returning(*TRIALS.c)
_PLAIN_INSERT = insert(TRIALS).returning(*TRIALS.c)


# ---- reservations: a trial number is taken together with its row --------------------------------

# A reservation's lease covers only the draw (history read, optimizer, fill); the fill renews it to
# the study's lease. A reservation orphaned by a crash or an outage is back in the queue this soon.
RESERVATION_SECONDS = 10.0

def reserve_trials(
    session: Session, study_id: int, count: int, extra: int, *, worker_id: str, holder: str | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Take up to `count` trial numbers to run now (capped by the budget and max_concurrent) and up
    to `extra` more to queue, inserting each as an undrawn row running under a fresh lease for
    `worker_id`. Returns (rows to run, rows to queue); both empty when the study is not running or
    nothing may run now. The caller holds the study's admission lock (store.studies.lock_admission)
    or, on SQLite, an IMMEDIATE transaction, so the running count read here is exact."""
    study = session.execute(
        select(STUDIES.c.state, STUDIES.c.next_number, STUDIES.c.max_trials, STUDIES.c.max_concurrent,
               STUDIES.c.method, STUDIES.c.lease_seconds, STUDIES.c.gate).where(STUDIES.c.id == study_id)
    ).one_or_none()
    if study is None or study.state != "running" or study.gate is not None:  # a gate holds trials back
        return [], []
    left = None if study.max_trials is None else max(0, study.max_trials - study.next_number)
    run = count if left is None else min(count, left)
    if study.max_concurrent is not None:
        running = session.scalar(
            select(func.count()).where(TRIALS.c.study_id == study_id, TRIALS.c.state == "running")
        ) or 0
        run = max(0, min(run, study.max_concurrent - running))
    if run == 0:
        return [], []
    queue = extra if left is None else max(0, min(extra, left - run))
    first = study.next_number
    session.execute(update(STUDIES).where(STUDIES.c.id == study_id).values(next_number=first + run + queue))
    rows = insert_trials(
        session, study_id, range(first, first + run + queue), [{}] * (run + queue), [study.method] * (run + queue),
        state="running", worker_id=worker_id, lease_seconds=min(study.lease_seconds, RESERVATION_SECONDS),
        holder=holder, drawn=False,
    )
    return rows[:run], rows[run:]


# One statement on an autocommit connection: the study row is locked only inside it, never across a
# client round trip. No FOR UPDATE: the guard `next_number = h.first` makes it optimistic. A
# concurrent reservation that committed first changes next_number, PostgreSQL re-checks the guard on
# the new row version, nothing is updated or inserted (`wanted` > 0 with no row), and the caller
# runs the statement again with a fresh snapshot. The numbers and their rows commit together, so a
# crash at any point loses neither. Used only for studies without max_concurrent: a concurrency cap
# needs the running count read under the admission lock (reserve_trials).
_RESERVE_PG = text("""
WITH g AS (
    SELECT id, next_number AS first, method, lease_seconds,
           COALESCE(max_trials - next_number, 2147483647) AS budget_left,
           GREATEST(0, LEAST(:count, COALESCE(max_trials - next_number, :count))) AS run
    FROM studies WHERE id = :study_id AND state = 'running' AND gate IS NULL AND max_concurrent IS NULL
), h AS (
    SELECT id, first, run, method, lease_seconds,
           CASE WHEN run = 0 THEN 0 ELSE GREATEST(0, LEAST(:extra, budget_left - run)) END AS queue
    FROM g
), u AS (
    UPDATE studies SET next_number = h.first + h.run + h.queue
    FROM h WHERE studies.id = h.id AND h.run > 0 AND studies.next_number = h.first AND studies.state = 'running'
      AND studies.gate IS NULL
    RETURNING h.first, h.run, h.queue, h.method, h.lease_seconds
), ins AS (
    INSERT INTO trials (study_id, number, state, params, method, attempt, runs, worker_id, holder, lease_token,
                        lease_expires_at, metrics, created_at, started_at, drawn)
    SELECT :study_id, n, 'running', '{}'::jsonb, u.method, 0, 1, :worker_id, :holder,
           replace(gen_random_uuid()::text, '-', ''),
           EXTRACT(EPOCH FROM clock_timestamp())::double precision + LEAST(u.lease_seconds, :reservation_seconds),
           '{}'::jsonb, now(), now(), false
    FROM u CROSS JOIN generate_series(u.first, u.first + u.run + u.queue - 1) AS n
    RETURNING *
)
SELECT h.run AS wanted, ins.* FROM h LEFT JOIN ins ON true ORDER BY ins.number
""")
RESERVE_TRIES = 100


def reserve_trials_pg(
    conn: Connection, study_id: int, count: int, extra: int, *, worker_id: str, holder: str | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """reserve_trials as one autocommit PostgreSQL statement (studies without max_concurrent);
    retried when a concurrent reservation won the study row."""
    params = {"study_id": study_id, "count": count, "extra": extra, "worker_id": worker_id, "holder": holder,
              "reservation_seconds": RESERVATION_SECONDS}
    for _ in range(RESERVE_TRIES):
        result = conn.execute(_RESERVE_PG, params).mappings().all()
        if not result or result[0]["wanted"] == 0:
            return [], []
        if result[0]["id"] is not None:
            run = result[0]["wanted"]
            rows = [{k: v for k, v in r.items() if k != "wanted"} for r in result]
            return rows[:run], rows[run:]
    return [], []


def fill_drawn(
    session: Session, rows: list[dict[str, Any]], params_list: list[dict[str, Any]], methods: list[str],
    *, queue: bool = False, fidelities: list[dict[str, Any] | None] | None = None,
    config_keys: list[str | None] | None = None,
) -> list[dict[str, Any]]:
    """Give reserved rows their drawn params (with each trial's fidelity record and configuration
    key) and the study's full lease. Fenced by each row's lease token: a reservation whose lease
    ran out meanwhile (and was taken over) is left to its new holder. `queue` rows go to waiting
    for any worker to claim, in one executemany (nothing is returned for them); rows to run come
    back filled, those that could not be filled do not."""
    fidelities = fidelities if fidelities is not None else [None] * len(rows)
    config_keys = config_keys if config_keys is not None else [None] * len(rows)
    params = [{"b_id": row["id"], "b_token": row["lease_token"], "b_params": p, "b_method": m,
               "b_fidelity": f, "b_config_key": k}
              for row, p, m, f, k in zip(rows, params_list, methods, fidelities, config_keys)]
    if not params:
        return []
    if queue:
        session.execute(_FILL_QUEUED, params)
        return []
    return [dict(r) for p in params if (r := session.execute(_FILL_RUNNING, p).mappings().one_or_none())]


_RESERVED = and_(TRIALS.c.id == bindparam("b_id"), TRIALS.c.lease_token == bindparam("b_token"),
                 TRIALS.c.state == "running", TRIALS.c.drawn.is_(False))
_FILL_RUNNING = (
    update(TRIALS).where(_RESERVED)
    .values(params=bindparam("b_params", type_=TRIALS.c.params.type), method=bindparam("b_method"), drawn=True,
            fidelity=bindparam("b_fidelity", type_=TRIALS.c.fidelity.type), config_key=bindparam("b_config_key"),
            lease_expires_at=db_epoch() + _lease_seconds_of_study())
    .returning(*TRIALS.c)
)
_FILL_QUEUED = (
    update(TRIALS).where(_RESERVED)
    .values(params=bindparam("b_params", type_=TRIALS.c.params.type), method=bindparam("b_method"), drawn=True,
            fidelity=bindparam("b_fidelity", type_=TRIALS.c.fidelity.type), config_key=bindparam("b_config_key"),
            state="waiting", worker_id=None, holder=None, lease_token=None, lease_expires_at=None, started_at=None)
)


def undraw_waiting(session: Session, study_id: int) -> int:
    """Put the study's waiting trials that its engine drew (not enqueued configurations, repeats or
    special runs) back to undrawn: the claim that takes each draws its params again, from the space
    as it is then (a narrowed lr). Returns how many."""
    return session.execute(
        update(TRIALS)
        .where(TRIALS.c.study_id == study_id, TRIALS.c.state == "waiting", TRIALS.c.drawn.is_(True),
               TRIALS.c.kind == "trial", TRIALS.c.method.not_in(("enqueued", "repeat")))
        .values(drawn=False, params={}, fidelity=None, config_key=None)
    ).rowcount or 0


def delete_undrawn(session: Session, rows: list[dict[str, Any]]) -> int:
    """Remove reserved rows that will never be drawn (a grid with no points left); fenced like
    fill_drawn. Returns how many went."""
    gone = 0
    for row in rows:
        gone += session.execute(
            delete(TRIALS).where(TRIALS.c.id == row["id"], TRIALS.c.lease_token == row["lease_token"],
                                 TRIALS.c.drawn.is_(False))
        ).rowcount or 0
    return gone


# ---- claims ---------------------------------------------------------------------------------------

_RUNNING_PEERS = TRIALS.alias("running_peers")
# A study with a gate (service/domain/features/gates.py) hands out only the special run of that gate's kind;
# one without, only ordinary trials.
_KIND_ALLOWED = or_(and_(STUDIES.c.gate.is_(None), TRIALS.c.kind == "trial"), STUDIES.c.gate == TRIALS.c.kind)
ORDINARY = TRIALS.c.kind == "trial"


@lru_cache(maxsize=1)

def _take(picked):
    """The UPDATE that hands the `picked` rows (a locking CTE of waiting trial ids) to the claimant:
    running, under a new lease token and expiry, one more run; returns the whole rows."""
    return (
        update(TRIALS)
        .where(TRIALS.c.id.in_(select(picked.c.id)), TRIALS.c.state == "waiting")
        .values(
            state="running", worker_id=bindparam("b_worker_id"), holder=bindparam("b_holder"), lease_token=db_token(),
            lease_expires_at=db_epoch() + _lease_seconds_of_study(), started_at=bindparam("b_now"),
            stop_reason=None, stop_step=None, runs=TRIALS.c.runs + 1,
        )
        .returning(*TRIALS.c)
    )

def _claim_statement():
    """Built once: constructing this statement costs more than running it. Parameters:
    b_study_id, b_worker_id, b_holder, b_now, b_limit."""
    r = _RUNNING_PEERS
    running = (
        select(func.count()).select_from(r).where(r.c.study_id == STUDIES.c.id, r.c.state == "running")
        .scalar_subquery()
    )
    candidates = (
        select(TRIALS.c.id)
        .join(STUDIES, STUDIES.c.id == TRIALS.c.study_id)
        .where(TRIALS.c.state == "waiting", STUDIES.c.state == "running", TRIALS.c.study_id == bindparam("b_study_id"),
               _KIND_ALLOWED, (STUDIES.c.max_concurrent.is_(None)) | (running < STUDIES.c.max_concurrent))
        .order_by(TRIALS.c.id)
        .limit(bindparam("b_limit"))
        .with_for_update(of=TRIALS, skip_locked=True)
    )
    # A CTE, not `id IN (subquery)`: PostgreSQL may run a subquery once per outer row, and with
    # SKIP LOCKED each run can pick another row, so one claim would take several trials. A locking
    # CTE is evaluated exactly once.
    picked = candidates.cte("picked")
    return _take(picked)


def claim_waiting(
    session: Session, *, worker_id: str, study_id: int, limit: int = 1, holder: str | None = None,
) -> list[dict[str, Any]]:
    """Hand the oldest waiting trials of a running study to `worker_id` under fresh leases.

    One statement: WITH picked AS (candidates) UPDATE ... RETURNING. PostgreSQL locks the candidates
    FOR UPDATE SKIP LOCKED, so concurrent claimers take different rows without waiting, and the
    UPDATE re-checks state='waiting'. SQLite: the transaction began IMMEDIATE, so claimers are
    serialised. Each row gets its own token from the database (db_token). For a study with
    max_concurrent the caller holds its admission lock (store.studies.lock_admission), so the
    running count the statement reads is exact; the limit on `limit` rows is then the caller's.
    Rows may come back undrawn (a reservation whose server died): the caller draws them.
    """
    params = {"b_study_id": study_id, "b_worker_id": worker_id, "b_holder": holder, "b_now": utcnow(),
              "b_limit": limit}
    rows = session.execute(_claim_statement(), params).mappings().all()
    return sorted((dict(row) for row in rows), key=lambda row: row["id"])


# The study header a named claim reads (store.studies' header columns, prefixed so they do not
# clash with the trial's).
_NAMED_HEADER = ("id", "name", "state", "metric_name", "goal", "pruner", "lease_seconds", "max_trials", "next_number",
                 "method", "max_concurrent", "objective", "fidelity", "stage_index", "parent_id", "metric_target",
                 "gate")


class StudyHeader(NamedTuple):
    """A study's header as a named claim read it (the columns of store.studies.study_header)."""

    id: int
    name: str
    state: str
    metric_name: str
    goal: str
    pruner: dict[str, Any] | None
    lease_seconds: float
    max_trials: int | None
    next_number: int
    method: str
    max_concurrent: int | None
    objective: str
    fidelity: dict[str, Any] | None
    stage_index: int | None
    parent_id: int | None
    metric_target: float | None
    gate: str | None


@lru_cache(maxsize=4)
def _named_claim_statement(objective_kind: str):
    """PostgreSQL: the study named b_name read and its oldest waiting trials claimed in one
    statement. WITH st AS (the study's header), picked AS (its waiting trials, FOR UPDATE SKIP
    LOCKED, only when it runs, has no max_concurrent and a worker running b_objective may run it),
    upd AS (UPDATE ... RETURNING) SELECT st, upd: one row with no trial when nothing was claimed,
    no row when no study has that name. `objective_kind`: "any", "program" or "named" (runs_study's
    three cases). Parameters: b_name, b_objective, b_worker_id, b_holder, b_now, b_limit."""
    st = select(*(STUDIES.c[k].label(f"s_{k}") for k in _NAMED_HEADER)).where(
        STUDIES.c.name == bindparam("b_name")).cte("st")
    runs = {"any": true(), "program": st.c.s_objective == PROGRAM,
            "named": or_(st.c.s_objective == "", st.c.s_objective == bindparam("b_objective"))}[objective_kind]
    kind_allowed = or_(and_(st.c.s_gate.is_(None), TRIALS.c.kind == "trial"), st.c.s_gate == TRIALS.c.kind)
    picked = (
        select(TRIALS.c.id).select_from(TRIALS.join(st, st.c.s_id == TRIALS.c.study_id))
        .where(TRIALS.c.state == "waiting", st.c.s_state == "running", st.c.s_max_concurrent.is_(None), runs,
               kind_allowed)
        .order_by(TRIALS.c.id).limit(bindparam("b_limit"))
        .with_for_update(of=TRIALS, skip_locked=True)
        .cte("picked")
    )
    upd = _take(picked).cte("upd")
    return select(st, upd).select_from(st.outerjoin(upd, true())).order_by(upd.c.id)


def claim_named(
    session: Session, *, worker_id: str, study_name: str, objective: str | None, limit: int = 1,
    holder: str | None = None,
) -> tuple[StudyHeader, list[dict[str, Any]]] | None:
    """PostgreSQL only: the header of the study named `study_name` and up to `limit` of its waiting
    trials under fresh leases for `worker_id`, in one statement (claim_waiting's rules: oldest
    first, SKIP LOCKED, a gate's kind only), when the study runs, has no max_concurrent (a cap
    needs the admission lock first) and a worker running `objective` may run it
    (store.workers.runs_study); else no rows, and the caller goes on from the header. None when no
    study has that name."""
    kind = "any" if objective in (ANY, None) else "program" if objective == PROGRAM else "named"
    params = {"b_name": study_name, "b_objective": objective, "b_worker_id": worker_id, "b_holder": holder,
              "b_now": utcnow(), "b_limit": limit}
    result = session.execute(_named_claim_statement(kind), params).mappings().all()
    if not result:
        return None
    first = result[0]
    header = StudyHeader(*(first[f"s_{k}"] for k in StudyHeader._fields))
    rows = [{k: r[k] for k in _TRIAL_KEYS} for r in result if r["id"] is not None]
    return header, rows


def count_waiting(session: Session, study_id: int, *, drawn_only: bool = False) -> int:
    """How many trials of a study wait to be claimed (drawn ahead, enqueued or retried); with
    `drawn_only`, those with their params drawn (not the undrawn ones a claim draws itself)."""
    conds = [TRIALS.c.study_id == study_id, TRIALS.c.state == "waiting"]
    if drawn_only:
        conds.append(TRIALS.c.drawn.is_(True))
    return session.scalar(select(func.count()).where(*conds)) or 0


def undraw_stale(session: Session, study_id: int, method: str, results: int) -> int:
    """Put the study's drawn-ahead rows (waiting, drawn by `method`, never claimed: no start, no
    attempt) back to undrawn once `results` or more of the study's trials ended after the row was
    created: the claim that takes one draws it then (core/draw_ahead.py). Returns how many."""
    ended_since = (
        select(func.count()).select_from(_LATER_ENDINGS)
        .where(_LATER_ENDINGS.c.study_id == study_id, _LATER_ENDINGS.c.finished_at > TRIALS.c.created_at)
        .scalar_subquery()
    )
    return session.execute(
        update(TRIALS)
        .where(TRIALS.c.study_id == study_id, TRIALS.c.state == "waiting", TRIALS.c.drawn.is_(True),
               TRIALS.c.started_at.is_(None), TRIALS.c.attempt == 0, ORDINARY, TRIALS.c.method == method,
               ended_since >= results)
        .values(drawn=False, params={}, fidelity=None, config_key=None)
    ).rowcount or 0


_LATER_ENDINGS = TRIALS.alias("later_endings")


def waiting_studies(session: Session, objective: str | None = None, limit: int = 5) -> list[tuple[int, int | None]]:
    """(study id, max_concurrent) of running studies with waiting trials that a worker running
    `objective` can run (store.workers.runs_study), oldest waiting trial first."""
    first = func.min(TRIALS.c.id)
    return [
        (sid, cap) for sid, cap, _ in session.execute(
            select(TRIALS.c.study_id, STUDIES.c.max_concurrent, first)
            .join(STUDIES, STUDIES.c.id == TRIALS.c.study_id)
            .where(TRIALS.c.state == "waiting", STUDIES.c.state == "running", _KIND_ALLOWED,
                   runs_study(STUDIES.c.objective, objective))
            .group_by(TRIALS.c.study_id, STUDIES.c.max_concurrent)
            .order_by(first)
            .limit(limit)
        ).all()
    ]


_HELD = and_(TRIALS.c.id == bindparam("b_id"), TRIALS.c.state == "running",
             TRIALS.c.lease_token == bindparam("b_token"),
             TRIALS.c.holder.is_not_distinct_from(bindparam("b_holder", type_=TRIALS.c.holder.type)))


class HeldStudy(NamedTuple):
    """What a call about a held trial needs of its study, read by the statement that renews the lease
    (so a heartbeat or a report needs no second read of the study row)."""

    id: int
    name: str
    state: str
    metric_name: str
    goal: str
    pruner: dict[str, Any] | None
    metric_target: float | None
    # Read only by the statements that end a trial, for what runs at its ending (the diagnosis's
    # space, the objectives and constraints of the study's document); None otherwise.
    space_text: str | None = None
    objectives: list[Any] | None = None
    constraints: list[Any] | None = None
    max_trials: int | None = None
    next_number: int | None = None
    objective: str | None = None  # what the workers run (builtin:cnn: the trainer's defaults are known)


def _of_study(column, label: str):
    return select(column).where(STUDIES.c.id == TRIALS.c.study_id).scalar_subquery().label(label)


_HELD_STUDY_FIELDS = ("name", "state", "metric_name", "goal", "pruner", "metric_target")
_STUDY_OF_TRIAL = tuple(_of_study(STUDIES.c[f], f"s_{f}") for f in _HELD_STUDY_FIELDS)
_ENDING_FIELDS = ("space_text", "objectives", "constraints", "max_trials", "next_number", "objective")
_STUDY_OF_ENDING = (_of_study(cast(STUDIES.c.space, Text), "s_space_text"),
                    _of_study(STUDIES.c.config["objectives"], "s_objectives"),
                    _of_study(STUDIES.c.config["constraints"], "s_constraints"),
                    _of_study(STUDIES.c.max_trials, "s_max_trials"),
                    _of_study(STUDIES.c.next_number, "s_next_number"),
                    _of_study(STUDIES.c.objective, "s_objective"))
_TRIAL_KEYS = tuple(c.key for c in TRIALS.c)


def _held_study(row) -> HeldStudy:
    extra = tuple(row[f"s_{f}"] for f in _ENDING_FIELDS) if "s_space_text" in row else ()
    return HeldStudy(row["study_id"], *(row[f"s_{f}"] for f in _HELD_STUDY_FIELDS), *extra)


def _split_held(row) -> tuple[dict[str, Any], HeldStudy]:
    return {k: row[k] for k in _TRIAL_KEYS}, _held_study(row)


@lru_cache(maxsize=64)
def _held_update(state: str | None, keys: tuple[str, ...], with_study: bool = False):
    """The fenced UPDATE of a held trial, built once per (target state, columns set); `with_study`
    returns the study's HeldStudy columns too."""
    values: dict[str, Any] = {k: bindparam(f"b_{k}") for k in keys if k != "last_step"}
    if "last_step" in keys:  # keep the highest step reported
        top = bindparam("b_last_step")
        values["last_step"] = case(
            ((TRIALS.c.last_step.is_(None)) | (TRIALS.c.last_step < top), top), else_=TRIALS.c.last_step
        )
    if state is None:  # renew the lease
        values["lease_expires_at"] = db_epoch() + _lease_seconds_of_study()
    else:
        values.update(state=state, lease_expires_at=None)
        if state == "waiting":
            values.update(worker_id=None, holder=None, lease_token=None)
        else:
            # The token stays on the ended trial: only that lease may repeat the ending.
            values["finished_at"] = bindparam("b_finished_at")
    ending = state not in (None, "waiting")
    returned = (*TRIALS.c, *_STUDY_OF_TRIAL, *(_STUDY_OF_ENDING if ending else ())) if with_study else tuple(TRIALS.c)
    return update(TRIALS).where(_HELD).values(**values).returning(*returned)


def _run_held(session: Session, state: str | None, trial_id: int, token: str, holder: str | None,
              values: dict[str, Any], with_study: bool = False):
    params = {f"b_{k}": v for k, v in values.items()}
    params.update(b_id=trial_id, b_token=token, b_holder=holder)
    if state not in (None, "waiting"):
        params["b_finished_at"] = utcnow()
    stmt = _held_update(state, tuple(sorted(values)), with_study)
    return session.execute(stmt, params).mappings().one_or_none()


@lru_cache(maxsize=1)
def _renew_many_statement():
    pairs = bindparam("b_pairs", expanding=True)
    return (
        update(TRIALS)
        .where(tuple_(TRIALS.c.id, TRIALS.c.lease_token).in_(pairs), TRIALS.c.state == "running",
               TRIALS.c.holder.is_not_distinct_from(bindparam("b_holder", type_=TRIALS.c.holder.type)))
        .values(lease_expires_at=db_epoch() + _lease_seconds_of_study())
        .returning(*TRIALS.c, *_STUDY_OF_TRIAL)
    )


def renew_many(session: Session, leases: list[tuple[int, str]],
               holder: str | None = None) -> dict[int, tuple[dict[str, Any], HeldStudy]]:
    """Renew every lease of `leases` ((trial id, lease token)) that `holder` holds, in one fenced
    UPDATE; returns the renewed ones by trial id (a lease not held is simply absent)."""
    if not leases:
        return {}
    rows = session.execute(_renew_many_statement(), {"b_pairs": leases, "b_holder": holder}).mappings().all()
    return {r["id"]: _split_held(r) for r in rows}


def touch_held(session: Session, trial_id: int, token: str, holder: str | None = None, *, with_study: bool = False,
               **values: Any) -> Any:
    """Renew the lease of a trial the caller (`token` under API identity `holder`) holds, and set
    `values` (`last_step` only ever rises); None when it is not held. `with_study`: return
    (row, HeldStudy), the study read by the same one statement."""
    row = _run_held(session, None, trial_id, token, holder, values, with_study=with_study)
    if row is None or not with_study:
        return row
    return _split_held(row)


def end_held(session: Session, trial_id: int, token: str, state: str, holder: str | None = None,
             **values: Any) -> dict[str, Any] | None:
    """Move a held trial to an ended state (or back to waiting); None when the caller does not hold it."""
    return _run_held(session, state, trial_id, token, holder, values)


def end_held_with_study(session: Session, trial_id: int, token: str, state: str, holder: str | None = None,
                        **values: Any) -> tuple[dict[str, Any], HeldStudy] | None:
    """end_held and the study's HeldStudy (with its ending fields) in the same one statement; None
    when not held."""
    row = _run_held(session, state, trial_id, token, holder, values, with_study=True)
    return None if row is None else _split_held(row)


def get_trial_row(session: Session, trial_id: int) -> dict[str, Any] | None:
    row = session.execute(select(TRIALS).where(TRIALS.c.id == trial_id)).mappings().one_or_none()
    return dict(row) if row is not None else None


def list_trials(
    session: Session, study_id: int, *, state: str | None, limit: int, offset: int
) -> tuple[list[Trial], int]:
    conds = [Trial.study_id == study_id]
    if state:
        conds.append(Trial.state == state)
    total = session.scalar(select(func.count()).select_from(Trial).where(*conds)) or 0
    items = session.scalars(
        select(Trial).where(*conds).order_by(Trial.number).limit(limit).offset(offset)
    ).all()
    return list(items), total


def best_trial(session: Session, study_id: int, goal: str, fidelities: list[str | None] | None = None,
               numbers: list[int] | None = None) -> Trial | None:
    """The best completed trial; only among those whose fidelity record (as stored JSON text, None for
    no record) is in `fidelities`, and whose number is in `numbers`, when given."""
    order = Trial.value.asc() if goal == "minimize" else Trial.value.desc()
    conds = [Trial.study_id == study_id, Trial.state == "completed", Trial.value.is_not(None), Trial.kind == "trial"]
    if fidelities is not None:
        texts = [t for t in fidelities if t is not None]
        level = cast(Trial.fidelity, Text).in_(texts)
        conds.append(or_(level, Trial.fidelity.is_(None)) if None in fidelities else level)
    if numbers is not None:
        conds.append(Trial.number.in_(numbers))
    return session.scalars(select(Trial).where(*conds).order_by(order, Trial.number).limit(1)).one_or_none()


def completed_fidelities(session: Session, study_id: int) -> list[str | None]:
    """The distinct fidelity records (JSON text; None: no record) of a study's completed trials."""
    return list(session.scalars(
        select(cast(TRIALS.c.fidelity, Text)).distinct()
        .where(TRIALS.c.study_id == study_id, TRIALS.c.state == "completed", TRIALS.c.value.is_not(None), ORDINARY)
    ))


def has_repeats(session: Session, study_id: int) -> bool:
    """Whether any configuration of the study was run more than once (ix_trials_study_config)."""
    return session.execute(
        select(TRIALS.c.config_key)
        .where(TRIALS.c.study_id == study_id, TRIALS.c.config_key.is_not(None))
        .group_by(TRIALS.c.config_key).having(func.count() > 1).limit(1)
    ).first() is not None


def trial_results(session: Session, study_id: int) -> list[Any]:
    """(number, params, value, state, fidelity, method, config_key) of every drawn trial, in number
    order: what the craft's planners read."""
    return list(session.execute(
        select(TRIALS.c.number, TRIALS.c.params, TRIALS.c.value, TRIALS.c.state, TRIALS.c.fidelity,
               TRIALS.c.method, TRIALS.c.config_key)
        .where(TRIALS.c.study_id == study_id, TRIALS.c.drawn.is_(True), ORDINARY)
        .order_by(TRIALS.c.number)
    ).all())


def trial_fidelities(session: Session, study_id: int) -> dict[int, dict[str, Any] | None]:
    """Each trial's fidelity record by trial id (for pruners whose resource is the data)."""
    return dict(session.execute(
        select(TRIALS.c.id, TRIALS.c.fidelity).where(TRIALS.c.study_id == study_id)).all())


def record_reports(
    session: Session | Connection, trial_id: int, run: int, steps: list[tuple[int, float | None, dict[str, Any]]]
) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """Store (step, metric value, metrics) rows of run `run` of the trial. A step stored by an
    earlier run is replaced (the retry started over); one stored by this run is kept as it was.
    Returns (step, stored metrics, sent metrics) for each step this run had already stored, for
    the caller to compare (a retried request sends the same metrics; anything else is a conflict)."""
    if not steps:
        return []
    dialect = session.dialect.name if isinstance(session, Connection) else session.bind.dialect.name
    now = utcnow()
    rows = [dict(trial_id=trial_id, run=run, step=step, value=value, metrics=metrics, created_at=now)
            for step, value, metrics in steps]
    # One step (a per-epoch report) as a single execution, not an executemany of one row.
    inserted = set(session.scalars(_report_insert(dialect), rows[0] if len(rows) == 1 else rows).all())
    if len(inserted) == len(rows):
        return []
    sent = {step: metrics for step, _, metrics in steps if step not in inserted}
    stored = session.execute(
        select(REPORTS.c.step, REPORTS.c.metrics).where(REPORTS.c.trial_id == trial_id, REPORTS.c.step.in_(sent))
    ).all()
    return [(step, metrics, sent[step]) for step, metrics in stored]


@lru_cache(maxsize=2)
def _report_insert(dialect: str):
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_(REPORTS)
    return stmt.on_conflict_do_update(
        index_elements=["trial_id", "step"],
        set_={"run": stmt.excluded.run, "value": stmt.excluded.value, "metrics": stmt.excluded.metrics,
              "created_at": stmt.excluded.created_at},
        where=REPORTS.c.run < stmt.excluded.run,
    ).returning(REPORTS.c.step)


_RECENT_REPORTS = (
    select(REPORTS.c.step, REPORTS.c.metrics).where(REPORTS.c.trial_id == bindparam("b_trial"))
    .order_by(REPORTS.c.step.desc()).limit(bindparam("b_limit"))
)
_SET_DIAGNOSIS = update(TRIALS).where(TRIALS.c.id == bindparam("b_trial")).values(diagnosis=bindparam("b_diagnosis"))


def recent_reports(session: Session, trial_id: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """(step, metrics) of the trial's last `limit` reports, in step order (statements built once:
    these run on every report, for the provisional diagnosis)."""
    rows = session.execute(_RECENT_REPORTS, {"b_trial": trial_id, "b_limit": limit}).all()
    return [(step, metrics) for step, metrics in reversed(rows)]


def set_diagnosis(session: Session, trial_id: int, diagnosis: dict[str, Any] | None) -> None:
    session.execute(_SET_DIAGNOSIS, {"b_trial": trial_id, "b_diagnosis": diagnosis})


def all_reports(session: Session, trial_id: int) -> list[tuple[int, dict[str, Any]]]:
    """(step, metrics) of every report of the trial, in step order (a gate's verdict reads them all)."""
    return [(step, metrics) for step, metrics in session.execute(
        select(REPORTS.c.step, REPORTS.c.metrics).where(REPORTS.c.trial_id == trial_id)
        .order_by(REPORTS.c.step)).all()]


def lowest_number(session: Session, study_id: int) -> int | None:
    """The lowest trial number of the study (special runs count down from -1)."""
    return session.scalar(select(func.min(TRIALS.c.number)).where(TRIALS.c.study_id == study_id))


def ended_summaries(session: Session, study_id: int, kind: str, states: Iterable[str],
                    limit: int) -> list[tuple[int, str, Any, float | None, Any]]:
    """(number, state, params, value, diagnosis) of the study's latest `limit` trials of `kind` in
    `states`, newest first."""
    return list(session.execute(
        select(TRIALS.c.number, TRIALS.c.state, TRIALS.c.params, TRIALS.c.value, TRIALS.c.diagnosis)
        .where(TRIALS.c.study_id == study_id, TRIALS.c.kind == kind, TRIALS.c.state.in_(list(states)))
        .order_by(TRIALS.c.number.desc()).limit(limit)
    ).all())


def get_trial(session: Session, trial_id: int) -> Trial | None:
    """The trial as an ORM object (its study and reports load on access), or None."""
    return session.get(Trial, trial_id)


def last_report_value(session: Session, trial_id: int) -> float | None:
    return session.scalar(
        select(REPORTS.c.value)
        .where(REPORTS.c.trial_id == trial_id, REPORTS.c.value.is_not(None))
        .order_by(REPORTS.c.step.desc())
        .limit(1)
    )


def study_curves(session: Session, study_id: int, max_step: int) -> list[tuple[int, str, int, float]]:
    """(trial_id, trial state, step, metric value) for every finite report up to `max_step`."""
    return list(
        session.execute(
            select(TRIALS.c.id, TRIALS.c.state, REPORTS.c.step, REPORTS.c.value)
            .join(REPORTS, REPORTS.c.trial_id == TRIALS.c.id)
            .where(TRIALS.c.study_id == study_id, REPORTS.c.step <= max_step, REPORTS.c.value.is_not(None), ORDINARY)
        ).all()
    )


class JsonParams(Mapping[str, Any]):
    """A trial's params as their stored JSON text, decoded on first use. At N = 5000 trials,
    decoding every trial's params took 19 of the 27 ms of a history read, and the model-based
    engines look at a few hundred of them (their bounded histories)."""

    __slots__ = ("_text", "_data")

    def __init__(self, text: str):
        self._text = text
        self._data: dict[str, Any] | None = None

    def _decoded(self) -> dict[str, Any]:
        if self._data is None:
            self._data = json.loads(self._text)
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self):
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return repr(self._decoded())


def history(session: Session, study_id: int) -> list[tuple[Mapping[str, Any], float | None, str]]:
    """(params, value, state) of every drawn trial of a study, for the optimizers; params are decoded
    lazily (JsonParams), values and states are not. Reservations not drawn yet have no params."""
    return [
        (JsonParams(text_), value, state)
        for text_, value, state in session.execute(
            select(cast(TRIALS.c.params, Text), TRIALS.c.value, TRIALS.c.state)
            .where(TRIALS.c.study_id == study_id, TRIALS.c.drawn.is_(True), ORDINARY)
        ).all()
    ]


def expire_leases(session: Session) -> tuple[list[int], list[dict[str, Any]]]:
    """Requeue running trials whose lease ran out (attempt + 1, same params), or fail them once
    they have used their retries. A reservation that was never drawn (its server died before the
    optimizer answered) goes back to waiting without using an attempt: no worker ever ran it.
    Returns (requeued trial ids, the failed trials' rows). Uses the database clock."""
    max_retries = (
        select(STUDIES.c.max_retries).where(STUDIES.c.id == TRIALS.c.study_id).scalar_subquery()
    )
    expired = and_(TRIALS.c.state == "running", TRIALS.c.lease_expires_at < db_epoch())
    requeued = session.scalars(
        update(TRIALS)
        .where(expired, or_(TRIALS.c.attempt < max_retries, TRIALS.c.drawn.is_(False)))
        .values(
            state="waiting", attempt=case((TRIALS.c.drawn.is_(True), TRIALS.c.attempt + 1), else_=TRIALS.c.attempt),
            worker_id=None, holder=None, lease_token=None, lease_expires_at=None, stop_reason=None,
            stop_step=None,
        )
        .returning(TRIALS.c.id)
    ).all()
    # The retry condition is repeated rather than implied: each statement reads the clock anew, so
    # a lease that runs out between the two statements must not be failed with retries left.
    failed = session.execute(
        update(TRIALS)
        .where(expired, TRIALS.c.drawn.is_(True), TRIALS.c.attempt >= max_retries)
        .values(
            state="failed", attempt=TRIALS.c.attempt + 1, lease_token=None, lease_expires_at=None,
            fail_kind="lease_expired", fail_reason="lease expired and the retry budget is used up",
            finished_at=utcnow(),
        )
        .returning(*TRIALS.c)
    ).mappings().all()
    return list(requeued), [dict(row) for row in failed]



def set_advice_origin(session: Session, trial_id: int, parent_trial_id: int, notch: str) -> dict[str, Any]:
    """Record that trial `trial_id` runs the variant `notch` of trial `parent_trial_id`'s diagnosis."""
    return dict(session.execute(
        update(TRIALS).where(TRIALS.c.id == trial_id)
        .values(parent_trial_id=parent_trial_id, advice_notch=notch).returning(*TRIALS.c)
    ).mappings().one())


def advice_pairs(session: Session, study_id: int) -> list[tuple[str, float | None, str | None, float | None]]:
    """(state, value, parent's state, parent's value) of each trial of the study enqueued from a
    trial's advice (parent_trial_id set, reruns left out), in number order."""
    parent = TRIALS.alias("parent")
    return [tuple(r) for r in session.execute(
        select(TRIALS.c.state, TRIALS.c.value, parent.c.state, parent.c.value)
        .select_from(TRIALS.outerjoin(parent, parent.c.id == TRIALS.c.parent_trial_id))
        .where(TRIALS.c.study_id == study_id, TRIALS.c.parent_trial_id.is_not(None),
               # a rerun (POST /trials/{id}/rerun) records its trial there too, but is no advice
               TRIALS.c.advice_notch.is_distinct_from("rerun"))
        .order_by(TRIALS.c.number)
    ).all()]
