"""Staged studies: a document's `stages` validated, the move from one stage to the next when a stage's
last trial ends, the stage a worker serving the staged study is handed trials from, and the timeline.

Each stage is a study (craft/stages.py): stage 0 is the study the document creates (stage_index 0,
no parent), stage i a child of stage i-1 (parent_id, stage_index i) made from the document by
craft.stages.next_stage_document: refined around stage i-1's top trials when it says `refine`,
warm-started from it, with its own fidelity and budget, and its top k re-run first at the new
fidelity unless `refine.rerun_top` is false.

When a stage starts: the core's `settle` (core/studies.py), called wherever a trial of a study ends
(complete, fail, prune, release, divergence, the lease reaper, a grid running out, resume), marks
the study finished once its budget is spent and nothing is active (store.studies.finish_if_done,
which locks the study row), and then calls `on_finished` here (the hook), which in the same
transaction under that lock applies craft.stages.transition: enqueue the
stage's `repeat_top` repeats (the study runs on until they end), or create the next stage, or
nothing (the last stage ended). The unique index on (parent_id, stage_index) makes a second
creation fail rather than run a stage twice. A study that reached its metric.target, or was
stopped, does not move on.

Workers: a claim or ask that names a staged study is served from its active stage (`follow`, the
`serve` hook): the named study if it still hands out trials, else the latest stage that exists
after it. So `tuneserve worker
--study NAME` follows a staged study from its first stage to its last without being restarted.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneserve_service.craft.fidelity import Fidelity
from tuneserve_service.craft.stages import (
    Stage, StageCounts, StageError, next_stage_document, parse_stages, stage_fidelity, transition,
)
from tuneserve_service.db.models import Study
from tuneserve_service.domain.core import fidelity as fidelity_domain
from tuneserve_service.domain.core import repeat_trials
from tuneserve_service.domain.core.hooks import Feature, StudyDraft
from tuneserve_service.domain.core.lineage import configurations, create_child, free_name
from tuneserve_service.errors import InvalidInput, StudyExists
from tuneserve.schemas.craft import StageRead
from tuneserve.schemas.enums import ENDED_STATES, StudyMethod, StudyState
from tuneserve_service.space import parse_parameters
from tuneserve_service.space.parse import SpaceError
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store

log = logging.getLogger("tuneserve.stages")
METHODS = tuple(m.value for m in StudyMethod)


def parse_document(body: Any) -> tuple[Stage, ...] | None:
    """The document's stages, validated (422 naming the path), or None when it has none."""
    if body.stages is None:
        return None
    try:
        stages = parse_stages(body.stages, methods=METHODS)
    except StageError as err:
        raise InvalidInput(fidelity_domain.error_loc(err.path), err.rule) from None
    if body.max_trials is not None:
        raise InvalidInput(("body", "max_trials"), "a staged study's budget is each stage's `trials`: "
                                                   "drop max_trials (or run_cap)")
    if body.repeat_top is not None:
        raise InvalidInput(("body", "repeat_top"), "put `repeat_top` in the stage that should repeat its top "
                                                   "configurations (stages[i].repeat_top)")
    for stage in stages:
        if stage.method == StudyMethod.BAYES and body.metric is None:
            raise InvalidInput(("body", "stages", stage.index, "method"),
                               "method bayes needs a `metric` to model: give metric.name and metric.goal")
    return stages


def root_and_stages(session: Session, study: Study) -> tuple[Study, tuple[Stage, ...]] | None:
    """The staged study `study` belongs to (its stage 0) and its stages; None when it is not staged
    (or its earlier stages were deleted)."""
    if study.stage_index is None:
        return None
    root = study
    for _ in range(study.stage_index):
        if root.parent_id is None:
            return None
        root = study_store.get_study_by_id(session, root.parent_id)
    raw = (root.config or {}).get("stages")
    if root.stage_index != 0 or raw is None:
        return None
    return root, parse_stages(raw, methods=METHODS)


def base_fidelity(root: Study) -> Fidelity:
    """The fidelity every stage starts from: the root document's constants and `fidelity`, with the
    root's data seed (so every stage cuts its subsets from the same seed, and they nest)."""
    config = root.config or {}
    try:
        space = parse_parameters(config.get("parameters") or {})
        fidelity, _ = fidelity_domain.resolve(space, config.get("fidelity"), seed=root.seed)
    except (InvalidInput, SpaceError):
        fidelity = Fidelity()
    seed = (root.fidelity or {}).get("data_seed", fidelity.data_seed)
    return Fidelity(fidelity.epochs, fidelity.data_fraction, fidelity.classes, seed)


def follow(session: Session, header):
    """The study that hands out trials for a claim naming `header`'s study: itself, or when it has
    finished, the latest later stage that exists (headers: store.studies.study_header rows)."""
    while header.stage_index is not None and header.state == StudyState.FINISHED:
        nxt = study_store.stage_child(session, header.id, header.stage_index + 1)
        if nxt is None:
            break
        header = nxt
    return header


def served_as(session: Session, study: Study) -> tuple[str, ...]:
    """The earlier stages' names, which a worker's --study may give to be served this stage."""
    names, current = [], study
    for _ in range(study.stage_index or 0):
        if current.parent_id is None:
            break
        current = study_store.get_study_by_id(session, current.parent_id)
        names.append(current.name)
    return tuple(names)


# --- the transition -------------------------------------------------------------------------------

def on_finished(session: Session, study: Study) -> None:
    """A stage finished (core.studies.settle, under the study row's lock): apply
    craft.stages.transition (see the module doc)."""
    staged = root_and_stages(session, study)
    if staged is None:
        return
    root, stages = staged
    for _ in range(2):  # a repeat that enqueues nothing is recorded, then the rule is applied again
        step = transition(stages, study.stage_index, _counts(session, study))
        if step.action == "repeat":
            spec = stages[study.stage_index].repeat_top
            if repeat_trials.enqueue(session, study, spec.top_k, spec.seeds, source="document"):
                return
            continue
        if step.action == "next":
            _start_stage(session, root, stages, study, step.next_index)
        return


def _counts(session: Session, study: Study) -> StageCounts:
    counts = study_store.count_trials_by_state(session, study.id)
    added = repeat_trials.added(study)
    from_document = repeat_trials.added(study, "document") if repeat_trials.requested(study, "document") else None
    budget = None if study.max_trials is None else study.max_trials - added
    return StageCounts(ended=sum(counts[s] for s in ENDED_STATES), active=0, budget=budget, repeats=from_document)


def _start_stage(session: Session, root: Study, stages: tuple[Stage, ...], previous: Study, index: int) -> None:
    if study_store.stage_child(session, previous.id, index) is not None:
        return  # another server ended the stage and created its successor first
    results = configurations(session, previous.id)
    document = dict(previous.config or {})
    name = free_name(session, f"{root.name[:180]}-stage-{index}")
    try:
        doc, plan = next_stage_document(document, stages, index, results, parent_name=previous.name,
                                        child_name=name, seed=root.seed, goal=previous.goal,
                                        base=base_fidelity(root))
    except StageError as err:
        previous.stage_note = f"stage {index} could not start: {err.rule}"
        session.flush()
        log.warning("study %s: %s", previous.name, previous.stage_note)
        return
    doc.pop("parent", None)
    doc.pop("stage_index", None)
    rerun = plan is not None and stages[index].refine.rerun_top
    try:
        with session.begin_nested():
            create_child(session, previous, doc, plan, rerun=rerun, stage_index=index)
    except (IntegrityError, StudyExists):  # the unique (parent_id, stage_index): created meanwhile elsewhere
        log.info("study %s: stage %d exists already", previous.name, index)
    except InvalidInput as err:
        previous.stage_note = f"stage {index} could not start: {err.message}"
        session.flush()
        log.warning("study %s: %s", previous.name, previous.stage_note)


# --- the timeline ---------------------------------------------------------------------------------

def read_fields(session: Session, study: Study, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """StudyRead's stage fields: stage_index, stages (the timeline), active_stage, stage_note."""
    out: dict[str, Any] = {"stage_index": study.stage_index, "stage_note": study.stage_note}
    staged = root_and_stages(session, study)
    if staged is None:
        return out
    root, stages = staged
    base = base_fidelity(root)
    timeline, current, active = [], root, None
    for stage in stages:
        if current is not None and current.stage_index != stage.index:
            current = None
        fidelity = Fidelity.from_dict(current.fidelity) if current is not None and current.fidelity \
            else stage_fidelity(stages, stage.index, base)
        item = StageRead(index=stage.index, trials=stage.trials, fidelity=fidelity.to_dict(),
                         fidelity_label=fidelity.label(), method=stage.method,
                         refine=stage.to_dict().get("refine"), repeat_top=stage.to_dict().get("repeat_top"))
        if current is not None:
            counts = study_store.count_trials_by_state(session, current.id)
            best = trial_store.best_trial(session, current.id, current.goal)
            item = item.model_copy(update=dict(
                study=current.name, state=current.state, total=counts["total"],
                ended=sum(counts[s] for s in ENDED_STATES), best_value=best.value if best is not None else None))
            active = current.name  # the last stage that exists: where trials come from now
            nxt = study_store.stage_child(session, current.id, stage.index + 1)
            current = study_store.get_study_by_id(session, nxt.id) if nxt is not None else None
        timeline.append(item)
    out.update(stages=timeline, active_stage=active,
               stage_note=study.stage_note or next((s.stage_note for s in _chain(session, root) if s.stage_note), None))
    return out


def _chain(session: Session, root: Study) -> list[Study]:
    chain, current = [root], root
    while current.stage_index is not None:
        nxt = study_store.stage_child(session, current.id, current.stage_index + 1)
        if nxt is None:
            break
        current = study_store.get_study_by_id(session, nxt.id)
        chain.append(current)
    return chain


# --- the hooks ------------------------------------------------------------------------------------

def _parse(draft: StudyDraft) -> None:
    """A staged document: stage 0's method, budget and fidelity are the study's."""
    stages = parse_document(draft.body)
    if stages is None:
        return
    draft.plans["stages"] = stages
    if draft.stage_index is None:
        draft.stage_index = 0
    draft.manages_fidelity = True
    draft.fidelity_overrides = stages[0].overrides
    if stages[0].method:
        draft.method = stages[0].method
    draft.max_trials = stages[0].trials


FEATURE = Feature("stages", parse_document=_parse, serve=follow, on_finished=on_finished,
                  aliases=served_as, read_fields=read_fields)
