"""Suggestions drawn ahead for model-based engines, so that a claim never waits on a model fit.

A botorch suggestion fits a GP and optimises an acquisition (about a second on a loaded 2-core
box); a tpe suggestion over a history of a thousand trials takes 5-25 ms, most of a claim's time.
After a claim (or `complete` with claim_next, or `ask`) has been answered, the route runs `top_up`
in the background (FastAPI BackgroundTasks: after the response is sent): it draws the study's queue
back up to DRAW_AHEAD waiting trials, with the history as it is then. The next claims take those
rows with one UPDATE (store.trials.claim_waiting), as random search's drawn-ahead trials, instead
of a reservation, a fit and a fill. tpe draws ahead only once the study has MIN_HISTORY["tpe"]
trials: below that a suggestion is cheap, and one result more or less changes the model most.

Why this is safe:
  - a drawn-ahead suggestion is a trial row in state waiting: claim_waiting hands each row to one
    worker only (FOR UPDATE SKIP LOCKED / an IMMEDIATE transaction), so none is served twice;
  - waiting rows are pending for every later fit (ACTIVE_STATES), so the next draws avoid them
    (botorch: X_pending of qLogNEI; tpe: the constant liar and its duplicate guard) and none is
    drawn twice either;
  - a top-up reserves its rows first (suggest.draw_queued), so a server killed half-way loses
    nothing: the reservation's lease runs out and the next claim draws the row (draw_claimed);
  - one top-up per study at a time in a process (a second one finds the first running and
    leaves), and a study with max_concurrent is left alone: its admission cap counts running
    trials, and queued rows would only move the wait elsewhere;
  - a drawn-ahead row that waited while STALE_RESULTS or more of the study's trials ended is
    stale: the next top-up puts it back to undrawn (store.trials.undraw_stale), and the claim that
    takes it draws its params then, from the history as it is (suggest.draw_claimed).

What it costs: a drawn-ahead suggestion was drawn before the results that came in since (fewer
than STALE_RESULTS). Only engines in ENGINES draw ahead; random search over continuous spaces has
its own (cheaper) queue in suggest.py.
"""
from __future__ import annotations

import logging
import threading

from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core.suggest import draw_queued
from tuneserve.schemas.enums import Method, StudyState
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store

log = logging.getLogger("tuneserve.suggest")

ENGINES = frozenset({Method.BOTORCH.value, Method.TPE.value})
DRAW_AHEAD = 2
# Trials a study must have (its next trial number) before its engine draws ahead.
MIN_HISTORY = {Method.BOTORCH.value: 0, Method.TPE.value: 100}
# A drawn-ahead row is stale once this many of the study's trials ended after it was drawn.
STALE_RESULTS = 2 * DRAW_AHEAD

_busy: set[int] = set()
_busy_lock = threading.Lock()


def wanted(db: Database, study_name: str) -> tuple[int, int]:
    """(study id, how many more trials to draw ahead now); 0 for a study that does not draw ahead.
    Stale drawn-ahead rows are put back to undrawn first (they count as drawn no more)."""
    with db.transaction() as s:
        study = study_store.study_header_by_name(s, study_name)
        if (study.method not in ENGINES or study.max_concurrent is not None or study.state != StudyState.RUNNING
                or study.gate is not None or study.next_number < MIN_HISTORY[study.method]):
            return study.id, 0
        trial_store.undraw_stale(s, study.id, study.method, STALE_RESULTS)
        return study.id, max(0, DRAW_AHEAD - trial_store.count_waiting(s, study.id, drawn_only=True))


def top_up(db: Database, study_name: str, worker_id: str, holder: str | None = None) -> int:
    """Draw `study_name`'s queue back up to DRAW_AHEAD waiting trials; returns how many were drawn.
    Never raises: a failed top-up only means the next claim draws for itself."""
    try:
        study_id, count = wanted(db, study_name)
        if count == 0:
            return 0
        with _busy_lock:
            if study_id in _busy:
                return 0
            _busy.add(study_id)
        try:
            return draw_queued(db, study_id, count, worker_id, holder)
        finally:
            with _busy_lock:
                _busy.discard(study_id)
    except Exception:  # noqa: BLE001 - runs after the response: nobody to tell but the log
        log.warning("drawing ahead for study %s failed", study_name, exc_info=True)
        return 0
