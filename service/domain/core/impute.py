"""W&B's `metric.impute` and `metric.impute_while_running`: the history the model-based engines
learn from, with values filled in for trials that have no result, as W&B's bayes search does.

Without either key the optimizers' own rule holds (_history.build_history): failed and diverged
trials rank below every result, pruned trials keep their last value. With them, as in W&B's
bayes_search.py (its failed, crashed and killed runs are tuneserve's failed, diverged and pruned
trials):
  - impute: worst    the worst value any ended trial reported (W&B's default when it is given);
            latest   the trial's last reported value;
            best     the trial's best reported value;
    a trial that reported nothing keeps the optimizers' rule (W&B uses the number 0.0 there,
    which for a loss would rank a crash as the best result);
  - impute_while_running: latest | best | worst: a running trial that has reported learns as a
    result, at its best value so far (W&B takes a running run's best value whatever the strategy
    names, the strategy only when the run has none), instead of being a pending point; one that
    has not reported stays pending. "false" (W&B's default) leaves running trials pending.
Only studies that ask for it pay for reading every report here.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from sqlalchemy.orm import Session

from tuneserve_service.optimizers.base import Observation
from tuneserve.schemas.enums import ACTIVE_STATES, TrialState
from tuneserve_service.store import trials as trial_store

ALL_STEPS = 2**31 - 1
IMPUTED_STATES = (TrialState.FAILED, TrialState.DIVERGED, TrialState.PRUNED)


def _metric(study: Any) -> dict[str, Any]:
    return (study.config or {}).get("metric") or {}


def wanted(study: Any) -> bool:
    metric = _metric(study)
    return metric.get("impute") is not None or metric.get("impute_while_running") not in (None, "false")


def observations(session: Session, study: Any) -> tuple[list[Observation], list[dict[str, Any]]]:
    """The study's history as the optimizers take it (finished trials, pending params), imputed."""
    metric = _metric(study)
    strategy, while_running = metric.get("impute"), metric.get("impute_while_running")
    better = min if study.goal == "minimize" else max
    worse = max if study.goal == "minimize" else min

    curves: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for trial_id, _state, step, value in trial_store.study_curves(session, study.id, ALL_STEPS):
        if value is not None and math.isfinite(value):
            curves[trial_id].append((step, value))
    trials, _ = trial_store.list_trials(session, study.id, state=None, limit=ALL_STEPS, offset=0)

    def reported(trial) -> list[float]:
        values = [v for _, v in sorted(curves.get(trial.id, []))]
        if trial.value is not None and math.isfinite(trial.value):
            values.append(trial.value)
        return values

    ended = [t for t in trials if t.state not in ACTIVE_STATES]
    ended_values = [v for t in ended for v in reported(t)]
    worst = worse(ended_values) if ended_values else None

    completed: list[Observation] = []
    pending: list[dict[str, Any]] = []
    for t in trials:
        values = reported(t)
        if t.state in ACTIVE_STATES:
            if while_running not in (None, "false") and t.state == TrialState.RUNNING and values:
                completed.append(Observation(params=t.params, value=better(values), state=TrialState.COMPLETED))
            else:
                pending.append(t.params)
        elif t.state == TrialState.COMPLETED or strategy is None:
            value = t.value if t.state in (TrialState.COMPLETED, TrialState.PRUNED) else None
            completed.append(Observation(params=t.params, value=value, state=t.state))
        else:
            value = {"worst": worst, "latest": values[-1] if values else None,
                     "best": better(values) if values else None}[strategy]
            completed.append(Observation(params=t.params, value=value, state=TrialState.COMPLETED if value is not None
                                         else t.state))
    return completed, pending
