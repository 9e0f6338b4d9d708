"""POST /leases/renew: renew several held leases in one call (a worker with several slots, or any
client holding several trials). One fenced UPDATE renews them all; each lease gets its own verdict,
as a heartbeat would answer it (stop decisions included), or held=false with the error code a
heartbeat would have raised. Part of the worker protocol: any valid token may call it
(auth/guard.py), and a lease is renewed only for the API token that claimed it."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from tuneserve_service.api.deps import get_db, require_caller
from tuneserve_service.api.responses import json_model
from tuneserve_service.auth.guard import Caller
from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import protocol
from tuneserve_service.errors import DomainError
from tuneserve.schemas.trials import LeaseVerdict, RenewRequest, RenewResponse

router = APIRouter(prefix="/leases", tags=["trials"])


@router.post("/renew", response_model=RenewResponse,
             summary="Renew several leases in one call; one verdict per lease, in the order sent")
def renew(body: RenewRequest, caller: Annotated[Caller, Depends(require_caller)], db: Database = Depends(get_db)):
    answers = protocol.renew_leases(db, [(ref.trial_id, ref.lease_token) for ref in body.leases], caller.key)
    verdicts = []
    for trial_id, answer in answers:
        if isinstance(answer, DomainError):
            verdicts.append(LeaseVerdict(trial_id=trial_id, held=False, error=answer.code, should_stop=True,
                                         reason=answer.message))
        else:
            verdicts.append(LeaseVerdict(trial_id=trial_id, **dict(answer)))
    return json_model(RenewResponse(leases=verdicts))
