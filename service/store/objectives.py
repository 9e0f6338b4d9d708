"""SQL of several objectives and constraints: a trial's objective vector and feasibility
(migration 0013), and the reads of them for the engines, the front and the exports."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Text, cast, select, update
from sqlalchemy.orm import Session

from tuneserve_service.db.models import Trial
from tuneserve_service.store.trials import ORDINARY, JsonParams

TRIALS = Trial.__table__


def set_objectives(session: Session, trial_id: int, objectives: list[float | None] | None,
                   constraint_values: list[float | None] | None, feasible: bool | None,
                   violation: float | None) -> None:
    session.execute(update(TRIALS).where(TRIALS.c.id == trial_id).values(
        objectives=objectives, constraint_values=constraint_values, feasible=feasible, violation=violation))


def history(session: Session, study_id: int) -> list[tuple[Any, ...]]:
    """(params, value, state, objectives, constraint_values) of every drawn ordinary trial, for the
    engines (params decoded lazily, as store.trials.history)."""
    return [
        (JsonParams(text_), value, state, objectives, constraint_values)
        for text_, value, state, objectives, constraint_values in session.execute(
            select(cast(TRIALS.c.params, Text), TRIALS.c.value, TRIALS.c.state, TRIALS.c.objectives,
                   TRIALS.c.constraint_values)
            .where(TRIALS.c.study_id == study_id, TRIALS.c.drawn.is_(True), ORDINARY)
        ).all()
    ]


def valued(session: Session, study_id: int, states: tuple[str, ...] = ("completed",)) -> list[Any]:
    """(id, number, params, state, objectives, feasible, violation, finished_at) of the study's ordinary
    trials in `states` that have an objective vector, in number order (the front, the best, exports)."""
    return list(session.execute(
        select(TRIALS.c.id, TRIALS.c.number, TRIALS.c.params, TRIALS.c.state, TRIALS.c.objectives,
               TRIALS.c.feasible, TRIALS.c.violation, TRIALS.c.finished_at)
        .where(TRIALS.c.study_id == study_id, ORDINARY, TRIALS.c.state.in_(list(states)),
               TRIALS.c.objectives.is_not(None))
        .order_by(TRIALS.c.number)
    ).all())


def completed_values(session: Session, study_id: int) -> list[Any]:
    """(id, number, params, value) of the study's completed ordinary trials with a value."""
    return list(session.execute(
        select(TRIALS.c.id, TRIALS.c.number, TRIALS.c.params, TRIALS.c.value)
        .where(TRIALS.c.study_id == study_id, ORDINARY, TRIALS.c.state == "completed", TRIALS.c.value.is_not(None))
    ).all())
