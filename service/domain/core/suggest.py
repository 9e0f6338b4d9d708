"""The suggest flow: reserve rows, ask the optimizer with no transaction open, fill in the params.

1. **Reserve.** One short write takes trial numbers from the study's budget *and* inserts their
   rows, undrawn (`drawn = false`, empty params), running under a fresh lease for the caller. On
   PostgreSQL that is a single autocommit statement (the study row is locked only inside it);
   a study with max_concurrent instead takes its admission lock and counts running rows first,
   so the cap holds across threads and server processes (store.studies.lock_admission).
2. **Draw.** The history is read with no lock held (drawn trials only; waiting and running ones
   are pending; a warm-start study's trials inside the space come first, their values mapped by
   rank when they ran at another fidelity: core/lineage.py), and the optimizer runs with no
   transaction open, seeded from (study seed, first
   trial number) through numpy's SeedSequence, so neighbouring seeds and neighbouring trials get
   unrelated streams and two servers suggesting at once draw different points.
3. **Fill.** A second short transaction writes the params (with each trial's fidelity record and
   configuration key), fenced by each row's lease token.

Because the row exists from the moment its number is taken, nothing that fails between 1 and 3
(a server killed, a database connection dropped, an optimizer that raises) can lose a trial from
the budget: the reservation's lease runs out, the reaper puts it back to waiting (without using
one of its retries: nobody ran it), and the next claim of it draws its params (`draw_claimed`).
Reservations count as running, so max_concurrent is exact. An optimizer that raises falls back
to random search for that suggestion (logged); the trial's `method` records the engine used.
"""
from __future__ import annotations

import logging
import zlib
from typing import Any

import numpy as np

from tuneserve_service.db.engine import Database
from tuneserve_service.db.models import Study
from tuneserve_service.craft.repeats import config_key
from tuneserve_service.domain.core import impute, objectives
from tuneserve_service.domain.core.fidelity import trial_record
from tuneserve_service.domain.core.lineage import warm_start_observations
from tuneserve_service.domain.core.studies import settle
from tuneserve_service.optimizers.base import Observation, SpaceExhausted, Suggestion
from tuneserve_service.optimizers.registry import get_optimizer, grid_size
from tuneserve.schemas.enums import ACTIVE_STATES, VALUED_STATES, Method, StudyState, TrialState
from tuneserve_service.space import SearchSpace
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store
from tuneserve_service.observability import metrics as observe

log = logging.getLogger("tuneserve.suggest")


def trial_seed(study_seed: int, number: int, method: str) -> int:
    """The seed of the suggestion that starts at trial `number`: SeedSequence([study seed, number,
    engine]) so that (s, n + 1) and (s + 1, n) share nothing, and a fallback engine draws from its
    own stream rather than the failed one's."""
    engine = zlib.crc32(method.encode())
    return int(np.random.SeedSequence([int(study_seed) & 0xFFFFFFFF, int(number), engine]).generate_state(1)[0])


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


def needs_history(method: str, space: SearchSpace) -> bool:
    # Random search over a continuous space ignores history; skipping the read keeps claims cheap.
    return method != Method.RANDOM or grid_size(space) is not None


@observe.timed_suggest
def compute(
    method: str, space: SearchSpace, completed: list[Observation], pending: list[dict[str, Any]],
    count: int, study_seed: int, number: int, goal: str, goals: tuple[str, ...] | None = None,
) -> list[Suggestion]:
    # Several objectives or constraints (core/objectives.py): the model-based engines take every
    # goal; random and grid need nothing new.
    extra = {"goals": goals} if goals is not None and method in (Method.TPE, Method.GP) else {}
    try:
        return get_optimizer(method).suggest(
            space, completed, pending, count, trial_seed(study_seed, number, method), goal, **extra)
    except SpaceExhausted:
        raise
    except Exception:  # noqa: BLE001 - any engine failure degrades to random, never fails the request
        if method == Method.RANDOM:
            raise
        log.warning("optimizer %s failed; falling back to random for this suggestion", method, exc_info=True)
        return get_optimizer(Method.RANDOM).suggest(
            space, completed, pending, count, trial_seed(study_seed, number, Method.RANDOM), goal)


# Random search over a continuous space ignores history, so its draws can be made ahead: a claim
# that finds the queue empty reserves this many more and queues them as waiting trials, and the
# next claims take them with one UPDATE instead of a reservation, a draw and a fill each.
RANDOM_DRAW_AHEAD = 7


def _draw_ahead(study: Study) -> int:
    if study.method != Method.RANDOM or study.max_concurrent is not None:
        return 0
    return 0 if needs_history(study.method, SearchSpace.from_json(study.space)) else RANDOM_DRAW_AHEAD


def _reserve(db: Database, study_id: int, count: int, worker_id: str, holder: str | None):
    """Step 1: rows to run now and rows to queue, with the study as read."""
    with db.transaction() as s:
        study = study_store.get_study_by_id(s, study_id)  # method and space never change
        if study.state != StudyState.RUNNING:
            return [], [], study
        if db.autocommit_engine is None or study.max_concurrent is not None:
            study_store.lock_admission(s, study_id)
            run, queue = trial_store.reserve_trials(
                s, study_id, count, _draw_ahead(study), worker_id=worker_id, holder=holder)
            return run, queue, study
    with db.autocommit_engine.connect() as conn:
        run, queue = trial_store.reserve_trials_pg(
            conn, study_id, count, _draw_ahead(study), worker_id=worker_id, holder=holder)
    return run, queue, study


def _draw(db: Database, study: Study, run: list[dict[str, Any]], queue: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps 2 and 3 for reserved rows held by the caller: returns the `run` rows filled."""
    rows = run + queue
    space = SearchSpace.from_json(study.space)
    completed: list[Observation] = []
    pending: list[dict[str, Any]] = []
    spec = objectives.spec_of(study.config, study.metric_name, study.goal)
    if needs_history(study.method, space):
        with db.transaction() as s:
            if spec is not None:   # several objectives or constraints: vectors, not one value
                completed, pending = objectives.observations(s, study.id)
            elif impute.wanted(study):   # W&B's metric.impute / impute_while_running (h9-sweeps)
                completed, pending = impute.observations(s, study)
            else:
                completed, pending = _observations(trial_store.history(s, study.id), space)
            own = [o.value for o in completed if o.state == TrialState.COMPLETED and o.value is not None]
            if spec is None:
                completed = warm_start_observations(s, study, space, own) + completed
    try:
        suggestions = compute(study.method, space, completed, pending, len(rows), study.seed,
                              rows[0]["number"], study.goal, None if spec is None else spec.goals)
    except SpaceExhausted:
        suggestions = []
    now, later = suggestions[: len(run)], suggestions[len(run):]
    with db.transaction() as s:
        filled = trial_store.fill_drawn(s, run[: len(now)], [sg.params for sg in now], [sg.method for sg in now],
                                        **_records(study, now))
        if later:
            trial_store.fill_drawn(s, queue[: len(later)], [sg.params for sg in later],
                                   [sg.method for sg in later], queue=True, **_records(study, later))
        if len(suggestions) < len(rows):
            # Only a grid runs out: the rows it cannot fill go, and the budget shrinks to the
            # trials that exist, so the study can finish.
            removed = trial_store.delete_undrawn(s, rows[len(suggestions):])
            if removed:
                study_store.shrink_budget(s, study.id, removed)
            settle(s, study.id)
    return filled


def _records(study: Study, suggestions: list[Suggestion]) -> dict[str, list]:
    """Each drawn trial's fidelity record and configuration key (service/domain/core/fidelity.py, repeats.py)."""
    return {"fidelities": [trial_record(study.fidelity, sg.params) for sg in suggestions],
            "config_keys": [config_key(sg.params) for sg in suggestions]}


def suggest_trials(
    db: Database, study_id: int, count: int, worker_id: str, holder: str | None = None,
) -> tuple[list[dict[str, Any]], Study | None]:
    """Create up to `count` running trials for `worker_id`; ([], study) when the budget, the
    concurrency cap or the study's state says no. Returns the study as read, for the leases."""
    run, queue, study = _reserve(db, study_id, count, worker_id, holder)
    if not run:
        return [], study
    return _draw(db, study, run, queue), study


def draw_queued(db: Database, study_id: int, count: int, worker_id: str, holder: str | None) -> int:
    """Reserve up to `count` trial numbers and draw them into the queue as waiting trials (what
    core/draw_ahead.py keeps ready for model-based engines). Returns how many were queued."""
    reserved, _, study = _reserve(db, study_id, count, worker_id, holder)
    if not reserved:
        return 0
    _draw(db, study, [], reserved)
    return len(reserved)


def draw_claimed(db: Database, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Claimed rows, with any undrawn ones (reservations whose server died) drawn now. Rows are
    of one study. Drawn rows pass through unchanged."""
    undrawn = [r for r in rows if not r["drawn"]]
    if not undrawn:
        return rows
    with db.transaction() as s:
        study = study_store.get_study_by_id(s, undrawn[0]["study_id"])
    filled = {r["id"]: r for r in _draw(db, study, undrawn, [])}
    return [filled[r["id"]] if not r["drawn"] else r for r in rows if r["drawn"] or r["id"] in filled]
