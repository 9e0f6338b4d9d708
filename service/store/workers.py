"""Store functions for workers: record a claim's worker and what it runs, count the workers that
can run a study, and the claim filter that keeps a worker to the studies it can run."""
from __future__ import annotations

import time
from functools import lru_cache

from sqlalchemy import ColumnElement, delete, literal, or_, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tuneserve_service.db.engine import db_epoch
from tuneserve_service.db.models import Trial, WorkerSeen
from tuneserve.schemas.objectives import PROGRAM

WORKERS = WorkerSeen.__table__
TOUCH_EVERY = 5.0  # seconds: a worker polling in a loop writes its row at most this often
ANY = "*"          # no filter: `ask` hands out trials of the study it names, whatever runs them


def can_run(study_objective: str, objective: str | None) -> bool:
    """The rule of runs_study, for one study in Python."""
    if objective in (ANY, None):
        return True
    if objective == PROGRAM:
        return study_objective == PROGRAM
    return study_objective in ("", objective)


def runs_study(study_objective: ColumnElement, objective: str | None) -> ColumnElement:
    """The studies a worker that runs `objective` may take trials from. None (a client that says
    nothing of what it runs: a REST script, the SDK, an older worker) takes any study; `program`
    only program studies; a function only studies naming it or naming nothing. `tuneserve worker`
    always says what it runs, so a CNN worker never takes a program's trials, nor the reverse."""
    if objective in (ANY, None):
        return true()
    if objective == PROGRAM:
        return study_objective == PROGRAM
    return or_(study_objective == "", study_objective == literal(objective))


@lru_cache(maxsize=2)
def _touch(dialect: str):
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_(WORKERS)
    return stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={"objective": stmt.excluded.objective, "study": stmt.excluded.study,
              "last_seen_at": stmt.excluded.last_seen_at},
        # Only when the row is a few seconds old (or says something else): an idle worker polls
        # often, and one write per poll would be wasted.
        where=(WORKERS.c.last_seen_at < stmt.excluded.last_seen_at - TOUCH_EVERY)
        | (WORKERS.c.objective.is_distinct_from(stmt.excluded.objective))
        | (WORKERS.c.study.is_distinct_from(stmt.excluded.study)),
    )


# (database, worker) -> (objective, study, when this process last wrote the row): a worker that
# polls or claims back to back costs one statement per TOUCH_EVERY seconds, not one per claim.
_written: dict[tuple[str, str], tuple[str | None, str | None, float]] = {}
_WRITTEN_MAX = 10_000


def record_seen(session: Session, worker_id: str, objective: str | None, study: str | None) -> None:
    key = (str(session.bind.url), worker_id)
    now = time.monotonic()
    last = _written.get(key)
    if last is not None and last[:2] == (objective, study) and now - last[2] < TOUCH_EVERY:
        return
    session.execute(_touch(session.bind.dialect.name).values(
        id=worker_id, objective=objective, study=study, last_seen_at=db_epoch()))
    if len(_written) >= _WRITTEN_MAX:
        _written.clear()
    _written[key] = (objective, study, now)


def workers_for_study(session: Session, study_id: int, study_name: str | tuple[str, ...], study_objective: str,
                      within: float) -> int:
    """Workers that can run this study: seen claiming in the last `within` seconds with a matching
    objective and study filter (`study_name`: the study's name, or several: a staged study's stages
    are served to workers that name its first stage), or holding one of its trials now."""
    names = (study_name,) if isinstance(study_name, str) else tuple(study_name)
    w = WORKERS.c
    if study_objective == PROGRAM:
        matches = w.objective == PROGRAM
    elif study_objective:
        matches = or_(w.objective.is_(None), w.objective == study_objective)
    else:
        matches = or_(w.objective.is_(None), w.objective != PROGRAM)
    seen = set(session.scalars(
        select(w.id).where(w.last_seen_at > db_epoch() - within, matches,
                           or_(w.study.is_(None), w.study.in_(names)))))
    holding = set(session.scalars(
        select(Trial.worker_id).distinct().where(Trial.study_id == study_id, Trial.state == "running",
                                                 Trial.worker_id.is_not(None))))
    return len(seen | holding)


def forget_idle(session: Session, seconds: float) -> int:
    """Delete the rows of workers not seen for `seconds` (the table would otherwise keep every
    worker id that ever claimed); returns how many went."""
    return session.execute(delete(WORKERS).where(WORKERS.c.last_seen_at < db_epoch() - seconds)).rowcount or 0


def record_identity(session: Session, worker_id: str, identity: str) -> None:
    """Write a worker's identity (JSON text), creating its row if it has not claimed yet; a claim's
    upsert (record_seen) leaves the column alone."""
    insert_ = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    stmt = insert_(WORKERS).values(id=worker_id, identity=identity, last_seen_at=db_epoch())
    session.execute(stmt.on_conflict_do_update(
        index_elements=["id"], set_={"identity": stmt.excluded.identity, "last_seen_at": stmt.excluded.last_seen_at}))


def get_worker(session: Session, worker_id: str) -> WorkerSeen | None:
    return session.get(WorkerSeen, worker_id)
