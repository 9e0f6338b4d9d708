"""Build the study's pruner and ask it about a trial: when the trial reports, and (for pruners
that re-check, W&B's hyperband) at each heartbeat."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from functools import lru_cache
import json
from typing import Any

from sqlalchemy.orm import Session

from service.pruners.base import Curve, Decision, PrunerConfig
from service.pruners.registry import build_pruner
from service.store import trials as trial_store

CONTINUE = Decision(stop=False)
# Every report of every trial: W&B's bands count reports, so a peer's band value may sit at a
# step past the judged trial's latest one when reports skip steps.
ALL_STEPS = 2**31 - 1


@lru_cache(maxsize=256)
def _pruner(config_json: str):
    return build_pruner(PrunerConfig.from_json(json.loads(config_json)))


def _study_pruner(study: Any):
    if not study.pruner or study.pruner.get("type", "none") == "none":
        return None
    return _pruner(json.dumps(study.pruner, sort_keys=True))


def _curves(session: Session, study: Any, trial_id: int, max_step: int) -> tuple[Curve, list[Curve]]:
    values: dict[int, dict[int, float]] = defaultdict(dict)
    states: dict[int, str] = {}
    for tid, state, st, value in trial_store.study_curves(session, study.id, max_step):
        values[tid][st] = value
        states[tid] = state
    mine = Curve(trial_id=trial_id, values=values.pop(trial_id, {}), state="running")
    states.pop(trial_id, None)
    return mine, [Curve(trial_id=tid, values=v, state=states[tid]) for tid, v in values.items()]


def prune_decision(session: Session, study: Any, trial_id: int, steps: list[int]) -> Decision:
    """Decide on the steps just reported, one at a time in order: ASHA and Hyperband judge a trial
    at the report that first reaches a rung, so a batch must not skip one."""
    pruner = _study_pruner(study)
    if pruner is None:
        return CONTINUE
    max_step = ALL_STEPS if getattr(pruner, "rechecks", False) else max(steps)
    mine, others = _curves(session, study, trial_id, max_step)
    for step in sorted(set(steps)):
        decision = pruner.decide(mine.until(step), others, study.goal)
        if decision.stop:
            return replace(decision, step=step)
    return CONTINUE


def recheck_decision(session: Session, study: Any, trial_id: int, last_step: int | None = None) -> Decision:
    """At a heartbeat: W&B's hyperband judges every running run again as other runs reach its
    latest band (its controller's periodic pass); the other pruners judge only at reports.
    `last_step` (the trial's highest reported step, when known) spares the read of every curve
    while the trial cannot have reached a band yet (a band counts reports, and steps start at 1)."""
    pruner = _study_pruner(study)
    if pruner is None or not getattr(pruner, "rechecks", False):
        return CONTINUE
    if last_step is not None and last_step < pruner.bands[0]:
        return CONTINUE
    mine, others = _curves(session, study, trial_id, ALL_STEPS)
    if not mine.values:
        return CONTINUE
    return pruner.recheck(mine, others, study.goal)
