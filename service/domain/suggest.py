"""The suggest flow: read the history, ask the optimizer with no transaction open, write the trials.

1. A short transaction reserves trial numbers from the study's budget (a brief row lock on the
   study); then the history is read with no lock held: finished trials as observations, waiting
   and running ones as pending, plus the completed trials of a warm-start study (random search
   over a continuous space skips this read).
2. The optimizer runs with no transaction open, seeded with study seed + first reserved number,
   so two servers suggesting for one study at once draw different points.
3. A second short transaction inserts the trials, running under the caller's lease.

An optimizer that raises falls back to random search for that suggestion (logged); the trial's
`method` records which engine produced it. A crash between 1 and 3 loses the reserved numbers, not
a trial: the budget counts them as used.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from service.db.engine import Database
from service.db.models import Study
from service.domain import impute
from service.optimizers.base import Observation, SpaceExhausted, Suggestion
from service.optimizers.registry import get_optimizer, grid_size
from service.schemas.enums import ACTIVE_STATES, VALUED_STATES
from service.space import SearchSpace
from service.store import studies as study_store
from service.store import trials as trial_store
from service.observability import metrics as observe

log = logging.getLogger("tuneserve.suggest")



def _observations(rows, space: SearchSpace) -> tuple[list[Observation], list[dict[str, Any]]]:
    completed, pending = [], []
    for params, value, state in rows:
        if state in ACTIVE_STATES:
            pending.append(params)
        elif state in VALUED_STATES:
            completed.append(Observation(params=params, value=value, state=state))
        else:  # failed, diverged: taught as worse than the worst completed value by the optimizer
            completed.append(Observation(params=params, value=None, state=state))
    return completed, pending


def _warm_start(session: Session, study: Study, space: SearchSpace) -> list[Observation]:
    source = study_store.find_study(session, study.warm_start_from) if study.warm_start_from else None
    if source is None:
        return []
    names = set(space.names)
    out = []
    for params, value, state in trial_store.history(session, source.id):
        if state != "completed" or value is None:
            continue
        mapped = {k: v for k, v in params.items() if k in names}
        for dim in space.dimensions:  # constants may differ between the studies
            if dim.kind == "constant":
                mapped[dim.name] = dim.value
        if set(mapped) == names and space.contains(mapped):
            out.append(Observation(params=mapped, value=value, state="completed"))
    return out


def needs_history(method: str, space: SearchSpace) -> bool:
    # Random search over a continuous space ignores history; skipping the read keeps claims cheap.
    return method != "random" or grid_size(space) is not None


@observe.timed_suggest
def compute(
    method: str, space: SearchSpace, completed: list[Observation], pending: list[dict[str, Any]],
    count: int, seed: int, goal: str,
) -> list[Suggestion]:
    try:
        return get_optimizer(method).suggest(space, completed, pending, count, seed, goal)
    except SpaceExhausted:
        raise
    except Exception:  # noqa: BLE001 - any engine failure degrades to random, never fails the request
        if method == "random":
            raise
        log.warning("optimizer %s failed; falling back to random for this suggestion", method, exc_info=True)
        return get_optimizer("random").suggest(space, completed, pending, count, seed, goal)


# Random search over a continuous space ignores history, so its draws can be made ahead: a claim
# that finds the queue empty reserves and inserts this many more as waiting trials, and the next
# claims take them with one UPDATE instead of a reservation and an insert each.
RANDOM_DRAW_AHEAD = 7


def _draw_ahead(study: Study) -> int:
    if study.method != "random" or study.max_concurrent is not None:
        return 0
    return 0 if needs_history(study.method, SearchSpace.from_json(study.space)) else RANDOM_DRAW_AHEAD


def _reserve(db: Database, study_id: int, count: int) -> tuple[range, range, Study]:
    """The only lock of the flow, on the study row, held as briefly as the backend allows."""
    if db.autocommit_engine is None:  # SQLite: serialised by the transaction itself
        with db.transaction() as s:
            run, queue = study_store.reserve_numbers(s, study_id, count, _draw_ahead)
            return run, queue, study_store.get_study_by_id(s, study_id)
    with db.transaction() as s:
        study = study_store.get_study_by_id(s, study_id)  # method and space never change
    if study.state != "running":
        return range(0), range(0), study
    with db.autocommit_engine.connect() as conn:
        run, queue = study_store.reserve_numbers_pg(conn, study_id, count, _draw_ahead(study))
    return run, queue, study


def suggest_trials(db: Database, study_id: int, count: int, worker_id: str) -> tuple[list[dict[str, Any]], Study | None]:
    """Create up to `count` running trials for `worker_id`; ([], study) when the budget or the
    study's state says no. Returns the study as read, for building the leases."""
    run, queue, study = _reserve(db, study_id, count)
    if not run:
        return [], study
    numbers = list(run) + list(queue)
    space = SearchSpace.from_json(study.space)
    completed: list[Observation] = []
    pending: list[dict[str, Any]] = []
    if needs_history(study.method, space):
        with db.transaction() as s:
            if impute.wanted(study):   # W&B's metric.impute / impute_while_running (h9-sweeps)
                completed, pending = impute.observations(s, study)
            else:
                completed, pending = _observations(trial_store.history(s, study.id), space)
            completed = _warm_start(s, study, space) + completed

    try:
        suggestions = compute(study.method, space, completed, pending, len(numbers), study.seed + numbers[0], study.goal)
    except SpaceExhausted:
        suggestions = []
    if len(suggestions) < len(numbers):
        # Only a grid runs out: what was handed out becomes the budget, so the study can finish.
        with db.transaction() as s:
            study_store.cap_budget(s, study_id, numbers[0] + len(suggestions))
            study_store.finish_if_done(s, study_id)
        if not suggestions:
            return [], study
    now, later = suggestions[: len(run)], suggestions[len(run):]
    with db.transaction() as s:
        rows = trial_store.insert_trials(
            s, study_id, numbers[: len(now)], [sg.params for sg in now], [sg.method for sg in now],
            state="running", worker_id=worker_id, lease_seconds=study.lease_seconds,
        )
        if later:
            trial_store.insert_trials(
                s, study_id, numbers[len(now):len(now) + len(later)], [sg.params for sg in later],
                [sg.method for sg in later], state="waiting",
            )
    return rows, study
