"""Coarse to fine through the service: POST /studies/{name}/refine, the child studies it and the stages
make (core/lineage.py creates them), and the links between them.

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

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from tuneserve_service.craft.fidelity import Fidelity
from tuneserve_service.craft.refine import RefineError, refine, top_trials
from tuneserve_service.db.engine import Database
from tuneserve_service.db.models import Study
from tuneserve_service.domain.core import fidelity as fidelity_domain
from tuneserve_service.domain.core.hooks import Feature
from tuneserve_service.domain.core.lineage import configurations, create_child, free_name
from tuneserve_service.domain.core.studies import study_read
from tuneserve_service.errors import InvalidInput, NotEnoughTrials
from tuneserve.schemas.craft import StudyLink
from tuneserve.schemas.studies import StudyRead
from tuneserve_service.store import studies as study_store

# Keys of the parent's document a refine child does not take over.
NOT_INHERITED = ("name", "max_trials", "run_cap", "stages", "repeat_top", "warm_start_from", "fidelity", "seed",
                 "lr_range_test", "max_concurrent")
_REFINE_STREAM = 0x72656669  # "refi": child seeds' own stream of the parent's seed


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


def read_fields(session: Session, study: Study, fields: dict[str, Any] | None = None) -> dict[str, Any]:
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


def refine_read(db: Database, name: str, body: Any) -> StudyRead:
    """POST /studies/{name}/refine: the child, as read."""
    with db.transaction() as s:
        return study_read(s, refine_study(s, name, body))


FEATURE = Feature("refine", read_fields=read_fields)
