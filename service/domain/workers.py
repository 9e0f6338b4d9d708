"""Worker identities: a worker says where it runs (host, Slurm job, pod, GPU) when it starts, and the
trial page and `tuneserve trial show` read it back by the trial's worker_id."""
from __future__ import annotations

import json

from sqlalchemy.orm import Session

from tuneserve.schemas.workers import WorkerIdentity, WorkerRead
from tuneserve_service.store import workers as worker_store


def register(session: Session, worker_id: str, identity: WorkerIdentity) -> WorkerRead:
    worker_store.record_identity(session, worker_id, identity.model_dump_json(exclude_none=True))
    return read(session, worker_id)


def read(session: Session, worker_id: str) -> WorkerRead | None:
    """None when the worker is unknown (never seen, or forgotten after a day idle: store.workers.forget_idle)."""
    row = worker_store.get_worker(session, worker_id)
    if row is None:
        return None
    identity = WorkerIdentity.model_validate(json.loads(row.identity)) if row.identity else None
    return WorkerRead(id=row.id, objective=row.objective, study=row.study, last_seen_at=row.last_seen_at,
                      identity=identity)
