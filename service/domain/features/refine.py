"""Coarse to fine through the service: POST /studies/{name}/refine, the child studies it and the stages
make, the warm start a child gets from its parent, and the links between them.

A refine child is a study of its own (its own budget, method, fidelity and seed) whose space is
craft.refine.refine's plan around the parent's top k completed trials at the parent's top fidelity;
its `refine` record says how (top trials, changes per parameter, options); its `parent` and the
parent's `children` link them both ways. With `rerun_top` (the default) the top k configurations
are enqueued first in the child, at the child's fidelity, and counted in its budget: a practitioner
checks the candidates at the longer runs before searching around them. A configuration with repeats
counts once, at the mean of its runs (`configurations`). The parent's other
completed trials inside the child's space warm-start the child's optimizer, their values mapped
by rank onto the child's own (craft.refine.warm_start): a 2-epoch loss is not a 10-epoch loss, its
rank is. A warm start between studies of the same fidelity feeds the values as they are.

The child's fidelity: the knobs the request names over "all the data, every class, the objective's
epochs" (not inherited, as between stages), with the parent's data seed, so the child's subsets
contain the parent's; a knob the parent's `parameters` fixes as a constant stays the child's
default. The child's seed comes from the parent's through a SeedSequence.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy.orm import Session

from tuneserve_service.craft.fidelity import Fidelity, FidelityError
from tuneserve_service.craft.refine import RefineError, RefinePlan, refine, top_trials, warm_start
from tuneserve_service.craft.repeats import config_key, group_repeats
from tuneserve_service.craft.trials import TrialResult
from tuneserve_service.db.models import Study
from tuneserve_service.domain.core import fidelity as fidelity_domain
from tuneserve_service.errors import InvalidInput, NotEnoughTrials
from tuneserve_service.optimizers.base import Observation
from tuneserve.schemas.craft import StudyLink
from tuneserve.schemas.studies import StudyCreate
from tuneserve_service.space import SearchSpace
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store

# Keys of the parent's document a refine child does not take over.
NOT_INHERITED = ("name", "max_trials", "run_cap", "stages", "repeat_top", "warm_start_from", "fidelity", "seed",
                 "lr_range_test", "max_concurrent")
_REFINE_STREAM = 0x72656669  # "refi": child seeds' own stream of the parent's seed


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
            out.append(TrialResult(first.number, group.params, group.mean, "completed", first.fidelity))
        else:
            out.extend(by_number[n] for n in group.numbers)
    return sorted(out, key=lambda r: r.number)


def free_name(session: Session, base: str) -> str:
    from tuneserve_service.domain.core.studies import slug_candidates

    return next(n for n in slug_candidates(base) if study_store.find_study(session, n) is None)


def child_seed(parent_seed: int, index: int) -> int:
    return int(np.random.SeedSequence([int(parent_seed) & 0xFFFFFFFF, _REFINE_STREAM, index])
               .generate_state(1)[0] % 2**31)


def refine_study(session: Session, name: str, body: Any) -> Study:
    """POST /studies/{name}/refine (body: schemas.craft_requests.RefineRequest)."""
    parent = study_store.get_study(session, name)
    results = configurations(session, parent.id)
    completed = top_trials(results, len(results) or 1, parent.goal)
    if not completed:
        raise NotEnoughTrials(name, "no completed trial with a finite value to refine around yet")
    if body.top_k > len(completed):
        raise InvalidInput(("body", "top_k"), f"must be <= {len(completed)}, the parent's completed trials at its "
                                              f"top fidelity, got {body.top_k}")
    if body.name is not None and study_store.find_study(session, body.name) is not None:
        raise InvalidInput(("body", "name"), f"a study named {body.name!r} already exists")
    searched = {d["name"] for d in parent.space if d.get("distribution") != "constant"}
    if "classes" in searched and body.classes is None:
        raise InvalidInput(("body", "classes"), "the parent searches `classes`: give the child's (a refine child "
                                                "trains every trial on one class subset)")
    seed = (parent.fidelity or {}).get("data_seed", fidelity_domain.default_data_seed(parent.seed))
    overrides = {k: getattr(body, k) for k in ("epochs", "data_fraction", "classes") if getattr(body, k) is not None}
    fidelity = Fidelity(data_seed=seed).with_overrides(overrides)
    try:
        plan = refine(parent.config["parameters"], results, body.top_k, parent.goal, margin=body.margin,
                      min_fraction=body.min_fraction, fidelity=fidelity)
    except RefineError as err:
        raise InvalidInput(fidelity_domain.error_loc(err.path), err.rule) from None
    children = len(study_store.children_of(session, parent.id))
    doc = {k: v for k, v in (parent.config or {}).items() if k not in NOT_INHERITED}
    doc.update(
        name=body.name or free_name(session, f"{parent.name[:180]}-refined"), parameters=plan.parameters,
        max_trials=body.max_trials, fidelity=fidelity.to_dict(), seed=child_seed(parent.seed, children),
        description=f"refined from {parent.name} around its top {body.top_k} trials ({fidelity.label()})",
    )
    if body.method is not None:
        doc["method"] = body.method.value
    if body.max_concurrent is not None:
        doc["max_concurrent"] = body.max_concurrent
    return create_child(session, parent, doc, plan, rerun=body.rerun_top, stage_index=None)


def create_child(session: Session, parent: Study, document: dict[str, Any], plan: RefinePlan | None, *,
                 rerun: bool, stage_index: int | None) -> Study:
    """Create the child study `document` describes (a refine or the next stage), linked to `parent`
    and warm-started from it, with the parent's top configurations enqueued first when `rerun`."""
    from tuneserve_service.domain.core.studies import add_trials, create_study

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
    levels = {(t.fidelity or Fidelity()).level for t in parents if t.state == "completed"}
    reference = [v for v in own_values if v is not None and math.isfinite(v)] if levels - {own} else []
    return [Observation(params=p, value=v, state="completed")
            for p, v in warm_start(parents, space, reference, exclude)]


def read_fields(session: Session, study: Study) -> dict[str, Any]:
    """StudyRead's lineage fields: parent, children and the refine record."""
    parent = None
    if study.parent_id is not None:
        p = study_store.get_study_by_id(session, study.parent_id)
        parent = StudyLink(name=p.name, state=p.state, stage_index=p.stage_index,
                           relation="stage" if study.stage_index else "refine")
    children = [StudyLink(name=c.name, state=c.state, stage_index=c.stage_index,
                          relation="stage" if c.stage_index else "refine")
                for c in study_store.children_of(session, study.id)]
    return {"parent": parent, "children": children, "refine": study.refine}
