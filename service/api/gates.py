"""The gates' routes: run the sanity check or the lr range test now, narrow the lr and undo it.
Each answers the study (its `gate`, `sanity`, `lr_range` and `advice` say what happens next)."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from tuneserve_service.api.deps import get_db
from tuneserve_service.db.engine import Database
from tuneserve_service.domain.features import gates
from tuneserve.schemas.gates import LrRangeTestRequest, NarrowingRequest, SanityRunRequest
from tuneserve.schemas.studies import StudyRead

router = APIRouter(prefix="/studies", tags=["gates"])


@router.post("/{name}/sanity", status_code=202, response_model=StudyRead,
             summary="Run the sanity check now: ordinary trials wait for its verdict",
             responses={409: {"description": "The study is stopped or finished, or a special run is already open"}})
def run_sanity(name: str, body: SanityRunRequest | None = None, db: Database = Depends(get_db)) -> StudyRead:
    return gates.run_sanity(db, name, body or SanityRunRequest())


@router.post("/{name}/lr-range-test", status_code=202, response_model=StudyRead,
             summary="Run a learning-rate range test now: ordinary trials wait for its suggestion",
             responses={409: {"description": "The objective does not support it, the study is stopped or "
                                             "finished, or a special run is already open"}})
def run_lr_range(name: str, body: LrRangeTestRequest | None = None, db: Database = Depends(get_db)) -> StudyRead:
    return gates.run_lr_range(db, name, body or LrRangeTestRequest())


@router.post("/{name}/narrowing", response_model=StudyRead,
             summary="Narrow the lr to [low, high] (default: the range test's suggestion) for trials not drawn yet")
def narrow(name: str, body: NarrowingRequest | None = None, db: Database = Depends(get_db)) -> StudyRead:
    return gates.narrow_read(db, name, body or NarrowingRequest())


@router.delete("/{name}/narrowing", response_model=StudyRead, summary="Undo the narrowing in force",
               responses={409: {"description": "No narrowing is in force"}})
def restore(name: str, db: Database = Depends(get_db)) -> StudyRead:
    return gates.restore_read(db, name)
