"""Several objectives and constraints: the document's rules, each trial's objective vector and
feasibility when it ends, the study read's feasible best and front, and the Pareto front view.

  - check_document: `metrics` / `constraints` with `tpe_hyperopt` (univariate, one loss) or with
    `warm_start_from` (the other study's trials carry no vectors) are refused (422 naming the field).
    Pruners (and early_terminate) are allowed and compare the FIRST objective only (the study's
    `metric`, the value every report stores); the read says so (`pruning_note`).
  - after_trial_ends: core/objectives.record stores the trial's vector and feasibility (the one place
    they are computed).
  - read_fields: objectives, constraints, the best feasible trial (or the least infeasible one,
    best_is_feasible false), the front.
  - pareto (GET /studies/{name}/pareto): every valued trial with its rank (1: the front among
    feasible trials), feasibility and violation, and the front's hypervolume.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from tuneserve_service.db.engine import Database
from tuneserve_service.db.models import Study, Trial
from tuneserve_service.domain.core import objectives
from tuneserve_service.domain.core.hooks import Feature, StudyDraft, TrialEnding
from tuneserve_service.errors import InvalidInput
from tuneserve_service.optimizers import pareto
from tuneserve.schemas.enums import StudyMethod, TrialKind, VALUED_STATES
from tuneserve.schemas.multiobjective import ConstraintRead, ObjectiveSpec, ParetoPoint, ParetoRead
from tuneserve_service.store import objectives as objective_store
from tuneserve_service.store import studies as study_store

PRUNING_NOTE = ("pruners compare the first objective ({name}) only: it is the value every report "
                "stores and the one a curve is judged by")


def _check_document(draft: StudyDraft) -> None:
    body = draft.body
    if not body.metrics and not body.constraints:
        return
    field = "metrics" if body.metrics else "constraints"
    method = draft.method or body.method.value
    if method == StudyMethod.TPE_HYPEROPT:
        raise InvalidInput(("body", "method"), f"method tpe_hyperopt optimizes one metric and takes no "
                           f"constraints; with `{field}` use tpe (MOTPE), gp, bayes, random or grid")
    if body.metric is not None and (body.metric.impute or body.metric.impute_while_running):
        raise InvalidInput(("body", "metric", "impute"), f"impute and impute_while_running apply to a single "
                           f"unconstrained objective: leave them out with `{field}`")
    if body.stages:
        raise InvalidInput(("body", "stages"), f"stages cannot be used with `{field}`: each stage is warm-started "
                           f"from the last one's single values; run the stages as separate studies")
    if body.warm_start_from is not None:
        raise InvalidInput(("body", "warm_start_from"), f"warm_start_from cannot be used with `{field}`: the "
                           f"other study's trials carry one value, not this study's objectives and constraints")


def spec_for(study: Any) -> objectives.Spec | None:
    return objectives.spec_of(study.config, study.metric_name, study.goal)


def _after_trial_ends(session: Session, row: dict[str, Any], ending: TrialEnding) -> dict[str, Any]:
    if row["kind"] != TrialKind.TRIAL or row["state"] not in VALUED_STATES:
        return row
    read = ending.study
    if read is not None:   # the statement that ended the trial read the document's two keys
        spec = objectives.spec_of({"objectives": read.objectives, "constraints": read.constraints},
                                  read.metric_name, read.goal)
    else:
        doc = study_store.study_document(session, row["study_id"])   # three columns, not the ORM study
        spec = objectives.spec_of(doc.config, doc.metric_name, doc.goal)
    if spec is None:
        return row
    ev = objectives.record(session, spec, row, ending.known)
    objs = ev.objectives if all(v is not None for v in ev.objectives) else None
    return {**row, "objectives": objs, "constraint_values": ev.constraint_values, "feasible": ev.feasible,
            "violation": ev.violation}


# --- the front --------------------------------------------------------------------------------

def points(session: Session, study: Study, spec: objectives.Spec) -> list[ParetoPoint]:
    """Every completed trial with an objective vector: its rank among feasible trials (1: the
    front; None: infeasible), front first, then by rank and number."""
    rows = objective_store.valued(session, study.id)
    if not rows:
        return []
    Y = pareto.to_min(np.array([r.objectives for r in rows], dtype=float), spec.goals)
    feasible = np.array([r.feasible is not False for r in rows], dtype=bool)
    rank: list[int | None] = [None] * len(rows)
    if feasible.any():
        Yf = Y[feasible]
        r = pareto.ranks(Yf) if Yf.shape[1] > 1 else np.unique(Yf[:, 0], return_inverse=True)[1] + 1
        for i, k in zip(np.flatnonzero(feasible), r):
            rank[i] = int(k)
    out = [ParetoPoint(trial_id=row.id, number=row.number, params=row.params, values=list(row.objectives),
                       rank=rank[i], feasible=bool(feasible[i]), violation=row.violation)
           for i, row in enumerate(rows)]
    return sorted(out, key=lambda p: (p.rank is None, p.rank or 0,
                                      math.inf if p.violation is None else p.violation, p.number))


def front_hypervolume(front: list[ParetoPoint], every: list[ParetoPoint], goals: tuple[str, ...]) -> float | None:
    """The front's hypervolume, objectives normalised over the feasible trials (ref 1.1 each)."""
    feasible = [p for p in every if p.feasible]
    if len(goals) < 2 or not front:
        return None
    F = pareto.to_min(np.array([p.values for p in feasible], dtype=float), goals)
    bounds = np.vstack([F.min(axis=0), F.max(axis=0)])
    Y = pareto.normalise(pareto.to_min(np.array([p.values for p in front], dtype=float), goals), bounds)
    return pareto.hypervolume(Y)


def pareto_read(session: Session, study: Study) -> ParetoRead:
    spec = spec_for(study)
    if spec is None:   # a single objective: its front is its best trial
        spec = objectives.Spec(((study.metric_name, str(study.goal)),), ())
        rows = objective_store.valued(session, study.id)
        every = points(session, study, spec) if rows else _single_points(session, study)
    else:
        every = points(session, study, spec)
    front = [p for p in every if p.rank == 1]
    return ParetoRead(
        study=study.name,
        objectives=[ObjectiveSpec(name=n, goal=g) for n, g in spec.objectives],
        constraints=[ConstraintRead(name=n, **{side: b}) for n, side, b in spec.constraints],
        front=front, trials=every, hypervolume=front_hypervolume(front, every, spec.goals))


def _single_points(session: Session, study: Study) -> list[ParetoPoint]:
    """A single-objective study's completed trials, ranked by value (equal values share a rank)."""
    rows = objective_store.completed_values(session, study.id)
    rows.sort(key=lambda r: (r.value if study.goal == "minimize" else -r.value, r.number))
    out, prev, rank = [], None, 0
    for r in rows:
        if r.value != prev:
            rank, prev = rank + 1, r.value
        out.append(ParetoPoint(trial_id=r.id, number=r.number, params=r.params, values=[r.value], rank=rank,
                               feasible=True, violation=None))
    return out


def front_read(db: Database, name: str) -> ParetoRead:
    with db.transaction() as s:
        return pareto_read(s, study_store.get_study(s, name))


# --- the read ---------------------------------------------------------------------------------

def _read_fields(session: Session, study: Study, fields: dict[str, Any]) -> dict[str, Any]:
    spec = spec_for(study)
    if spec is None:
        return {}
    out: dict[str, Any] = {
        "objectives": [ObjectiveSpec(name=n, goal=g) for n, g in spec.objectives],
        "constraints": [ConstraintRead(name=n, **{side: b}) for n, side, b in spec.constraints],
    }
    if spec.multi:
        out["pruning_note"] = PRUNING_NOTE.format(name=spec.objectives[0][0])
    every = points(session, study, spec)
    best = _best(every, spec)
    if best is not None:
        out["best_trial"] = session.get(Trial, best.trial_id)
        if spec.constraints:
            out["best_is_feasible"] = best.feasible
    elif not every:
        out["best_trial"] = None
    if spec.multi:
        out["pareto_front"] = [{"trial_id": p.trial_id, "number": p.number, "values": p.values}
                               for p in every if p.rank == 1]
    return out


def _best(every: list[ParetoPoint], spec: objectives.Spec) -> ParetoPoint | None:
    """The front's trial best in the first objective; the least infeasible one when none is feasible."""
    sign = -1.0 if spec.goals[0] == "maximize" else 1.0
    front = [p for p in every if p.rank == 1]
    if front:
        return min(front, key=lambda p: (sign * p.values[0], p.number))
    infeasible = [p for p in every if not p.feasible]
    if not infeasible:
        return None
    return min(infeasible, key=lambda p: (math.inf if p.violation is None else p.violation, p.number))


FEATURE = Feature("multiobjective", check_document=_check_document, after_trial_ends=_after_trial_ends,
                  read_fields=_read_fields)
