"""Trial log routes: the worker's upload of a program's output tail, and the read."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tuneserve_service.api.deps import TrialId, get_db, require_caller
from tuneserve_service.auth.guard import Caller
from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import logs
from tuneserve.schemas.logs import TrialLogRead, TrialLogWrite

router = APIRouter(prefix="/trials", tags=["trials"])


@router.put("/{trial_id}/log", response_model=TrialLogRead,
            responses={404: {"description": "No such trial"}, 409: {"description": "The caller does not hold the trial"},
                       403: {"description": "The trial is held under another API token"}})
def put_log(trial_id: TrialId, body: TrialLogWrite, caller: Annotated[Caller, Depends(require_caller)],
            db: Database = Depends(get_db)) -> TrialLogRead:
    """Replace the log of the attempt the caller holds (the server keeps the last 64 KiB)."""
    return logs.put_log(db, trial_id, body.lease_token, body.text, body.size, caller.key)


@router.get("/{trial_id}/log", response_model=TrialLogRead,
            responses={404: {"description": "No such trial, or it has no log"}})
def get_log(trial_id: TrialId, db: Database = Depends(get_db),
            attempt: int | None = Query(default=None, ge=0, le=1000,
                                        description="Which attempt (default: the latest with a log)")) -> TrialLogRead:
    return logs.get_log(db, trial_id, attempt)
