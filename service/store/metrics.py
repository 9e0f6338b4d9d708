"""Reads behind the Prometheus collector (service/observability): trial counts by study and state,
and the workers seen lately. Both are bounded: at most `max_studies` studies, and an index-backed
scan of running trials plus the trials that ended in the window."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, and_, func, or_, select
from sqlalchemy.orm import Session

from tuneserve_service.db.engine import db_epoch
from tuneserve_service.db.models import Study, Trial

TRIALS = Trial.__table__
STUDIES = Study.__table__


def trial_counts(session: Session, max_studies: int) -> list[tuple[str, str, int]]:
    """(study name, trial state, count) of ordinary trials (special runs are not trials of the search)
    for the `max_studies` most recently updated studies."""
    recent = select(STUDIES.c.id).order_by(STUDIES.c.updated_at.desc(), STUDIES.c.id.desc()).limit(max_studies).subquery()
    return [tuple(r) for r in session.execute(
        select(STUDIES.c.name, TRIALS.c.state, func.count())
        .join(STUDIES, STUDIES.c.id == TRIALS.c.study_id)
        .where(TRIALS.c.study_id.in_(select(recent.c.id)), TRIALS.c.kind == "trial")
        .group_by(STUDIES.c.name, TRIALS.c.state)
    ).all()]


def workers_seen(session: Session, seconds: float, since: datetime) -> int:
    """Distinct workers that renewed a lease in the last `seconds` (database clock: a running
    trial's lease was last renewed at lease_expires_at - lease_seconds) or ended a trial since
    `since`."""
    lease_seconds = select(STUDIES.c.lease_seconds).where(STUDIES.c.id == TRIALS.c.study_id).scalar_subquery()
    return session.scalar(
        select(func.count(TRIALS.c.worker_id.distinct())).where(
            TRIALS.c.worker_id.is_not(None),
            or_(
                and_(TRIALS.c.state == "running", TRIALS.c.lease_expires_at - lease_seconds >= db_epoch() - seconds),
                TRIALS.c.finished_at >= since,
            ),
        )
    ) or 0


def open_trials(session: Session, max_studies: int) -> list[tuple[str, int]]:
    """(study name, trials that still need a worker) for running studies: waiting + running + the
    budget not yet drawn (max_trials minus the ordinary trials that exist; a study without
    max_trials counts one more, so it always asks for a worker). What a queue-driven autoscaler
    (KEDA) scales workers on: tuneserve_trials{state="waiting"} alone is 0 for a study whose trials
    are drawn at claim time."""
    active = func.sum(func.cast(TRIALS.c.state.in_(("waiting", "running")), Integer))
    rows = session.execute(
        select(STUDIES.c.name, STUDIES.c.max_trials, func.count(TRIALS.c.id), func.coalesce(active, 0))
        .select_from(STUDIES.outerjoin(TRIALS, and_(TRIALS.c.study_id == STUDIES.c.id, TRIALS.c.kind == "trial")))
        .where(STUDIES.c.state == "running")
        .group_by(STUDIES.c.id, STUDIES.c.name, STUDIES.c.max_trials, STUDIES.c.updated_at)
        .order_by(STUDIES.c.updated_at.desc(), STUDIES.c.id.desc()).limit(max_studies)
    ).all()
    return [(name, int(act) + (max(0, cap - int(n)) if cap is not None else 1)) for name, cap, n, act in rows]
