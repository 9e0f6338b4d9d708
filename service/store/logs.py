"""Store functions for trial logs: one row per (trial, attempt), replaced by each upload."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneserve_service.db.models import TrialLog, utcnow
from tuneserve_service.store.upsert import upsert

LOGS = TrialLog.__table__


def put_log(session: Session, trial_id: int, attempt: int, text: str, size: int) -> dict[str, Any]:
    row = dict(trial_id=trial_id, attempt=attempt, text=text, size=size, updated_at=utcnow())
    session.execute(upsert(session.bind.dialect.name, LOGS, ("trial_id", "attempt"), ("text", "size", "updated_at")),
                    row)
    return row


def get_log(session: Session, trial_id: int, attempt: int | None) -> dict[str, Any] | None:
    """The log of `attempt`, or of the latest attempt that has one."""
    stmt = select(LOGS).where(LOGS.c.trial_id == trial_id)
    stmt = stmt.where(LOGS.c.attempt == attempt) if attempt is not None else stmt.order_by(LOGS.c.attempt.desc()).limit(1)
    row = session.execute(stmt).mappings().first()
    return dict(row) if row is not None else None
