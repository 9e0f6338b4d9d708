"""Study routes: create (JSON or a W&B sweep as YAML), read, list, lifecycle, enqueue, ask, trials,
and the craft's refine and repeat. Each parses the request and calls one domain function, which
opens the transaction (tuneserve_service/domain/__init__.py); no route touches the store."""
from __future__ import annotations

import json
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from tuneserve_service.api.deps import get_db, require_caller
from tuneserve_service.api.limits import YAML_TYPES, NestingTooDeep, yaml_document
from tuneserve_service.auth.guard import Caller
from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import draw_ahead, protocol
from tuneserve_service.domain.core import studies as study_domain
from tuneserve_service.domain.features import multiobjective
from tuneserve_service.domain.features import refine as refine_domain
from tuneserve_service.domain.features import repeats as repeat_domain
from tuneserve.schemas.craft_requests import RefineRequest, RepeatRequest, RepeatResponse
from tuneserve.schemas.enums import StudyState, TrialState
from tuneserve.schemas.multiobjective import ParetoRead
from tuneserve.schemas.studies import StudyCreate, StudyRead
from tuneserve.schemas.trials import AskRequest, EnqueueRequest, TrialLease, TrialPage, TrialRead

router = APIRouter(prefix="/studies", tags=["studies"])


def _error(loc: tuple, msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])


def _reject_constant(token: str):
    raise ValueError(f"{token} is not a number JSON allows here")


async def _study_body(request: Request) -> StudyCreate:
    """Decode a JSON or YAML study document. The body's size and (for JSON) nesting were bounded
    by tuneserve_service.api.limits before this reads it; YAML is bounded here, as written and as expanded.
    A study document has no place for NaN or Infinity, so JSON's non-standard constants are refused."""
    settings = request.app.state.settings
    raw = await request.body()
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    kind = "YAML" if ctype in YAML_TYPES else "JSON"
    try:
        if ctype in YAML_TYPES:
            doc: Any = yaml_document(raw, settings.max_json_depth)
        else:
            doc = json.loads(raw or b"null", parse_constant=_reject_constant)
    except NestingTooDeep as err:
        raise RequestValidationError([{"loc": ("body",), "msg": str(err), "type": "nesting_too_deep",
                                       "ctx": {"max_depth": err.limit}}]) from None
    except (yaml.YAMLError, ValueError, RecursionError) as err:
        raise _error(("body",), f"the body is not valid {kind}: {str(err)[:300]}") from None
    if not isinstance(doc, dict):
        raise _error(("body",), "the body must be an object (a study or a W&B sweep document)")
    try:
        return StudyCreate.model_validate(doc)
    except ValidationError as err:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
        ) from None


@router.post(
    "", status_code=201, response_model=StudyRead,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/StudyCreate"}},  # api/openapi.py
        "application/yaml": {"schema": {"type": "string"}},
    }}},
)
async def create_study(request: Request, db: Database = Depends(get_db)) -> StudyRead:
    body = await _study_body(request)
    return await run_in_threadpool(study_domain.create, db, body)


@router.get("", response_model=list[StudyRead])
def list_studies(state: StudyState | None = None, db: Database = Depends(get_db)) -> list[StudyRead]:
    return study_domain.list_reads(db, state)


@router.get("/{name}", response_model=StudyRead)
def read_study(name: str, db: Database = Depends(get_db)) -> StudyRead:
    return study_domain.read(db, name)


@router.delete("/{name}", status_code=204)
def delete_study(name: str, db: Database = Depends(get_db)) -> Response:
    study_domain.delete(db, name)
    return Response(status_code=204)


def _lifecycle(action: str):
    def route(name: str, db: Database = Depends(get_db)) -> StudyRead:
        return study_domain.change(db, name, action)

    route.__name__ = f"{action}_study"
    return route


for _action in ("pause", "resume", "stop"):
    router.add_api_route(f"/{{name}}/{_action}", _lifecycle(_action), methods=["POST"], response_model=StudyRead)


@router.post("/{name}/enqueue", status_code=201, response_model=TrialRead)
def enqueue(name: str, body: EnqueueRequest, db: Database = Depends(get_db)) -> TrialRead:
    return study_domain.enqueue_read(db, name, body.params)


@router.post("/{name}/ask", response_model=list[TrialLease])
def ask(name: str, body: AskRequest, caller: Annotated[Caller, Depends(require_caller)], background: BackgroundTasks,
        db: Database = Depends(get_db)) -> list[TrialLease]:
    leases = protocol.ask(db, name, body.count, body.worker_id, caller.key)
    if leases and leases[-1].method in draw_ahead.ENGINES:   # the next asks wait on no fit
        background.add_task(draw_ahead.top_up, db, leases[-1].study, body.worker_id, caller.key)
    return leases


@router.get("/{name}/trials", response_model=TrialPage)
def list_trials(
    name: str,
    state: TrialState | None = Query(default=None),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
    db: Database = Depends(get_db),
) -> TrialPage:
    return study_domain.trial_page(db, name, state, limit, offset)


@router.post("/{name}/refine", status_code=201, response_model=StudyRead,
             summary="Coarse to fine: a child study around this one's top k trials")
def refine(name: str, body: RefineRequest, db: Database = Depends(get_db)) -> StudyRead:
    return refine_domain.refine_read(db, name, body)


@router.post("/{name}/repeat", status_code=201, response_model=RepeatResponse,
             summary="Re-run the top configurations with other seeds (added to the budget)")
def repeat(name: str, body: RepeatRequest, db: Database = Depends(get_db)) -> RepeatResponse:
    return repeat_domain.repeat_read(db, name, body.top_k, body.seeds)


@router.get("/{name}/pareto", response_model=ParetoRead,
            summary="The Pareto front: every completed trial's objective values, rank (1: the front) and feasibility")
def pareto_front(name: str, db: Database = Depends(get_db)) -> ParetoRead:
    return multiobjective.front_read(db, name)
