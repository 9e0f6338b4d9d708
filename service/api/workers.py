"""Worker identities: PUT by a worker when it starts (host, Slurm job, pod, GPU), GET by the trial
page and `tuneserve trial show` for a trial's worker_id. Registered in main.py beside the trial routes.
An unknown worker is a 404 answered here (no domain error type: the only reason is "not seen")."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from tuneserve.schemas.workers import WorkerIdentity, WorkerRead
from tuneserve_service.api.deps import get_db, require_caller
from tuneserve_service.auth.guard import Caller
from tuneserve_service.db.engine import Database
from tuneserve_service.domain import workers

router = APIRouter(prefix="/workers", tags=["workers"])
WorkerId = Annotated[str, Path(min_length=1, max_length=200, description="The worker_id it claims with")]


@router.put("/{worker_id}", response_model=WorkerRead)
def register_worker(worker_id: WorkerId, body: WorkerIdentity,
                    caller: Annotated[Caller, Depends(require_caller)], db: Database = Depends(get_db)) -> WorkerRead:
    with db.transaction() as s:
        return workers.register(s, worker_id, body)


@router.get("/{worker_id}", response_model=WorkerRead, responses={404: {"description": "Worker not seen recently"}})
def read_worker(worker_id: WorkerId, db: Database = Depends(get_db)):
    with db.transaction() as s:
        found = workers.read(s, worker_id)
    if found is None:
        return JSONResponse({"detail": f"no worker {worker_id!r} seen recently (a worker idle for a day is forgotten)"},
                            status_code=404)
    return found
