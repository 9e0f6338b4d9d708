"""Repeats of a study's top configurations: planned (craft.repeats.plan_repeats: seeds from
SeedSequence([study seed, the configuration's first trial number, i])), enqueued as trials with the
same params and a new `seed` param (method "repeat", the configuration's key), and recorded on the
study (studies.repeats: source "api" or "document", top_k, seeds, the trial numbers). Repeats are an
explicit extra spend: they are added to max_trials and a study that had finished runs again until
they end. The mechanism behind POST /studies/{name}/repeat and a document's or a stage's
`repeat_top` (features/repeats.py, features/stages.py).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tuneserve_service.craft.repeats import group_repeats, plan_repeats, rank_configurations
from tuneserve_service.craft.trials import TrialResult
from tuneserve_service.db.models import Study
from tuneserve_service.domain.core import fidelity as fidelity_domain
from tuneserve_service.domain.core.lineage import trial_results
from tuneserve_service.domain.core.studies import SEED, add_trials
from tuneserve.schemas.enums import StudyState


def requested(study: Study, source: str) -> bool:
    return any(r.get("source") == source for r in study.repeats or [])


def added(study: Study, source: str | None = None) -> int:
    """Trials the study's repeat requests (of `source`, or all) added."""
    return sum(len(r.get("trials", [])) for r in study.repeats or [] if source in (None, r.get("source")))


def top_results(session: Session, study: Study) -> list[TrialResult]:
    return fidelity_domain.at_top_level(trial_results(session, study.id))


def enqueue(session: Session, study: Study, top_k: int, seeds: int, source: str) -> list[dict[str, Any]]:
    """Plan and enqueue the repeats of the top_k configurations (the study row is locked by the
    caller or here); returns the rows. The request is recorded even when nothing was enqueued."""
    results = top_results(session, study)
    groups = group_repeats(results)
    used = [r.params[SEED] for r in results if isinstance(r.params.get(SEED), int)]
    plan = plan_repeats(groups, top_k, seeds, study.seed, study.goal, SEED, used)
    rows = add_trials(session, study, plan, "repeat", extend_budget=True) if plan else []
    ranked = rank_configurations(groups, study.goal)[:top_k]
    study.repeats = [*(study.repeats or []), {
        "source": source, "top_k": top_k, "seeds": seeds, "trials": [r["number"] for r in rows],
        "configurations": [r.group.key for r in ranked]}]
    if rows and study.state == StudyState.FINISHED:
        study.state = StudyState.RUNNING   # it runs on until its repeats end
    session.flush()
    return rows
