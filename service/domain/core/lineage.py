"""Studies made from studies: the child a refine or the next stage creates, linked to its parent and
warm-started from it, and the trials of a study as the craft's planners read them (the repeats of a
configuration folded into one result).

The features that make children (features/refine.py, features/stages.py) and the suggest flow (a
warm-start study's history) share these; the rules of the warm start are in craft.refine.warm_start
(values mapped by rank when the two studies ran at different fidelities: a 2-epoch loss is not a
10-epoch loss, its rank is).
"""
from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from tuneserve_service.craft.fidelity import Fidelity, FidelityError
from tuneserve_service.craft.refine import RefinePlan, warm_start
from tuneserve_service.craft.repeats import config_key, group_repeats
from tuneserve_service.craft.trials import TrialResult
from tuneserve_service.db.models import Study
from tuneserve_service.domain.core import objectives
from tuneserve_service.domain.core.studies import add_trials, create_study, slug_candidates
from tuneserve_service.errors import InvalidInput
from tuneserve_service.optimizers.base import Observation
from tuneserve.schemas.enums import TrialState
from tuneserve.schemas.studies import StudyCreate
from tuneserve_service.space import SearchSpace
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store


def trial_results(session: Session, study_id: int) -> list[TrialResult]:
    """The study's drawn trials as the craft's planners read them."""
    return [_result(r) for r in trial_store.trial_results(session, study_id)]


def _result(row) -> TrialResult:
    fidelity = None
    if row.fidelity:
        try:
            fidelity = Fidelity.from_dict(row.fidelity)
        except FidelityError:
            fidelity = None
    return TrialResult(row.number, dict(row.params), row.value, row.state, fidelity)


def configurations(session: Session, study_id: int) -> list[TrialResult]:
    """The study's trials with the repeats of a configuration folded into one result: its first
    trial's number and params, the mean of its completed runs (craft.repeats.group_repeats). What a
    refine ranks (its top k are k configurations, not one lucky seed and its repeats) and what a
    warm start feeds (one observation per configuration)."""
    rows = trial_store.trial_results(session, study_id)
    results = [_result(r) for r in rows]
    keys = {r.config_key if r.config_key is not None else config_key(t.params) for r, t in zip(rows, results)}
    if len(keys) == len(results):   # no configuration ran twice (stored keys): nothing to fold
        return results
    by_number = {r.number: r for r in results}
    out = []
    for group in group_repeats(results):
        first = by_number[group.numbers[0]]
        if group.count:
            out.append(TrialResult(first.number, group.params, group.mean, TrialState.COMPLETED, first.fidelity))
        else:
            out.extend(by_number[n] for n in group.numbers)
    return sorted(out, key=lambda r: r.number)


def free_name(session: Session, base: str) -> str:
    return next(n for n in slug_candidates(base) if study_store.find_study(session, n) is None)


def create_child(session: Session, parent: Study, document: dict[str, Any], plan: RefinePlan | None, *,
                 rerun: bool, stage_index: int | None) -> Study:
    """Create the child study `document` describes (a refine or the next stage), linked to `parent`
    and warm-started from it, with the parent's top configurations enqueued first when `rerun`."""
    if objectives.spec_of(parent.config, parent.metric_name, parent.goal) is not None:
        raise InvalidInput(("body",), f"study {parent.name!r} has several objectives or constraints: a refined "
                           f"child or a next stage is warm-started from its trials' single values, which such a "
                           f"study does not rank by; create the follow-up study yourself (with its own `metrics`)")
    document = {**document, "warm_start_from": parent.name}
    try:
        body = StudyCreate.model_validate(document)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise InvalidInput(("body", *first["loc"]), f"the child study's document is invalid: {first['msg']}") from None
    record = {"parent": parent.name, "relation": "stage" if stage_index is not None else "refine",
              **(plan.to_dict() if plan is not None else {}), "rerun": []}
    child = create_study(session, body, parent=parent, stage_index=stage_index, refine_record=record)
    if rerun and plan is not None:
        space = SearchSpace.from_json(child.space)
        by_number = {t.number: t for t in configurations(session, parent.id)}
        configs, numbers = [], []
        for number in plan.top:
            params = _in_space(by_number[number].params, space)
            if params is not None and params not in configs:
                configs.append(params)
                numbers.append(number)
        if child.max_trials is not None:
            configs, numbers = configs[:child.max_trials], numbers[:child.max_trials]
        add_trials(session, child, configs, "enqueued")
        child.refine = {**record, "rerun": numbers}
        session.flush()
    return child


def _in_space(params: dict[str, Any], space: SearchSpace) -> dict[str, Any] | None:
    """A parent's params cut to the child's parameters (constants set to the child's), or None."""
    out = {k: v for k, v in params.items() if k in space.names}
    for dim in space.dimensions:
        if dim.kind == "constant":
            out[dim.name] = dim.from_internal(0.0)
    return out if set(out) == set(space.names) and space.contains(out) else None


def warm_start_observations(session: Session, study: Any, space: SearchSpace,
                            own_values: list[float]) -> list[Observation]:
    """The warm-start study's completed trials inside this study's space, for its optimizer; values
    mapped by rank onto `own_values` (this study's completed values) when the two studies' trials
    are at different fidelities, as they are (see the module doc)."""
    if not study.warm_start_from:
        return []
    source = study_store.find_study(session, study.warm_start_from)
    if source is None:
        return []
    parents = configurations(session, source.id)
    record = study.refine or {}
    exclude = record.get("rerun", []) if record.get("parent") == source.name else []
    own = Fidelity.from_dict(study.fidelity).level if study.fidelity else Fidelity().level
    levels = {(t.fidelity or Fidelity()).level for t in parents if t.state == TrialState.COMPLETED}
    reference = [v for v in own_values if v is not None and math.isfinite(v)] if levels - {own} else []
    return [Observation(params=p, value=v, state=TrialState.COMPLETED)
            for p, v in warm_start(parents, space, reference, exclude)]
