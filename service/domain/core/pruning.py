"""Build the study's pruner and ask it about a trial: when the trial reports, and (for pruners
that re-check, W&B's hyperband) at each heartbeat.

`resource: data` in a study's own `pruner` block: a step then counts full-data epochs, not epochs.
Each trial's reported step s (epochs done) becomes craft.fidelity.resource_steps(its fidelity, s,
unit): s * its data fraction / unit, rounded, at least 1, with unit the smallest data fraction the
study can run (its fidelity's, or the lowest value of a searched data_fraction), stored on the
pruner config as `resource_unit` when the study is created. So the cheapest trial's epochs are steps
1, 2, 3, ..., an epoch on all the data is 1 / unit steps, and ASHA's or Hyperband's rungs (and
grace_period, max_resource) compare trials by the data they have trained on. The pruners themselves
do not change, and W&B's early_terminate keeps its own semantics (it counts reports).

A stop at a trial's last epoch (craft.fidelity.epoch_budget: its managed fidelity's epochs, or an
epochs parameter) is not given, at a report or a heartbeat: it would save nothing and rank a run
that trained its whole budget as a pruned one. Read only when a pruner says stop.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from functools import lru_cache
import json
from typing import Any, Callable

from sqlalchemy.orm import Session

from tuneserve_service.craft.fidelity import Fidelity, FidelityError, epoch_budget, resource_steps
from tuneserve_service.pruners.base import Curve, PruneVerdict, PrunerConfig
from tuneserve_service.pruners.registry import build_pruner
from tuneserve_service.space import SearchSpace
from tuneserve_service.store import trials as trial_store
from tuneserve.schemas.enums import TrialState

CONTINUE = PruneVerdict(stop=False)
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


def with_resource_unit(config: PrunerConfig, space: SearchSpace, fidelity: dict[str, Any] | None) -> PrunerConfig:
    """A `resource: data` config with its unit (see the module doc) filled in at study creation."""
    if config.options.get("resource") != "data" or "resource_unit" in config.options:
        return config
    fractions = [Fidelity.from_dict(fidelity).data_fraction] if fidelity else []
    if "data_fraction" in space.names:
        dim = space.dimension("data_fraction")
        if dim.kind == "categorical":
            fractions += [v for v in dim.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        elif dim.kind == "constant":
            fractions.append(dim.value)
        elif dim.value_bounds() is not None:
            fractions.append(dim.value_bounds()[0])
    fractions = [float(f) for f in fractions if 0 < f <= 1]
    return PrunerConfig(config.type, {**config.options, "resource_unit": min(fractions, default=1.0)})


def resource_mapper(session: Session, study: Any) -> Callable[[int, int], int] | None:
    """(trial id, reported step) -> the step the pruner sees, for `resource: data`; None otherwise."""
    options = study.pruner or {}
    if options.get("resource") != "data":
        return None
    unit = float(options.get("resource_unit", 1.0))
    fractions: dict[int, float] = {}
    for tid, record in trial_store.trial_fidelities(session, study.id).items():
        try:
            fraction = Fidelity.from_dict(record).data_fraction if record else 1.0
        except FidelityError:
            fraction = 1.0
        fractions[tid] = fraction
    return lambda tid, step: resource_steps(Fidelity(data_fraction=fractions.get(tid, 1.0)), step, unit)


def _curves(session: Session, study: Any, trial_id: int, max_step: int,
            mapped: Callable[[int, int], int] | None = None) -> tuple[Curve, list[Curve]]:
    values: dict[int, dict[int, float]] = defaultdict(dict)
    states: dict[int, str] = {}
    for tid, state, st, value in trial_store.study_curves(session, study.id, max_step):
        values[tid][st if mapped is None else mapped(tid, st)] = value
        states[tid] = state
    mine = Curve(trial_id=trial_id, values=values.pop(trial_id, {}), state=TrialState.RUNNING)
    states.pop(trial_id, None)
    return mine, [Curve(trial_id=tid, values=v, state=states[tid]) for tid, v in values.items()]


def rechecks(study: Any) -> bool:
    """Whether the study's pruner re-judges running trials at heartbeats (W&B's hyperband)."""
    pruner = _study_pruner(study)
    return pruner is not None and getattr(pruner, "rechecks", False)


def prune_verdict(session: Session, study: Any, trial_id: int, steps: list[int]) -> PruneVerdict:
    """Decide on the steps just reported, one at a time in order: ASHA and Hyperband judge a trial
    at the report that first reaches a rung, so a batch must not skip one. With `resource: data`
    the steps are mapped first (see the module doc); the decision names the reported step."""
    pruner = _study_pruner(study)
    if pruner is None:
        return CONTINUE
    mapped = resource_mapper(session, study)
    max_step = ALL_STEPS if getattr(pruner, "rechecks", False) or mapped is not None else max(steps)
    mine, others = _curves(session, study, trial_id, max_step, mapped)
    for step in sorted(set(steps)):
        seen = step if mapped is None else mapped(trial_id, step)
        decision = pruner.decide(mine.until(seen), others, study.goal)
        if decision.stop:
            return CONTINUE if _trained_out(session, trial_id, max(steps)) else replace(decision, step=step)
    return CONTINUE


def _trained_out(session: Session, trial_id: int, step: int) -> bool:
    """Whether the trial's latest `step` (epochs done) reached its epoch budget
    (craft.fidelity.epoch_budget): a stop then saves nothing and would only rank a finished run as a
    pruned one. Read only when a pruner says stop."""
    row = trial_store.get_trial_row(session, trial_id)
    budget = None if row is None else epoch_budget(row["params"] or {}, row["fidelity"])
    return budget is not None and step >= budget


def recheck_verdict(session: Session, study: Any, trial_id: int, last_step: int | None = None) -> PruneVerdict:
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
    verdict = pruner.recheck(mine, others, study.goal)
    if verdict.stop and _trained_out(session, trial_id, max(mine.values)):
        return CONTINUE
    return verdict
