"""A study's objectives and constraints, and a trial's objective vector and feasibility.

A study document with `metrics` (several objectives) or `constraints` keeps them in studies.config;
`spec_of` reads them back (None for a single-objective, unconstrained study: nothing here runs for
it). When a trial of such a study ends with values (completed or pruned), `record` computes, from its
final report (the metrics of its completion over the latest reported value of each metric), its
objective vector in the study's order, each constraint's value in "<= 0 holds" form
(value - max, min - value), `feasible` and `violation` (the sum of the positive parts), and stores
them (migration 0013). It is called from one place: the multiobjective feature's after_trial_ends
hook (service/domain/features/multiobjective.py).

`observations` is the history the engines learn from in such a study: each Observation carries
its objective vector (`values`) and constraint values (`constraints`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy.orm import Session

from tuneserve.schemas.enums import ACTIVE_STATES, VALUED_STATES
from tuneserve_service.optimizers.base import Observation
from tuneserve_service.store import objectives as objective_store
from tuneserve_service.store import trials as trial_store

# Reports read back to find each metric's latest value when the completion did not carry it.
REPORTS_READ = 200


@dataclass(frozen=True)
class Spec:
    objectives: tuple[tuple[str, str], ...]                # (name, goal), the first is the study's metric
    constraints: tuple[tuple[str, str, float], ...]        # (name, "max" | "min", bound)

    @property
    def goals(self) -> tuple[str, ...]:
        return tuple(g for _, g in self.objectives)

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1


def spec_of(config: dict[str, Any] | None, metric_name: str, goal: str) -> Spec | None:
    """The study's objectives and constraints from its stored document (`objectives`: the ordered
    list create_study stores, `metric` first when the document gave one, then `metrics`); None when
    it has one objective and no constraint."""
    config = config or {}
    listed = config.get("objectives") or []
    constraints = config.get("constraints") or []
    if len(listed) < 2 and not constraints:
        return None
    objectives = [(o["name"], o.get("goal", "minimize")) for o in listed] or [(metric_name, str(goal))]
    cons = [(c["name"], "max" if c.get("max") is not None else "min",
             float(c["max"] if c.get("max") is not None else c["min"])) for c in constraints]
    return Spec(tuple(objectives), tuple(cons))


@dataclass(frozen=True)
class Evaluation:
    objectives: list[float | None]
    constraint_values: list[float | None] | None
    feasible: bool | None
    violation: float | None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def final_metrics(final: dict[str, Any] | None, reports: Iterable[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """The trial's final metrics: the latest reported value of each metric, overridden by the ones
    its completion carried."""
    out: dict[str, Any] = {}
    for _, metrics in sorted(reports, key=lambda r: r[0]):
        out.update(metrics or {})
    out.update(final or {})
    return out


def evaluate(spec: Spec, metrics: dict[str, Any], value: float | None = None) -> Evaluation:
    """The objective vector and feasibility of final `metrics`; `value` (the completion's value) is
    the first objective when the metrics do not carry it."""
    objs = [_number(metrics.get(name)) for name, _ in spec.objectives]
    if objs and objs[0] is None:
        objs[0] = _number(value)
    if not spec.constraints:
        return Evaluation(objs, None, None, None)
    cons: list[float | None] = []
    for name, side, bound in spec.constraints:
        v = _number(metrics.get(name))
        cons.append(None if v is None else (v - bound if side == "max" else bound - v))
    if any(c is None for c in cons):
        return Evaluation(objs, cons, False, None)
    violation = float(sum(max(c, 0.0) for c in cons))
    return Evaluation(objs, cons, violation <= 0.0, violation)


def record(session: Session, spec: Spec, row: dict[str, Any],
           known: list[tuple[int, dict[str, Any]]] | None = None) -> Evaluation | None:
    """Compute and store the objective vector and feasibility of an ended trial `row` (completed
    or pruned; others get nothing). Returns what was stored."""
    if row["state"] not in VALUED_STATES:
        return None
    reports = known if known is not None else trial_store.recent_reports(session, row["id"], REPORTS_READ)
    ev = evaluate(spec, final_metrics(row.get("metrics"), reports), row.get("value"))
    objectives = ev.objectives if all(v is not None for v in ev.objectives) else None
    objective_store.set_objectives(session, row["id"], objectives, ev.constraint_values, ev.feasible, ev.violation)
    return ev


def observations(session: Session, study_id: int) -> tuple[list[Observation], list[dict[str, Any]]]:
    """The engines' history of a study with a Spec: (ended observations with `values` and
    `constraints`, pending params)."""
    completed, pending = [], []
    for params, value, state, objs, cons in objective_store.history(session, study_id):
        if state in ACTIVE_STATES:
            pending.append(params)
        elif state in VALUED_STATES and objs is not None:
            completed.append(Observation(params=params, value=value, state=state, values=tuple(objs),
                                         constraints=None if cons is None else tuple(cons)))
        else:   # failed, diverged, or ended without every objective: worse than any result
            completed.append(Observation(params=params, value=None, state=state if state not in VALUED_STATES
                                         else "failed", constraints=None if cons is None else tuple(cons)))
    return completed, pending
