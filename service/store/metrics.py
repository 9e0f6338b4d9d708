"""Reads behind the Prometheus collector (service/observability): trial counts by study and state,
and the workers seen lately. Both are bounded: at most `max_studies` studies, and an index-backed
scan of running trials plus the trials that ended in the window."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select
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
