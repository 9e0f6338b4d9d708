"""Trial routes: the worker protocol (claim, heartbeat, report, complete, prune, fail, release) and reads.

Every call about a held trial passes the caller's identity (`caller.key`): a lease is bound to the
API token that claimed it (tuneserve_service.auth), and the store fences on it with the lease token.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Response

from tuneserve_service.api.deps import TrialId, get_db, require_caller
from tuneserve_service.api.responses import json_model
from tuneserve_service.auth.guard import Caller
from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import draw_ahead, protocol, provenance
from tuneserve_service.domain.features import diagnoses, reruns
from tuneserve.schemas.enums import FailKind, TrialState
from tuneserve.schemas.trials import (
    ClaimRequest, CompleteRequest, CompleteResponse, Decision, FailRequest, LeaseRequest,
    PruneRequest, ReportRequest, TrialLease, TrialRead,
)
from tuneserve.schemas.provenance import RerunRequest

router = APIRouter(prefix="/trials", tags=["trials"])

CallerDep = Annotated[Caller, Depends(require_caller)]


@router.post("/claim", response_model=TrialLease, responses={204: {"description": "No work right now"}})
def claim(body: ClaimRequest, caller: CallerDep, background: BackgroundTasks, db: Database = Depends(get_db)):
    lease = protocol.claim(db, body.worker_id, body.study, caller.key, body.objective)
    if lease is not None and lease.method in draw_ahead.ENGINES:   # the next claims wait on no fit
        background.add_task(draw_ahead.top_up, db, lease.study, body.worker_id, caller.key)
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
    if body.provenance is not None:  # once per attempt, with its first report (core/provenance.py)
        provenance.record(db, trial_id, body.lease_token, caller.key, body.provenance)
    return json_model(protocol.report(db, trial_id, body.lease_token, body.steps(), caller.key))


@router.post("/{trial_id}/complete", response_model=CompleteResponse)
def complete(trial_id: TrialId, body: CompleteRequest, caller: CallerDep, background: BackgroundTasks,
             db: Database = Depends(get_db)):
    nxt = ((body.claim_next.worker_id, body.claim_next.study, body.claim_next.objective)
           if body.claim_next is not None else None)
    if body.provenance is not None:  # a run that reported nothing sends it here (core/provenance.py)
        provenance.record(db, trial_id, body.lease_token, caller.key, body.provenance)
    done = protocol.complete(db, trial_id, body.lease_token, body.value, body.metrics, body.reports, nxt, caller.key,
                             outcome=body.outcome)
    if done.next is not None and done.next.method in draw_ahead.ENGINES:
        background.add_task(draw_ahead.top_up, db, done.next.study, body.claim_next.worker_id, caller.key)
    return json_model(done)


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


@router.post("/{trial_id}/rerun", status_code=201, response_model=TrialRead,
             summary="Enqueue the trial's run again, same params, seed and data, into its study or another (admin)",
             responses={404: {"description": "Unknown trial or target study"},
                        409: {"description": "The trial never ran or is a special run, or the target study is stopped"},
                        422: {"description": "The trial's params fall outside the target study's space, or its "
                                             "fidelity is another (which param, which rule)"}})
def rerun(trial_id: TrialId, body: Annotated[RerunRequest | None, Body()] = None,
          db: Database = Depends(get_db)) -> TrialRead:
    """The params the trial ran with (its seed, data subset and fidelity included) as an enqueued trial
    of `study` (default: the trial's own) that records the trial it reruns (`rerun_of`). Added to the
    budget like a repeat; a finished study runs again until it ends. The worker records each run's
    provenance (versions, code hash, command line): compare the two trials' reads."""
    return reruns.rerun(db, trial_id, body.study if body is not None else None)
