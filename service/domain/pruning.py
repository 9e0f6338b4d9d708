"""Build the study's pruner and ask it about the trial that just reported."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from functools import lru_cache
import json

from sqlalchemy.orm import Session

from service.db.models import Study
from service.pruners.base import Curve, Decision, PrunerConfig
from service.pruners.registry import build_pruner
from service.store import trials as trial_store

CONTINUE = Decision(stop=False)


@lru_cache(maxsize=256)
def _pruner(config_json: str):
    return build_pruner(PrunerConfig.from_json(json.loads(config_json)))


def prune_decision(session: Session, study: Study, trial_id: int, steps: list[int]) -> Decision:
    """Decide on the steps just reported, one at a time in order: ASHA and Hyperband judge a trial
    at the report that first reaches a rung, so a batch must not skip one."""
    if not study.pruner or study.pruner.get("type", "none") == "none":
        return CONTINUE
    pruner = _pruner(json.dumps(study.pruner, sort_keys=True))
    values: dict[int, dict[int, float]] = defaultdict(dict)
    states: dict[int, str] = {}
    for tid, state, st, value in trial_store.study_curves(session, study.id, max(steps)):
        values[tid][st] = value
        states[tid] = state
    mine = Curve(trial_id=trial_id, values=values.pop(trial_id, {}), state="running")
    states.pop(trial_id, None)
    others = [Curve(trial_id=tid, values=v, state=states[tid]) for tid, v in values.items()]
    for step in sorted(set(steps)):
        decision = pruner.decide(mine.until(step), others, study.goal)
        if decision.stop:
            return replace(decision, step=step)
    return CONTINUE
