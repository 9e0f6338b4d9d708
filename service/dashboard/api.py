"""The dashboard's chart-data endpoints (JSON under /dashboard/api): one per chart or table.

Each answers through one domain function in data.py (which reads in one read-only session),
with sizes bounded on the server. Same auth as the API: a bearer token or the dashboard's cookie.
A new panel adds a function to data.py and a route here; the page fetches it by name.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tuneserve_service.api.deps import TrialId, get_db, require_caller
from tuneserve_service.dashboard import data
from tuneserve_service.db.engine import Database
from tuneserve.schemas.enums import DiagnosisLabel, TrialState

router = APIRouter(prefix="/dashboard/api", tags=["dashboard"], dependencies=[Depends(require_caller)])


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


class DashboardJSON(Response):
    """json.dumps straight to bytes: FastAPI's generic encoder walks every element in Python, which
    on a 20,000-trial history costs more than the query."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_default, allow_nan=False, separators=(",", ":")).encode()


@router.get("/studies", summary="Every study with progress, best value and last activity")
def studies(db: Database = Depends(get_db)) -> Response:
    return DashboardJSON(data.studies_overview(db))


@router.get("/studies/{name}", summary="The study's read, its parameters and a change stamp")
def summary(name: str, db: Database = Depends(get_db)) -> Response:
    return DashboardJSON(data.study_summary(db, name))


@router.get("/studies/{name}/history", summary="Every trial's value and the best so far, as arrays")
def history(name: str, db: Database = Depends(get_db)) -> Response:
    return DashboardJSON(data.history(db, name))


@router.get("/studies/{name}/curves", summary="Learning curves of a bounded selection of trials")
def curves(
    name: str, db: Database = Depends(get_db),
    limit: int = Query(default=data.CURVES_LIMIT, ge=1, le=1000, description="Trials drawn at most"),
    points: int = Query(default=data.CURVE_POINTS, ge=4, le=2000, description="Points per curve at most"),
) -> Response:
    return DashboardJSON(data.curves(db, name, limit, points))


@router.get("/studies/{name}/pareto", summary="Several objectives: every valued trial's values, rank and "
                                              "feasibility, and the hypervolume history")
def pareto(name: str, db: Database = Depends(get_db)) -> Response:
    return DashboardJSON(data.pareto_chart(db, name))


@router.get("/studies/{name}/params", summary="Parameters and value of a bounded selection of trials")
def params(
    name: str, db: Database = Depends(get_db),
    limit: int = Query(default=data.PARAMS_LIMIT, ge=1, le=5000, description="Trials at most"),
) -> Response:
    return DashboardJSON(data.param_points(db, name, limit))


@router.get("/studies/{name}/importance", summary="Parameter importance (random forest, permutation)")
async def importance(name: str, db: Database = Depends(get_db)) -> Response:
    return DashboardJSON(await run_in_threadpool(data.importance, db, name))


@router.get("/studies/{name}/trials", summary="A page of the trial table, filtered and sorted in SQL")
def trials(
    name: str, db: Database = Depends(get_db),
    state: list[TrialState] = Query(default=[], description="Keep these states (repeatable)"),
    diagnosis: list[DiagnosisLabel] = Query(default=[], description="Keep trials diagnosed with these labels (repeatable)"),
    value_min: float | None = Query(default=None, allow_inf_nan=False),
    value_max: float | None = Query(default=None, allow_inf_nan=False),
    param: list[str] = Query(default=[], max_length=32,
                             description="name:min:max (a range; an end may be empty) or name=value; repeatable"),
    sort: str = Query(default="number", max_length=300,
                      description="number, value, state, attempt, last_step, worker_id, started_at, "
                                  "finished_at or params.<name>"),
    order: Literal["asc", "desc"] = "asc",
    limit: int = Query(default=50, ge=1, le=data.PAGE_LIMIT),
    offset: int = Query(default=0, ge=0, le=10_000_000),
) -> Response:
    return DashboardJSON(data.trials_page(db, name, states=[str(x) for x in state],
                                          labels=[str(x) for x in diagnosis], value_min=value_min,
                                          value_max=value_max, params=param, sort=sort, order=order,
                                          limit=limit, offset=offset))


@router.get("/trials/{trial_id}", summary="A trial's read and every reported metric as arrays")
def trial(trial_id: TrialId, db: Database = Depends(get_db),
          points: int = Query(default=data.TRIAL_POINTS, ge=4, le=20_000)) -> Response:
    return DashboardJSON(data.trial_detail(db, trial_id, points))
