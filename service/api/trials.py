"""Trial routes: the worker protocol (claim, heartbeat, report, complete, prune, fail, release) and reads.

Every call about a held trial passes the caller's identity (`caller.key`): a lease is bound to the
API token that claimed it (tuneserve_service.auth), and the store fences on it with the lease token.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from tuneserve_service.api.deps import get_db, require_caller
from tuneserve_service.api.responses import json_model
from tuneserve_service.auth.guard import Caller
from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import protocol
from tuneserve_service.domain.features import diagnoses
from tuneserve.schemas.enums import FailKind, TrialState
from tuneserve.schemas.trials import (
    ClaimRequest, CompleteRequest, CompleteResponse, Decision, FailRequest, LeaseRequest,
    PruneRequest, ReportRequest, TrialLease, TrialRead,
)

router = APIRouter(prefix="/trials", tags=["trials"])

# Ids are 32-bit integers in the database: a larger one is a 422, not a driver overflow.
TrialId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The trial's id")]
CallerDep = Annotated[Caller, Depends(require_caller)]


@router.post("/claim", response_model=TrialLease, responses={204: {"description": "No work right now"}})
def claim(body: ClaimRequest, caller: CallerDep, db: Database = Depends(get_db)):
    lease = protocol.claim(db, body.worker_id, body.study, caller.key, body.objective)
    return json_model(lease) if lease is not None else Response(status_code=204)


@router.get("/{trial_id}", response_model=TrialRead)
def read_trial(trial_id: TrialId, db: Database = Depends(get_db)) -> TrialRead:
    return protocol.get_trial(db, trial_id)


@router.post("/{trial_id}/heartbeat", response_model=Decision)
def heartbeat(trial_id: TrialId, body: LeaseRequest, caller: CallerDep, db: Database = Depends(get_db)):
    """Renew the lease (POST /leases/renew renews several at once; a report renews it too)."""
    return json_model(protocol.heartbeat(db, trial_id, body.lease_token, caller.key))


@router.post("/{trial_id}/report", response_model=Decision)
def report(trial_id: TrialId, body: ReportRequest, caller: CallerDep, db: Database = Depends(get_db)):
    """Store steps and renew the lease: a worker that reports within every third of its lease
    need not heartbeat."""
    return json_model(protocol.report(db, trial_id, body.lease_token, body.steps(), caller.key))


@router.post("/{trial_id}/complete", response_model=CompleteResponse)
def complete(trial_id: TrialId, body: CompleteRequest, caller: CallerDep, db: Database = Depends(get_db)):
    nxt = ((body.claim_next.worker_id, body.claim_next.study, body.claim_next.objective)
           if body.claim_next is not None else None)
    return json_model(protocol.complete(db, trial_id, body.lease_token, body.value, body.metrics, body.reports, nxt,
                                        caller.key, outcome=body.outcome))


@router.post("/{trial_id}/prune", response_model=TrialRead)
def prune(trial_id: TrialId, body: PruneRequest, caller: CallerDep, db: Database = Depends(get_db)) -> TrialRead:
    return protocol.end_trial(db, trial_id, body.lease_token, TrialState.PRUNED, caller.key,
                              stop_reason=body.reason or "pruned")


@router.post("/{trial_id}/fail", response_model=TrialRead)
def fail(trial_id: TrialId, body: FailRequest, caller: CallerDep, db: Database = Depends(get_db)) -> TrialRead:
    state = TrialState.DIVERGED if body.kind == FailKind.DIVERGED else TrialState.FAILED
    return protocol.end_trial(db, trial_id, body.lease_token, state, caller.key, fail_kind=body.kind,
                              fail_reason=body.reason)


@router.post("/{trial_id}/release", response_model=TrialRead)
def release(trial_id: TrialId, body: LeaseRequest, caller: CallerDep, db: Database = Depends(get_db)) -> TrialRead:
    return protocol.end_trial(db, trial_id, body.lease_token, TrialState.WAITING, caller.key)


@router.post("/{trial_id}/try-advice", status_code=201, response_model=TrialRead,
             summary="Enqueue the variant the trial's diagnosis proposes (admin)",
             responses={409: {"description": "The trial's diagnosis proposes no variant, or the study is stopped"},
                        422: {"description": "The variant's params fall outside the study's space (which field, "
                                             "which rule)"}})
def try_advice(trial_id: TrialId, db: Database = Depends(get_db)) -> TrialRead:
    """The trial's params with its variant's change applied, validated against the study's space, as
    an enqueued trial of the same study that records its parent (`parent_trial_id`) and the notch
    (`advice_notch`). Added to the budget like a repeat; a finished study runs again until it ends."""
    return diagnoses.try_advice(db, trial_id)
