"""Store functions for trials' provenance (one row per trial: the latest attempt's) and the fence
a worker's provenance passes: the trial's current lease token and holder."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneserve_service.db.models import Trial, TrialProvenance, utcnow
from tuneserve_service.store.upsert import upsert

PROVENANCE = TrialProvenance.__table__
TRIALS = Trial.__table__


def held_run(session: Session, trial_id: int, token: str, holder: str | None):
    """(attempt, worker_id) of the trial when `token` (and `holder`) hold its lease, else None."""
    held = TRIALS.c.holder.is_(None) if holder is None else TRIALS.c.holder == holder
    return session.execute(select(TRIALS.c.attempt, TRIALS.c.worker_id)
                           .where(TRIALS.c.id == trial_id, TRIALS.c.lease_token == token, held)).one_or_none()


def put(session: Session, trial_id: int, attempt: int, provenance: dict[str, Any]) -> None:
    stmt = upsert(session.bind.dialect.name, PROVENANCE, ("trial_id",), ("attempt", "provenance", "recorded_at"))
    session.execute(stmt, dict(trial_id=trial_id, attempt=attempt, provenance=provenance, recorded_at=utcnow()))


def get(session: Session, trial_id: int) -> dict[str, Any] | None:
    return session.scalar(select(PROVENANCE.c.provenance).where(PROVENANCE.c.trial_id == trial_id))
