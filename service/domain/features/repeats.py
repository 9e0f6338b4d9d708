"""Repeats and the noise-aware best through the service: POST /studies/{name}/repeat, a document's or
stage's `repeat_top` (run once the search budget is spent), and the best configuration of a study.

A repeat is a trial with the same params as a configuration and a new `seed` param (seeds from
SeedSequence([study seed, the configuration's first trial number, i]), craft.repeats.plan_repeats),
method "repeat", and the configuration's key (trials.config_key, recorded on every trial), so
repeats group with their original. Repeats are an explicit extra spend: the trials they add are
added to max_trials (the search budget is unchanged) and next_number, and a study that had finished
runs again until they end (a stopped study refuses). The requests are recorded on the study
(studies.repeats: source "api" or "document", top_k, seeds, the trial numbers).

The best, once any configuration has repeats: craft.repeats ranks configurations by their mean
penalised by one standard error (sigma pooled over the study), failures last, and says how sure
that is (P(best beats the runner-up)); `best_trial` is then the best run of that configuration.
Only trials at the study's top fidelity are compared (service/domain/core/fidelity.py).
"""
from __future__ import annotations

import math
from typing import Any

from sqlalchemy.orm import Session

from tuneserve_service.craft.repeats import RepeatError, best_configuration, group_repeats, rank_configurations
from tuneserve_service.craft.stages import RepeatSpec, StageError, parse_stages
from tuneserve_service.db.engine import Database
from tuneserve_service.db.models import Study, Trial
from tuneserve_service.domain.core import fidelity as fidelity_domain
from tuneserve_service.domain.core.hooks import Feature, StudyDraft
from tuneserve_service.domain.core.repeat_trials import enqueue, requested, top_results
from tuneserve_service.domain.core.studies import SEED
from tuneserve_service.domain.core.views import trial_read
from tuneserve_service.errors import InvalidInput, InvalidStudyState, NotEnoughTrials
from tuneserve.schemas.craft import BestConfiguration, RepeatGroupRead
from tuneserve.schemas.craft_requests import RepeatResponse
from tuneserve.schemas.enums import StudyState
from tuneserve_service.space import unflatten_params
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store


def parse_document(body: Any) -> RepeatSpec | None:
    """The document's top-level `repeat_top`, validated (422 naming the path), or None."""
    if body.repeat_top is None:
        return None
    if body.max_trials is None:
        raise InvalidInput(("body", "repeat_top"), "repeat_top runs once the budget is spent: give max_trials "
                                                   "(or run_cap)")
    try:
        (stage,) = parse_stages([{"trials": body.max_trials, "repeat_top": body.repeat_top}])
    except StageError as err:
        raise InvalidInput(fidelity_domain.error_loc(err.path.replace("stages[0].", "")), err.rule) from None
    return stage.repeat_top


def document_spec(study: Study) -> RepeatSpec | None:
    raw = (study.config or {}).get("repeat_top")
    if raw is None or study.max_trials is None:
        return None
    (stage,) = parse_stages([{"trials": study.max_trials, "repeat_top": raw}])
    return stage.repeat_top


def repeat(session: Session, name: str, top_k: int, seeds: int) -> tuple[Study, list[dict[str, Any]], list[RepeatGroupRead]]:
    """POST /studies/{name}/repeat."""
    study = study_store.get_study(session, name, lock=True)
    if study.state == StudyState.STOPPED:
        raise InvalidStudyState(name, study.state, "repeat its configurations (it was stopped)")
    results = top_results(session, study)
    ranked = rank_configurations(group_repeats(results), study.goal)
    if not ranked:
        raise NotEnoughTrials(name, "no configuration has a completed run to repeat yet")
    if top_k > len(ranked):
        raise InvalidInput(("body", "top_k"), f"must be <= {len(ranked)}, the configurations with a completed run "
                                              f"at the study's top fidelity, got {top_k}")
    try:
        rows = enqueue(session, study, top_k, seeds, "api")
    except RepeatError as err:
        raise InvalidInput(("body", err.path), err.rule) from None
    return study, rows, [group_read(r.group) for r in ranked[:top_k]]


def group_read(group) -> RepeatGroupRead:
    return RepeatGroupRead(key=group.key, params=unflatten_params(group.params), trials=list(group.numbers), count=group.count,
                           mean=group.mean, std=group.std, failures=group.failures)


def best_fields(session: Session, study: Study, best: Trial | None) -> dict[str, Any]:
    """StudyRead's best_trial, best_configuration and repeat_groups. Without repeats the best
    configuration is the best trial's, from a single run; with repeats, the noise-aware one."""
    if not trial_store.has_repeats(session, study.id):
        if best is None:
            return {"best_trial": None, "best_configuration": None, "repeat_groups": []}
        statement = (f"best {best.value:.4g} from a single run (trial {best.number}); no configuration has "
                     f"repeats yet: repeat the top configurations to know how sure this is")
        config = BestConfiguration(
            key=best.config_key or "", params=unflatten_params(_configuration(best.params)), mean=best.value, std=None, count=1,
            trials=[best.number], failures=0, runner_up=None, p_best_over_runner_up=None, noise_sigma=None,
            noise_df=0, statement=statement, fidelity=best.fidelity)
        return {"best_trial": best, "best_configuration": config, "repeat_groups": []}
    results = top_results(session, study)
    groups = group_repeats(results)
    statement = best_configuration(groups, study.goal)
    repeated = [group_read(g) for g in groups if len(g.numbers) > 1]
    if statement.best is None:
        return {"best_trial": best, "best_configuration": None, "repeat_groups": repeated}
    g = statement.best
    runs = trial_store.best_trial(session, study.id, study.goal, numbers=list(g.numbers))
    fidelity = next((r.fidelity.to_dict() for r in results if r.number == g.numbers[0] and r.fidelity), None)
    config = BestConfiguration(
        key=g.key, params=unflatten_params(g.params), mean=g.mean, std=g.std, count=g.count, trials=list(g.numbers),
        failures=g.failures, runner_up=group_read(statement.runner_up) if statement.runner_up else None,
        p_best_over_runner_up=_finite(statement.probability), noise_sigma=_finite(statement.sigma),
        noise_df=statement.df, statement=statement.statement, fidelity=fidelity)
    return {"best_trial": runs or best, "best_configuration": config, "repeat_groups": repeated}


def _configuration(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != SEED}


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


# ---- the hooks ---------------------------------------------------------------------------------

def _parse(draft: StudyDraft) -> None:
    parse_document(draft.body)


def on_finished(session: Session, study: Study) -> None:
    """The document's `repeat_top` runs once the budget is spent (a staged study's stages say it
    in their own `repeat_top`: features/stages.py)."""
    if study.stage_index is not None:
        return
    spec = document_spec(study)
    if spec is not None and not requested(study, "document"):
        enqueue(session, study, spec.top_k, spec.seeds, source="document")


def read_fields(session: Session, study: Study, fields: dict[str, Any]) -> dict[str, Any]:
    return best_fields(session, study, fields["best_trial"])


def repeat_read(db: Database, name: str, top_k: int, seeds: int) -> RepeatResponse:
    """POST /studies/{name}/repeat: the trials enqueued and the configurations they repeat."""
    with db.transaction() as s:
        study, rows, groups = repeat(s, name, top_k, seeds)
        return RepeatResponse(trials=[trial_read(r, name) for r in rows], configurations=groups,
                              max_trials=study.max_trials)


FEATURE = Feature("repeats", parse_document=_parse, on_finished=on_finished, read_fields=read_fields)
