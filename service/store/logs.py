"""Store functions for trial logs: one row per (trial, attempt), replaced by each upload."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tuneserve_service.db.models import TrialLog, utcnow

LOGS = TrialLog.__table__


@lru_cache(maxsize=2)
def _upsert(dialect: str):
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_(LOGS)
    return stmt.on_conflict_do_update(
        index_elements=["trial_id", "attempt"],
        set_={"text": stmt.excluded.text, "size": stmt.excluded.size, "updated_at": stmt.excluded.updated_at},
    )


def put_log(session: Session, trial_id: int, attempt: int, text: str, size: int) -> dict[str, Any]:
    row = dict(trial_id=trial_id, attempt=attempt, text=text, size=size, updated_at=utcnow())
    session.execute(_upsert(session.bind.dialect.name), row)
    return row


def get_log(session: Session, trial_id: int, attempt: int | None) -> dict[str, Any] | None:
    """The log of `attempt`, or of the latest attempt that has one."""
    stmt = select(LOGS).where(LOGS.c.trial_id == trial_id)
    stmt = stmt.where(LOGS.c.attempt == attempt) if attempt is not None else stmt.order_by(LOGS.c.attempt.desc()).limit(1)
    row = session.execute(stmt).mappings().first()
    return dict(row) if row is not None else None
