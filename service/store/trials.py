"""Store functions for trials and reports: claim under a lease, renew, finish, expire, record steps.

Every state change of a held trial is one conditional UPDATE that names the trial, its state and
the caller's lease token (fencing): a worker whose lease ran out matches no row and changes nothing.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Iterable

from sqlalchemy import Text, and_, bindparam, case, cast, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.db.engine import db_epoch, db_token
from service.db.models import Study, Trial, TrialReport, utcnow
from service.store.workers import ANY, runs_study

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
) -> list[dict[str, Any]]:
    """Insert trials; running ones get a lease for `worker_id`. Returns the inserted rows."""
    rows = []
    now = utcnow()
    for number, params, method in zip(numbers, params_list, methods):
        values: dict[str, Any] = dict(
            study_id=study_id, number=number, state=state, params=params, method=method,
            attempt=0, metrics={}, created_at=now,
        )
        if state == "running":
            values.update(
                worker_id=worker_id, lease_token=new_token(), started_at=now,
                lease_expires_at=db_epoch() + lease_seconds,
            )
        rows.append(session.execute(insert(TRIALS).values(**values).returning(*TRIALS.c)).mappings().one())
    return [dict(r) for r in rows]


_RUNNING_PEERS = TRIALS.alias("running_peers")


@lru_cache(maxsize=32)
def _claim_statement(one_study: bool, objective: str | None = ANY):
    """Built once per shape (and objective): constructing this statement costs more than running
    it. Parameters: b_worker_id, b_now, b_limit, and b_study_id when `one_study`."""
    conds = [TRIALS.c.state == "waiting", STUDIES.c.state == "running", runs_study(STUDIES.c.objective, objective)]
    if one_study:
        conds.append(TRIALS.c.study_id == bindparam("b_study_id"))
    r = _RUNNING_PEERS
    running = (
        select(func.count()).select_from(r).where(r.c.study_id == STUDIES.c.id, r.c.state == "running")
        .scalar_subquery()
    )
    conds.append((STUDIES.c.max_concurrent.is_(None)) | (running < STUDIES.c.max_concurrent))
    candidates = (
        select(TRIALS.c.id)
        .join(STUDIES, STUDIES.c.id == TRIALS.c.study_id)
        .where(and_(*conds))
        .order_by(TRIALS.c.id)
        .limit(bindparam("b_limit"))
        .with_for_update(of=TRIALS, skip_locked=True)
    )
    # A CTE, not `id IN (subquery)`: PostgreSQL may run a subquery once per outer row, and with
    # SKIP LOCKED each run can pick another row, so one claim would take several trials. A locking
    # CTE is evaluated exactly once.
    picked = candidates.cte("picked")
    return (
        update(TRIALS)
        .where(TRIALS.c.id.in_(select(picked.c.id)), TRIALS.c.state == "waiting")
        .values(
            state="running", worker_id=bindparam("b_worker_id"), lease_token=db_token(),
            lease_expires_at=db_epoch() + _lease_seconds_of_study(), started_at=bindparam("b_now"),
            stop_reason=None, stop_step=None,
        )
        .returning(*TRIALS.c)
    )


def claim_waiting(
    session: Session, *, worker_id: str, study_id: int | None = None, limit: int = 1,
    objective: str | None = ANY,
) -> list[dict[str, Any]]:
    """Hand the oldest waiting trials of running studies to `worker_id` under fresh leases.

    One statement: WITH picked AS (candidates) UPDATE ... RETURNING. PostgreSQL locks the candidates
    FOR UPDATE SKIP LOCKED, so concurrent claimers take different rows without waiting, and the
    UPDATE re-checks state='waiting'. SQLite: the transaction began IMMEDIATE, so claimers are
    serialised. Each row gets its own token from the database (db_token). `objective`: only
    studies a worker running it can run (store.workers.runs_study); ANY for no filter.
    """
    params: dict[str, Any] = {"b_worker_id": worker_id, "b_now": utcnow(), "b_limit": limit}
    if study_id is not None:
        params["b_study_id"] = study_id
    rows = session.execute(_claim_statement(study_id is not None, objective), params).mappings().all()
    return sorted((dict(row) for row in rows), key=lambda row: row["id"])


_HELD = and_(TRIALS.c.id == bindparam("b_id"), TRIALS.c.state == "running",
             TRIALS.c.lease_token == bindparam("b_token"))


@lru_cache(maxsize=64)
def _held_update(state: str | None, keys: tuple[str, ...]):
    """The fenced UPDATE of a held trial, built once per (target state, columns set)."""
    values: dict[str, Any] = {k: bindparam(f"b_{k}") for k in keys if k != "last_step"}
    if "last_step" in keys:  # keep the highest step reported
        top = bindparam("b_last_step")
        values["last_step"] = case(
            ((TRIALS.c.last_step.is_(None)) | (TRIALS.c.last_step < top), top), else_=TRIALS.c.last_step
        )
    if state is None:  # renew the lease
        values["lease_expires_at"] = db_epoch() + _lease_seconds_of_study()
    else:
        values.update(state=state, lease_token=None, lease_expires_at=None)
        if state == "waiting":
            values["worker_id"] = None
        else:
            values["finished_at"] = bindparam("b_finished_at")
    return update(TRIALS).where(_HELD).values(**values).returning(*TRIALS.c)


def _run_held(session: Session, state: str | None, trial_id: int, token: str, values: dict[str, Any]):
    params = {f"b_{k}": v for k, v in values.items()}
    params.update(b_id=trial_id, b_token=token)
    if state not in (None, "waiting"):
        params["b_finished_at"] = utcnow()
    stmt = _held_update(state, tuple(sorted(values)))
    return session.execute(stmt, params).mappings().one_or_none()


def touch_held(session: Session, trial_id: int, token: str, **values: Any) -> dict[str, Any] | None:
    """Renew the lease of a trial the caller holds (and set `values`; `last_step` only ever rises);
    None when it is not held."""
    return _run_held(session, None, trial_id, token, values)


def end_held(session: Session, trial_id: int, token: str, state: str, **values: Any) -> dict[str, Any] | None:
    """Move a held trial to an ended state (or back to waiting); None when the caller does not hold it."""
    return _run_held(session, state, trial_id, token, values)


def get_trial_row(session: Session, trial_id: int) -> dict[str, Any] | None:
    row = session.execute(select(TRIALS).where(TRIALS.c.id == trial_id)).mappings().one_or_none()
    return dict(row) if row is not None else None


def get_trial(session: Session, trial_id: int) -> Trial | None:
    return session.get(Trial, trial_id)


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


def best_trial(session: Session, study_id: int, goal: str) -> Trial | None:
    order = Trial.value.asc() if goal == "minimize" else Trial.value.desc()
    return session.scalars(
        select(Trial)
        .where(Trial.study_id == study_id, Trial.state == "completed", Trial.value.is_not(None))
        .order_by(order, Trial.number)
        .limit(1)
    ).one_or_none()


def record_reports(session: Session, trial_id: int, steps: list[tuple[int, float | None, dict[str, Any]]]) -> None:
    """Store (step, metric value, metrics) rows; a step already stored is kept as it was (idempotent)."""
    if not steps:
        return
    dialect = session.bind.dialect.name
    now = utcnow()
    rows = [dict(trial_id=trial_id, step=step, value=value, metrics=metrics, created_at=now)
            for step, value, metrics in steps]
    session.execute(_report_insert(dialect), rows)


@lru_cache(maxsize=2)
def _report_insert(dialect: str):
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert_(REPORTS).on_conflict_do_nothing(index_elements=["trial_id", "step"])


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
            .where(TRIALS.c.study_id == study_id, REPORTS.c.step <= max_step, REPORTS.c.value.is_not(None))
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
    """(params, value, state) of every trial of a study, for the optimizers; params are decoded
    lazily (JsonParams), values and states are not."""
    return [
        (JsonParams(text), value, state)
        for text, value, state in session.execute(
            select(cast(TRIALS.c.params, Text), TRIALS.c.value, TRIALS.c.state).where(TRIALS.c.study_id == study_id)
        ).all()
    ]


def expire_leases(session: Session) -> tuple[list[int], list[int]]:
    """Requeue running trials whose lease ran out (attempt + 1, same params), or fail them once
    they have used their retries. Returns (requeued trial ids, study ids of failed trials).
    Uses the database clock."""
    max_retries = (
        select(STUDIES.c.max_retries).where(STUDIES.c.id == TRIALS.c.study_id).scalar_subquery()
    )
    expired = and_(TRIALS.c.state == "running", TRIALS.c.lease_expires_at < db_epoch())
    requeued = session.scalars(
        update(TRIALS)
        .where(expired, TRIALS.c.attempt < max_retries)
        .values(
            state="waiting", attempt=TRIALS.c.attempt + 1, worker_id=None, lease_token=None,
            lease_expires_at=None, stop_reason=None, stop_step=None,
        )
        .returning(TRIALS.c.id)
    ).all()
    # The retry condition is repeated rather than implied: each statement reads the clock anew, so
    # a lease that runs out between the two statements must not be failed with retries left.
    failed = session.scalars(
        update(TRIALS)
        .where(expired, TRIALS.c.attempt >= max_retries)
        .values(
            state="failed", attempt=TRIALS.c.attempt + 1, lease_token=None, lease_expires_at=None,
            fail_kind="lease_expired", fail_reason="lease expired and the retry budget is used up",
            finished_at=utcnow(),
        )
        .returning(TRIALS.c.study_id)
    ).all()
    return list(requeued), list(failed)


def db_now(session: Session) -> float:
    return float(session.scalar(select(db_epoch())))
