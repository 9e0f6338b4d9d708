"""Store functions for studies: insert, look up, change state, reserve trial numbers, count."""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import Connection, delete, func, select, text, update
from sqlalchemy.orm import Session

from service.db.models import Study, Trial
from service.errors import StudyNotFound

from service.schemas.enums import ACTIVE_STATES as ACTIVE_TRIAL_STATES
from service.schemas.enums import TrialState

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


# What the worker protocol needs of a study on every call: no JSON documents (space, config) to
# parse and no ORM identity map, since these reads run several times per trial.
_HEADER = select(
    Study.id, Study.name, Study.state, Study.metric_name, Study.goal, Study.pruner, Study.lease_seconds,
    Study.max_trials, Study.next_number, Study.method, Study.objective,
)


def study_header(session: Session, study_id: int):
    row = session.execute(_HEADER.where(Study.id == study_id)).one_or_none()
    if row is None:
        raise StudyNotFound(str(study_id))
    return row


def study_header_by_name(session: Session, name: str):
    row = session.execute(_HEADER.where(Study.name == name)).one_or_none()
    if row is None:
        raise StudyNotFound(name)
    return row


def list_studies(session: Session, state: str | None = None) -> list[Study]:
    stmt = select(Study).order_by(Study.id)
    if state:
        stmt = stmt.where(Study.state == state)
    return list(session.scalars(stmt))


def delete_study(session: Session, study: Study) -> None:
    # Bulk deletes: the FK cascades (ON DELETE CASCADE) remove trials and reports in the database.
    session.execute(delete(Study).where(Study.id == study.id))
    session.flush()


def set_study_state(session: Session, study: Study, state: str) -> Study:
    study.state = state
    session.flush()
    return study


def count_trials_by_state(session: Session, study_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Trial.state, func.count()).where(Trial.study_id == study_id).group_by(Trial.state)
    ).all()
    counts = {state: 0 for state in TRIAL_STATES}
    counts.update({state: n for state, n in rows})
    counts["total"] = sum(n for _, n in rows)
    return counts


def count_active_trials(session: Session, study_id: int) -> int:
    return session.scalar(
        select(func.count()).where(Trial.study_id == study_id, Trial.state.in_(ACTIVE_TRIAL_STATES))
    ) or 0


def reserve_numbers(
    session: Session, study_id: int, count: int, extra: Callable[[Study], int] = lambda study: 0
) -> tuple[range, range]:
    """Take trial numbers from the study's budget: up to `count` for trials to run now (capped by
    max_concurrent) and then up to `extra(study)` more for trials to queue as waiting. Both ranges
    are empty when the study is not running or nothing may run now. Locks the study row
    (PostgreSQL, FOR NO KEY UPDATE) for this short update only."""
    study = session.scalars(
        select(Study).where(Study.id == study_id)
        .with_for_update(key_share=True).execution_options(populate_existing=True)
    ).one()
    if study.state != "running":
        return range(0), range(0)
    left = None if study.max_trials is None else max(0, study.max_trials - study.next_number)
    run = count if left is None else min(count, left)
    if study.max_concurrent is not None:
        running = session.scalar(
            select(func.count()).where(Trial.study_id == study_id, Trial.state == "running")
        ) or 0
        run = max(0, min(run, study.max_concurrent - running))
    if run == 0:
        return range(0), range(0)
    queue = extra(study)
    if left is not None:
        queue = max(0, min(queue, left - run))
    first = study.next_number
    study.next_number = first + run + queue
    session.flush()
    return range(first, first + run), range(first + run, first + run + queue)


# No FOR UPDATE: the guard `next_number = h.first` makes it optimistic. A concurrent reservation
# that committed first changes next_number, PostgreSQL re-checks the guard on the new row version,
# no row is returned, and the caller runs the statement again. (Locking the row in a CTE and then
# updating it in the same statement deadlocked against waiters under load.)
_RESERVE_PG = text("""
WITH g AS (
    SELECT id, next_number AS first,
           COALESCE(max_trials - next_number, 2147483647) AS budget_left,
           GREATEST(0, LEAST(
               :count,
               COALESCE(max_trials - next_number, :count),
               CASE WHEN max_concurrent IS NULL THEN :count
                    ELSE max_concurrent - (SELECT count(*) FROM trials t
                                           WHERE t.study_id = studies.id AND t.state = 'running') END
           )) AS run
    FROM studies WHERE id = :study_id AND state = 'running'
), h AS (
    SELECT id, first, run,
           CASE WHEN run = 0 THEN 0 ELSE GREATEST(0, LEAST(:extra, budget_left - run)) END AS queue
    FROM g
)
UPDATE studies SET next_number = h.first + h.run + h.queue
FROM h WHERE studies.id = h.id AND studies.next_number = h.first AND studies.state = 'running'
RETURNING h.first, h.run, h.queue
""")
RESERVE_TRIES = 100


def reserve_numbers_pg(conn: Connection, study_id: int, count: int, extra: int) -> tuple[range, range]:
    """reserve_numbers as one statement on an autocommit PostgreSQL connection, so no client round
    trip happens while the study row is locked; retried when a concurrent reservation won."""
    for _ in range(RESERVE_TRIES):
        row = conn.execute(_RESERVE_PG, {"study_id": study_id, "count": count, "extra": extra}).one_or_none()
        if row is not None:
            if row.run == 0:
                break
            return range(row.first, row.first + row.run), range(row.first + row.run, row.first + row.run + row.queue)
    return range(0), range(0)


def cap_budget(session: Session, study_id: int, max_trials: int) -> None:
    """A grid that ran out of points: the budget becomes what was actually handed out."""
    session.execute(
        update(Study)
        .where(Study.id == study_id)
        .values(max_trials=func.min(func.coalesce(Study.max_trials, max_trials), max_trials)
                if session.bind.dialect.name == "sqlite"
                else func.least(func.coalesce(Study.max_trials, max_trials), max_trials))
    )


def finish_if_done(session: Session, study_id: int) -> bool:
    """Mark a running or paused study finished once its budget is spent and nothing is active.

    The study row is locked before counting: two trials ending at once then take turns, and the
    second one's count (a fresh READ COMMITTED snapshot) sees the first one's commit, so the last
    trial to end always finishes the study.
    """
    budget = session.execute(
        select(Study.max_trials, Study.next_number).where(Study.id == study_id)
    ).one_or_none()
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
