"""The dashboard's domain functions: each view's data from the store, shaped for one chart or table.

Routes (service/dashboard/api.py) call these with the Database; each public function runs in one
read-only session it opens itself (`in_one_read`), as the API's domain functions open their
transactions, so no route holds a session. These call the store
(service/store/dashboard.py) and the pure shaping in shaping.py and importance.py. Sizes are
bounded whatever the study's size: see the *_LIMIT constants.
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
from sqlalchemy.orm import Session

from tuneserve_service.dashboard import importance as importance_mod
from tuneserve_service.db.engine import Database
from tuneserve_service.dashboard.shaping import (
    TrialPoint, best_so_far, category_label, downsample, finite, param_columns, param_meta, pick_trials,
)
from tuneserve_service.domain.core import fidelity as fidelity_domain
from tuneserve_service.domain.core import provenance as provenance_domain
from tuneserve_service.domain.core import studies as study_domain
from tuneserve_service.domain.core.views import trial_read, utc
from tuneserve_service.domain import workers as worker_domain
from tuneserve_service.domain.features import multiobjective
from tuneserve_service.errors import InvalidInput, TrialNotFound
from tuneserve_service.optimizers import pareto
from tuneserve.schemas.enums import ENDED_STATES, TrialState
from tuneserve_service.store import dashboard as store
from tuneserve_service.store import studies as study_store

CURVES_LIMIT = 300  # learning curves drawn on the study page
CURVE_POINTS = 120  # points per curve on the study page
PARAMS_LIMIT = 1500  # trials in parallel coordinates and slice plots
IMPORTANCE_LIMIT = 1000  # completed trials the forest is fitted on
TRIAL_POINTS = 1000  # points per metric on the trial page
PAGE_LIMIT = 500

P = ParamSpec("P")
R = TypeVar("R")


def in_one_read(view: Callable[Concatenate[Session, P], R]) -> Callable[Concatenate[Database, P], R]:
    """A view over a session becomes one over the Database: one read-only session for the whole view,
    so its queries see one snapshot."""
    @wraps(view)
    def run(db: Database, *args: P.args, **kwargs: P.kwargs) -> R:
        with db.read() as session:
            return view(session, *args, **kwargs)

    return run


# ---- studies list -------------------------------------------------------------------------------

def _best(goal: str, lo: float | None, hi: float | None) -> float | None:
    return lo if goal == "minimize" else hi


def _latest(*times: datetime | None) -> datetime | None:
    found = [utc(t) for t in times if t is not None]
    return max(found) if found else None


@in_one_read
def studies_overview(session: Session) -> list[dict[str, Any]]:
    """Every study with its progress, best value and last activity (the latest trial start or end,
    or change of the study): three queries in all, whatever the number of trials."""
    per_study: dict[int, list[Any]] = {}
    for row in store.trial_aggregates(session):
        per_study.setdefault(row.study_id, []).append(row)
    starts = store.latest_starts(session)
    out = []
    for s in store.study_rows(session):
        counts = {state.value: 0 for state in TrialState}
        best, last = None, _latest(s.updated_at, starts.get(s.id))
        for row in per_study.get(s.id, []):
            counts[row.state] = row.n
            if row.state == TrialState.COMPLETED:
                best = _best(s.goal, row.lo, row.hi)
            last = _latest(last, row.last)
        out.append({
            "name": s.name, "description": s.description, "state": s.state, "method": s.method,
            "metric": s.metric_name, "goal": s.goal, "counts": counts, "total": sum(counts.values()),
            "ended": sum(counts[st] for st in ENDED_STATES), "budget": s.max_trials,
            "best_value": best, "created_at": utc(s.created_at), "last_activity": last,
            # The gates: a badge when the sanity check failed or holds the study back (studies.sanity).
            "gate": s.gate, "sanity_state": s.sanity_state,
        })
    return out


# ---- one study ----------------------------------------------------------------------------------

def _stamp(study, aggregates: list[Any]) -> str:
    """Changes whenever anything the study page shows changes: a trial's state, a new report
    (last_step only rises), the study's state or budget."""
    parts = [study.state, study.next_number, study.max_trials,
             sorted((r.state, r.n, int(r.steps or 0)) for r in aggregates)]
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]


@in_one_read
def study_summary(session: Session, name: str) -> dict[str, Any]:
    """The study's API read (any field later issues add to it comes along), the searched
    parameters, a stamp that the page polls to know when to refresh its charts, and the special
    runs (id, number, kind, state), which the gates' panels link to by number."""
    study = study_store.get_study(session, name)
    read = study_domain.study_read(session, study).model_dump(mode="json")
    return {"study": read, "params": param_meta(study.space),
            "stamp": _stamp(study, store.trial_aggregates(session, study.id)),
            "special_runs": store.special_runs(session, study.id)}


def _points(session: Session, study_id: int) -> list[TrialPoint]:
    # Named tuples: their fields read at C speed, which matters over 20,000 trials.
    return list(map(TrialPoint._make, store.trial_points(session, study_id)))


@in_one_read
def history(session: Session, name: str) -> dict[str, Any]:
    """Every trial's value and the best so far, as arrays in trial-number order; states as indexes
    into `states` (a fifth of the bytes of repeating the names)."""
    study = study_store.get_study(session, name)
    pts = _points(session, study.id)
    ids: list[int] = []
    numbers: list[int] = []
    states: list[str] = []
    values: list[float | None] = []
    for p in pts:
        ids.append(p.id)
        numbers.append(p.number)
        states.append(p.state)
        values.append(p.value)
    legend = list(TrialState)
    code = {s.value: i for i, s in enumerate(legend)}
    return {"goal": study.goal, "metric": study.metric_name, "id": ids, "number": numbers, "value": values,
            "states": [s.value for s in legend], "state": [code[s] for s in states],
            "best": best_so_far(values, states, study.goal), **_history_fidelity(session, study, numbers)}


def _history_fidelity(session: Session, study, numbers: list[int]) -> dict[str, Any]:
    """Each trial's fidelity label, shown next to its value: one `fidelity_label` when the study
    manages its fidelity (every trial shares it), else labels as indexes into `fidelities` when the
    study searches a data knob, else nothing."""
    if study.fidelity is not None:
        return {"fidelity_label": fidelity_domain.label(study.fidelity)}
    if not fidelity_domain.searches_data(study.space):   # constants at most: one label for every trial
        constants = {d["name"]: d.get("value") for d in study.space if d.get("distribution") == "constant"}
        label = fidelity_domain.label(fidelity_domain.trial_record(None, constants))
        return {"fidelity_label": label} if label else {}
    labels: list[str] = []
    by_number = {}
    for number, text in store.trial_fidelities(session, study.id):
        label = fidelity_domain.label(json.loads(text)) if text else None
        by_number[number] = label or "all the data"
    codes = []
    for number in numbers:
        label = by_number.get(number, "all the data")
        if label not in labels:
            labels.append(label)
        codes.append(labels.index(label))
    return {"fidelities": labels, "fidelity": codes}


@in_one_read
def curves(session: Session, name: str, limit: int = CURVES_LIMIT, points: int = CURVE_POINTS) -> dict[str, Any]:
    """The study metric per step for a bounded selection of trials, each line downsampled."""
    study = study_store.get_study(session, name)
    pts = [p for p in _points(session, study.id) if p.state != TrialState.WAITING]
    picked = pick_trials(pts, study.goal, limit)
    lines: dict[int, tuple[list[int], list[float]]] = {p.id: ([], []) for p in picked}
    for tid, step, value in store.curve_points(session, [p.id for p in picked]):
        lines[tid][0].append(step)
        lines[tid][1].append(value)
    trials = []
    for p in picked:
        steps, values = lines[p.id]
        if not steps:
            continue
        xs, ys = downsample(steps, values, points)
        trials.append({"id": p.id, "number": p.number, "state": p.state, "value": p.value,
                       "steps": xs, "values": ys, "last_step": steps[-1], "reported": len(steps)})
    return {"goal": study.goal, "metric": study.metric_name, "trials": trials,
            "shown": len(trials), "total": len(pts)}


_VALUED = frozenset({TrialState.COMPLETED.value, TrialState.PRUNED.value})


@in_one_read
def param_points(session: Session, name: str, limit: int = PARAMS_LIMIT) -> dict[str, Any]:
    """Parameters and value of a bounded selection of valued trials (completed and pruned), for
    parallel coordinates and slice plots."""
    study = study_store.get_study(session, name)
    meta = param_meta(study.space)
    pts = _points(session, study.id)
    valued = [p for p in pts if p.state in _VALUED and p.value is not None]
    picked = pick_trials(valued, study.goal, limit)
    texts = store.params_text(session, [p.id for p in picked])
    params = [json.loads(texts[p.id]) for p in picked]
    return {"goal": study.goal, "metric": study.metric_name, "params": meta,
            "id": [p.id for p in picked], "number": [p.number for p in picked],
            "state": [p.state for p in picked], "value": [p.value for p in picked],
            "columns": param_columns(meta, params), "shown": len(picked), "total": len(valued)}


class _Cache:
    """A small per-process LRU of computed importances, keyed by (study id, completed count):
    the forest is refitted only when a trial has completed since."""

    def __init__(self, size: int = 32):
        self._items: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict[str, Any] | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple, value: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_IMPORTANCE = _Cache()


@in_one_read
def importance(session: Session, name: str, limit: int = IMPORTANCE_LIMIT) -> dict[str, Any]:
    """Each parameter's importance for the study metric, over (an even sample of) completed trials."""
    study = study_store.get_study(session, name)
    meta = param_meta(study.space)
    completed = [p for p in _points(session, study.id) if p.state == TrialState.COMPLETED and p.value is not None]
    key = (study.id, len(completed), completed[-1].id if completed else 0)
    cached = _IMPORTANCE.get(key)
    if cached is not None:
        return cached
    picked = pick_trials(completed, study.goal, limit, best_share=0.0)
    texts = store.params_text(session, [p.id for p in picked])
    columns = param_columns(meta, [json.loads(texts[p.id]) for p in picked])
    result = importance_mod.compute(meta, columns, [p.value for p in picked], study.seed)
    out: dict[str, Any] = {"method": importance_mod.METHOD, "completed": len(completed),
                           "min_trials": importance_mod.MIN_TRIALS, "params": [], "r2": None, "trials": 0}
    if result is not None:
        ranked = sorted(zip(result.names, result.mean, result.std, result.raw), key=lambda t: -t[1])
        out.update(trials=result.trials, r2=result.r2, params=[
            {"name": n, "importance": m, "std": s, "raw": r} for n, m, s, r in ranked])
    _IMPORTANCE.put(key, out)
    return out


# ---- the trial table ----------------------------------------------------------------------------

def _parse_param_filter(raw: str, dims: dict[str, dict[str, Any]]) -> store.ParamFilter:
    """`name:min:max` (a numeric range, either end may be empty) or `name=value` (equality)."""
    loc = ("query", "param")
    if "=" in raw and (":" not in raw or raw.index("=") < raw.index(":")):
        name, _, text = raw.partition("=")
        dim = dims.get(name)
        if dim is None:
            raise InvalidInput(loc, f"unknown parameter {name!r} in {raw!r}; the study has {sorted(dims)}")
        if dim["kind"] == "categorical":
            by_label = {category_label(v): v for v in dim["values"]}
            if text not in by_label:
                raise InvalidInput(loc, f"{text!r} is not a value of {name!r}; its values are {sorted(by_label)}")
            value = by_label[text]
            if not isinstance(value, (str, int, float, bool)):
                raise InvalidInput(loc, f"{name!r}: only string, number and boolean values can be filtered on")
            return store.ParamFilter(name=name, equals=value, is_equality=True)
        number = _number(text, loc, f"the value of {name!r}")
        return store.ParamFilter(name=name, lo=number, hi=number)
    name, sep, rest = raw.partition(":")
    lo_text, sep2, hi_text = rest.partition(":")
    if not sep or not sep2:
        raise InvalidInput(loc, f"{raw!r}: write name:min:max for a range (an end may be empty) or name=value")
    dim = dims.get(name)
    if dim is None:
        raise InvalidInput(loc, f"unknown parameter {name!r} in {raw!r}; the study has {sorted(dims)}")
    if dim["kind"] == "categorical":
        raise InvalidInput(loc, f"{name!r} is categorical: filter it with {name}=value, not a range")
    lo = _number(lo_text, loc, f"the minimum of {name!r}") if lo_text else None
    hi = _number(hi_text, loc, f"the maximum of {name!r}") if hi_text else None
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInput(loc, f"{raw!r}: the minimum {lo:g} is above the maximum {hi:g}")
    return store.ParamFilter(name=name, lo=lo, hi=hi)


def _number(text: str, loc: tuple, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(loc, f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InvalidInput(loc, f"{what} must be a finite number, got {text!r}")
    return value


_SORT_KIND = {"categorical": "string", "int": "float", "float": "float"}


@in_one_read
def trials_page(
    session: Session, name: str, *, states: list[str], labels: list[str], value_min: float | None,
    value_max: float | None, params: list[str], sort: str, order: str, limit: int, offset: int,
) -> dict[str, Any]:
    """A page of the trial table (ordinary trials only), filtered and sorted by the database."""
    study = study_store.get_study(session, name)
    meta = param_meta(study.space)
    dims = {m["name"]: m for m in meta}
    if value_min is not None and value_max is not None and value_min > value_max:
        raise InvalidInput(("query", "value_min"), f"value_min {value_min:g} is above value_max {value_max:g}")
    filters = [_parse_param_filter(p, dims) for p in params]
    sort_kind = "float"
    if sort.startswith("params."):
        dim = dims.get(sort[len("params."):])
        if dim is None:
            raise InvalidInput(("query", "sort"), f"unknown parameter in {sort!r}; the study has {sorted(dims)}")
        sort_kind = _SORT_KIND[dim["kind"]]
        if dim["kind"] == "categorical" and any(isinstance(v, bool) for v in dim["values"]):
            sort_kind = "boolean"
    elif sort not in store.SORT_COLUMNS:
        raise InvalidInput(("query", "sort"), f"sort must be one of {sorted(store.SORT_COLUMNS)} or params.<name>, got {sort!r}")
    rows, total = store.page_trials(
        session, study.id, states=states, labels=labels, value_min=value_min, value_max=value_max, params=filters,
        sort=sort, sort_kind=sort_kind, descending=order == "desc", limit=limit, offset=offset,
    )
    items = []
    for r in rows:
        started, finished = utc(r["started_at"]), utc(r["finished_at"])
        items.append({
            "id": r["id"], "number": r["number"], "state": r["state"], "value": r["value"],
            "params": {m["name"]: _cell(m, r["params"].get(m["name"])) for m in meta},
            "method": r["method"], "attempt": r["attempt"], "worker_id": r["worker_id"],
            "last_step": r["last_step"], "stop_reason": r["stop_reason"], "stop_step": r["stop_step"],
            "fail_kind": r["fail_kind"], "started_at": started, "finished_at": finished,
            "duration_s": (finished - started).total_seconds() if started and finished else None,
            "fidelity": r["fidelity"], "fidelity_label": fidelity_domain.label(r["fidelity"]),
            "config_key": r["config_key"], "diagnosis": _badge(r["diagnosis"]),
        })
    return {"items": items, "total": total, "limit": limit, "offset": offset, "sort": sort, "order": order,
            "params": [m["name"] for m in meta]}


def _badge(diagnosis: Any) -> dict[str, Any] | None:
    """What a table row's diagnosis badge needs (the evidence stays on the trial page)."""
    if not isinstance(diagnosis, dict) or not diagnosis.get("label"):
        return None
    return {"label": diagnosis["label"], "cause": diagnosis.get("cause"), "advice": diagnosis.get("advice") or "",
            "provisional": bool(diagnosis.get("provisional"))}


def _cell(meta: dict[str, Any], value: Any) -> Any:
    return category_label(value) if meta["kind"] == "categorical" and value is not None else value


# ---- one trial ----------------------------------------------------------------------------------

@in_one_read
def trial_detail(session: Session, trial_id: int, points: int = TRIAL_POINTS) -> dict[str, Any]:
    """The trial's API read (reports left out) and every reported metric as one array per metric,
    on a shared step axis downsampled to at most `points` steps."""
    row = store.trial_row(session, trial_id)
    if row is None:
        raise TrialNotFound(trial_id)
    reports = store.trial_reports(session, trial_id)
    if len(reports) > points:
        stride = len(reports) / points
        reports = [reports[int(i * stride)] for i in range(points - 1)] + [reports[-1]]
    names: list[str] = []
    for r in reports:
        names += [k for k in r.metrics if k not in names]
    series = {n: [finite(r.metrics.get(n)) for r in reports] for n in names}
    read = trial_read(row, row["study_name"]).model_dump(mode="json")
    started, finished = read["started_at"], read["finished_at"]
    worker = worker_domain.read(session, row["worker_id"]) if row["worker_id"] else None
    return {
        "trial": read, "metric": row["metric_name"], "goal": row["goal"],
        # Where it ran, as its worker registered at start (None: a worker that never said, or forgotten).
        "ran_on": worker.identity.model_dump(mode="json") if worker and worker.identity else None,
        # What the run was, as its worker sent it (core/provenance.py): the trial page's Provenance panel.
        "provenance": provenance_domain.read(session, trial_id),
        "steps": [r.step for r in reports], "series": series,
        "reported_at": [utc(r.created_at) for r in reports],
        "duration_s": (utc(row["finished_at"]) - utc(row["started_at"])).total_seconds()
        if started and finished else None,
    }


# Hypervolume history points at most (a study of more trials is sampled evenly, its last trial kept).
HV_HISTORY_POINTS = 300


@in_one_read
def pareto_chart(session: Session, name: str) -> dict[str, Any]:
    """The front panel of a study with several objectives or constraints: every valued trial's
    objective values, rank (1: the front), feasibility and violation, and the hypervolume of the
    feasible trials so far after each trial (trial-number order; objectives normalised over all
    feasible trials, reference point 1.1), which only grows."""
    study = study_store.get_study(session, name)
    read = multiobjective.pareto_read(session, study)
    goals = tuple(o.goal.value for o in read.objectives)
    points = sorted(read.trials, key=lambda p: p.number)
    hv: list[dict[str, Any]] = []
    feasible = [p for p in points if p.feasible]
    if len(goals) > 1 and feasible:
        Y = pareto.to_min(np.array([p.values for p in feasible], dtype=float), goals)
        N = pareto.normalise(Y)
        step = max(1, math.ceil(len(feasible) / HV_HISTORY_POINTS))
        keep = sorted(set(range(step - 1, len(feasible), step)) | {len(feasible) - 1})
        hv = [{"number": feasible[i].number, "hypervolume": pareto.hypervolume(N[: i + 1])} for i in keep]
    return {
        "objectives": [o.model_dump(mode="json") for o in read.objectives],
        "constraints": [c.model_dump(mode="json") for c in read.constraints],
        "trials": [{"id": p.trial_id, "number": p.number, "values": p.values, "rank": p.rank,
                    "feasible": p.feasible, "violation": p.violation} for p in points],
        "hypervolume": hv,
    }
