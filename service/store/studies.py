"""Store functions for studies: insert, look up, change state, admission lock, budget, count."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Text, bindparam, cast, delete, func, select, update
from sqlalchemy.orm import Session

from tuneserve_service.db.models import Study, Trial
from tuneserve_service.errors import StudyNotFound
from tuneserve_service.store.workers import runs_study

from tuneserve.schemas.enums import ACTIVE_STATES as ACTIVE_TRIAL_STATES
from tuneserve.schemas.enums import TrialState

TRIAL_STATES = tuple(TrialState)


def insert_study(session: Session, **fields: Any) -> Study:
    study = Study(**fields)
    session.add(study)
    session.flush()
    return study


def find_study(session: Session, name: str) -> Study | None:
    return session.scalars(select(Study).where(Study.name == name)).one_or_none()


def get_study(session: Session, name: str, *, lock: bool = False) -> Study:
    stmt = select(Study).where(Study.name == name)
    if lock:
        # populate_existing: a row already in the session must be refreshed from the locked read.
        stmt = stmt.with_for_update(key_share=True).execution_options(populate_existing=True)
    study = session.scalars(stmt).one_or_none()
    if study is None:
        raise StudyNotFound(name)
    return study


def get_study_by_id(session: Session, study_id: int) -> Study:
    study = session.get(Study, study_id)
    if study is None:
        raise StudyNotFound(str(study_id))
    return study


STUDIES = Study.__table__

# What the worker protocol needs of a study on every call: no JSON documents (space, config) to
# parse and no ORM identity map, since these reads run several times per trial. Core statements
# over the table, built once with bind parameters: a select of ORM attributes goes through the ORM's
# compile and loading path on every execution, and a statement built per call pays its cache key
# (issue 21's profile: the header by name cost 3.9% of the server's CPU that way).
_HEADER_COLUMNS = tuple(STUDIES.c[k] for k in (
    "id", "name", "state", "metric_name", "goal", "pruner", "lease_seconds", "max_trials", "next_number", "method",
    "max_concurrent", "objective", "fidelity", "stage_index", "parent_id", "metric_target", "gate"))
_HEADER = select(*_HEADER_COLUMNS)
_HEADER_BY_ID = _HEADER.where(STUDIES.c.id == bindparam("b_id"))
_HEADER_BY_NAME = _HEADER.where(STUDIES.c.name == bindparam("b_name"))
_DOCUMENT = select(STUDIES.c.config, STUDIES.c.metric_name, STUDIES.c.goal).where(STUDIES.c.id == bindparam("b_id"))
_SPACE_TEXT = select(cast(STUDIES.c.space, Text), STUDIES.c.objective).where(STUDIES.c.id == bindparam("b_id"))


def study_header(session: Session, study_id: int):
    row = session.execute(_HEADER_BY_ID, {"b_id": study_id}).one_or_none()
    if row is None:
        raise StudyNotFound(str(study_id))
    return row


def study_document(session: Session, study_id: int):
    """The stored document with the metric and goal (config, metric_name, goal): what a trial's
    ending needs to know of several objectives, without loading the study as an ORM object."""
    row = session.execute(_DOCUMENT, {"b_id": study_id}).one_or_none()
    if row is None:
        raise StudyNotFound(str(study_id))
    return row


def study_space_text(session: Session, study_id: int) -> tuple[str, str | None]:
    """The study's space as its stored JSON text (a cache key; parsed only by whoever misses), and
    its objective (what the workers run)."""
    space_text, objective = session.execute(_SPACE_TEXT, {"b_id": study_id}).one()
    return space_text, objective


def study_header_by_name(session: Session, name: str):
    row = session.execute(_HEADER_BY_NAME, {"b_name": name}).one_or_none()
    if row is None:
        raise StudyNotFound(name)
    return row


def candidate_studies(session: Session, objective: str | None = None, limit: int = 5) -> list[int]:
    """Running studies with budget left that a worker running `objective` can run (store.workers.
    runs_study), least busy first, so one study does not starve others."""
    running = (
        select(func.count()).select_from(Trial)
        .where(Trial.study_id == Study.id, Trial.state == "running")
        .scalar_subquery()
    )
    return list(session.scalars(
        select(Study.id)
        .where(Study.state == "running", Study.gate.is_(None),
               (Study.max_trials.is_(None)) | (Study.next_number < Study.max_trials))
        .where(runs_study(Study.objective, objective))
        .order_by(running, Study.id)
        .limit(limit)
    ))


def list_studies(session: Session, state: str | None = None) -> list[Study]:
    stmt = select(Study).order_by(Study.id)
    if state:
        stmt = stmt.where(Study.state == state)
    return list(session.scalars(stmt))


def delete_study(session: Session, study: Study) -> None:
    # Children (refined studies, later stages) outlive their parent: their link is cleared first, as
    # parent_id has no ON DELETE. Bulk deletes: the FK cascades remove trials and reports.
    session.execute(update(Study).where(Study.parent_id == study.id).values(parent_id=None))
    session.execute(delete(Study).where(Study.id == study.id))
    session.flush()


def children_of(session: Session, study_id: int) -> list[Study]:
    """Studies refined from this one or following it as a stage, oldest first."""
    return list(session.scalars(select(Study).where(Study.parent_id == study_id).order_by(Study.id)))


def stage_child(session: Session, study_id: int, stage_index: int):
    """The header of the stage `stage_index` study whose parent is `study_id`, or None."""
    return session.execute(
        _HEADER.where(STUDIES.c.parent_id == study_id, STUDIES.c.stage_index == stage_index)
    ).one_or_none()


def lock_study_by_id(session: Session, study_id: int) -> Study:
    """The study row, locked until the transaction ends (refreshed from the locked read)."""
    study = session.scalars(
        select(Study).where(Study.id == study_id)
        .with_for_update(key_share=True).execution_options(populate_existing=True)
    ).one_or_none()
    if study is None:
        raise StudyNotFound(str(study_id))
    return study


def set_study_state(session: Session, study: Study, state: str) -> Study:
    study.state = state
    session.flush()
    return study


def count_trials_by_state(session: Session, study_id: int) -> dict[str, int]:
    """Ordinary trials by state (special runs, service/domain/features/gates.py, are not trials of the search)."""
    rows = session.execute(
        select(Trial.state, func.count()).where(Trial.study_id == study_id, Trial.kind == "trial").group_by(Trial.state)
    ).all()
    counts = {state: 0 for state in TRIAL_STATES}
    counts.update({state: n for state, n in rows})
    counts["total"] = sum(n for _, n in rows)
    return counts


_COUNT_ACTIVE = select(func.count()).where(Trial.__table__.c.study_id == bindparam("b_id"),
                                           Trial.__table__.c.state.in_(ACTIVE_TRIAL_STATES))
_BUDGET = select(STUDIES.c.max_trials, STUDIES.c.next_number).where(STUDIES.c.id == bindparam("b_id"))


def count_active_trials(session: Session, study_id: int) -> int:
    return session.scalar(_COUNT_ACTIVE, {"b_id": study_id}) or 0


def lock_admission(session: Session, study_id: int) -> None:
    """Serialise everything that may move a trial of this study into running (claims of waiting
    trials, reservations) until the transaction ends, so that a running count read afterwards is
    exact and max_concurrent holds across threads and server processes. PostgreSQL: the study
    row FOR NO KEY UPDATE (trial inserts only take KEY SHARE on it, so they are not blocked);
    SQLite: nothing to do, every transaction is BEGIN IMMEDIATE."""
    if session.bind.dialect.name == "postgresql":
        session.execute(select(Study.id).where(Study.id == study_id).with_for_update(key_share=True))


def shrink_budget(session: Session, study_id: int, removed: int) -> None:
    """A grid that ran out of points removed `removed` reserved rows: the budget becomes the trials
    that exist, so the study can finish (next_number, which numbers never reuse, stays)."""
    least = func.min if session.bind.dialect.name == "sqlite" else func.least
    session.execute(
        update(Study)
        .where(Study.id == study_id)
        .values(max_trials=least(func.coalesce(Study.max_trials, Study.next_number), Study.next_number) - removed)
    )


_SPENT = (
    select(STUDIES.c.id)
    .where(STUDIES.c.state.in_(("running", "paused")), STUDIES.c.max_trials.is_not(None),
           STUDIES.c.next_number >= STUDIES.c.max_trials,
           ~select(Trial.__table__.c.id).where(Trial.__table__.c.study_id == STUDIES.c.id,
                                               Trial.__table__.c.state.in_(ACTIVE_TRIAL_STATES)).exists())
    .order_by(STUDIES.c.id)
)


def spent_studies(session: Session) -> list[int]:
    """Running or paused studies whose budget is spent with nothing active: what finish_if_done
    would finish (the lease reaper's safety net, in id order)."""
    return list(session.scalars(_SPENT))


def finish_if_done(session: Session, study_id: int) -> bool:
    """Mark a running or paused study finished once its budget is spent and nothing is active.

    The study row is locked before counting: two trials ending at once then take turns, and the
    second one's count (a fresh READ COMMITTED snapshot) sees the first one's commit, so the last
    trial to end always finishes the study.
    """
    budget = session.execute(_BUDGET, {"b_id": study_id}).one_or_none()
    if budget is None or budget.max_trials is None or budget.next_number < budget.max_trials:
        return False
    study = session.scalars(
        select(Study).where(Study.id == study_id)
        .with_for_update(key_share=True).execution_options(populate_existing=True)
    ).one()
    if study.state not in ("running", "paused") or count_active_trials(session, study_id) > 0:
        return False
    study.state = "finished"
    session.flush()
    return True
