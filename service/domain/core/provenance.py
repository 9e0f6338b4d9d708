"""A trial's provenance: what its worker says the run was (tuneserve.schemas.provenance.Provenance),
kept per trial for its latest attempt, to rerun it exactly and to tell why a rerun differs.

The worker sends it once per attempt on a request it makes anyway (the first report, or the
completion of a run that reported nothing); the route calls `record` before the protocol call, in
its own short transaction, so a first report that ends the trial (a diverged loss) still leaves it.
Fenced like the report: only the trial's current lease (token and holder) may set it; otherwise
nothing is stored and the protocol call that follows answers with the reason (409).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tuneserve_service.db.engine import Database
from tuneserve.schemas.provenance import Provenance
from tuneserve_service.store import provenance as provenance_store


def record(db: Database, trial_id: int, token: str, holder: str | None, provenance: Provenance) -> bool:
    """Store the run's provenance when `token` holds the trial; False when it does not."""
    with db.transaction() as s:
        run = provenance_store.held_run(s, trial_id, token, holder)
        if run is None:
            return False
        sent = provenance.model_dump(mode="json", exclude_none=True)
        provenance_store.put(s, trial_id, run.attempt, {**sent, "attempt": run.attempt,
                                                        "worker_id": sent.get("worker_id") or run.worker_id})
        return True


def read(session: Session, trial_id: int) -> dict[str, Any] | None:
    return provenance_store.get(session, trial_id)
