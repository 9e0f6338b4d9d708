"""Study rules: validate a definition into a stored study, its name and slug, its lifecycle,
enqueue, the target that finishes it, and the read view.

A study document is a W&B sweep configuration read as W&B reads it (schemas.studies for the keys,
space.parse for `parameters`, pruners.registry for `early_terminate`); the rules here are the
ones that need the whole document, each with W&B's reason where W&B has the same rule.

The features' keys of the document (stages, repeat_top, sanity, lr_range_test), what they do once
the study exists or finishes, and their fields of the read come in through the hook list
(hooks.py); nothing here names a feature.
"""
from __future__ import annotations

import math
import re
import secrets
from typing import Any

from slugify import slugify
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneserve_service.db.engine import Database
from tuneserve_service.db.models import Study
from tuneserve_service.craft.fidelity import RECORD_KEYS
from tuneserve_service.craft.repeats import config_key
from tuneserve_service.domain.core import fidelity as fidelity_domain
from tuneserve_service.domain.core import hooks, pruning, runners
from tuneserve_service.domain.core.hooks import StudyDraft
from tuneserve_service.domain.core.views import trial_read, utc
from tuneserve_service.errors import BudgetExhausted, InvalidInput, InvalidStudyState, StudyExists
from tuneserve_service.optimizers.registry import grid_size, resolve_engine, validate_method
from tuneserve_service.pruners.base import PrunerConfig
from tuneserve_service.pruners.registry import parse_pruner, pruner_from_wandb
from tuneserve.schemas.enums import Method, StudyMethod, StudyState, TrialState
from tuneserve.schemas.gates import AdviceRead
from tuneserve.schemas.studies import NAME_PATTERN, MetricRead, MetricSpec, StudyCreate, StudyRead, TrialCounts
from tuneserve.schemas.trials import TrialPage, TrialRead
from tuneserve_service.space import SearchSpace, flatten_params, parse_parameters, split_name
from tuneserve_service.space.parse import SpaceError
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store

DEFAULT_METRIC = MetricSpec(name="val_loss", goal="minimize")
# A slug leaves room for a "-NNN" suffix inside the 200 characters of a study name.
SLUG_MAX = 190
# Suffixes tried (-2, -3, ...) before a random one, when a display name's slug is taken.
SLUG_TRIES = 20
SEED = "seed"  # the parameter a repeat sets (service/domain/features/repeats.py)


def _space_error(err: SpaceError) -> InvalidInput:
    path = tuple(p for p in split_name(err.path) if p) if err.path else ()
    return InvalidInput(("body", "parameters", *path), str(err))


def build_space(parameters: dict[str, Any]) -> SearchSpace:
    try:
        return parse_parameters(parameters)
    except SpaceError as err:
        raise _space_error(err) from None


def _pruner_config(body: StudyCreate, space: SearchSpace, fidelity: dict[str, Any] | None) -> PrunerConfig:
    if body.pruner is not None and body.early_terminate is not None:
        raise InvalidInput(("body", "pruner"), "give either pruner or early_terminate, not both")
    field = "pruner" if body.pruner is not None else "early_terminate"
    try:
        if body.pruner is not None:
            config = parse_pruner(body.pruner, "pruner")
        else:
            config = pruner_from_wandb(body.early_terminate)
    except (ValueError, TypeError) as err:
        raise InvalidInput(("body", field), str(err)) from None
    return pruning.with_resource_unit(config, space, fidelity)


def _weighted_specs(block: dict[str, Any], parents: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the specs in a `parameters` block that give `probabilities`."""
    out = []
    for key, spec in block.items():
        if not isinstance(spec, dict):
            continue
        if isinstance(spec.get("parameters"), dict):
            out.extend(_weighted_specs(spec["parameters"], (*parents, key)))
        elif "probabilities" in spec:
            out.append((*parents, key))
    return out


def check_document(body: StudyCreate, space: SearchSpace) -> None:
    """The rules of a sweep document that span several keys (W&B's cfg.py and its engines)."""
    method = body.method
    if body.metric is None and not body.metrics and method == StudyMethod.BAYES:
        raise InvalidInput(("body", "metric"), "method bayes needs a `metric` to model (W&B refuses bayes "
                                               "without one): give metric.name and metric.goal")
    if body.metric is None and not body.metrics and body.early_terminate is not None:
        raise InvalidInput(("body", "metric"), "early_terminate ranks runs by the sweep's metric (W&B refuses "
                                               "early termination without one): give metric.name and metric.goal")
    if method == StudyMethod.BAYES and all(d.distribution == "constant" for d in space.dimensions):
        raise InvalidInput(("body", "parameters"), "method bayes needs at least one parameter to search "
                                                   "(W&B's rule); these are all constants")
    if method == StudyMethod.GRID:
        for path in _weighted_specs(body.parameters):
            raise InvalidInput(("body", "parameters", *path),
                               "grid search cannot weight values: W&B refuses `probabilities` with method grid "
                               "(repeated values are fine: the grid runs each value once)")
    if body.scheduler is not None:
        if body.early_terminate is not None:
            raise InvalidInput(("body", "early_terminate"), "`early_terminate` cannot be used together with "
                               "`scheduler` (W&B: early termination is then the custom scheduler's job)")
        if body.controller is not None and body.controller.type == "local":
            raise InvalidInput(("body", "controller"), "`controller: {type: local}` cannot be used together "
                               "with `scheduler` (W&B's rule)")


# --- names -----------------------------------------------------------------------------------

def is_url_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None


def _generated_name() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "sweep-" + "".join(secrets.choice(alphabet) for _ in range(8))


def slug_candidates(base: str):
    yield base
    for n in range(2, SLUG_TRIES + 2):
        yield f"{base}-{n}"
    while True:
        yield f"{base}-{secrets.token_hex(3)}"


def _insert_named(session: Session, name: str | None, fields: dict[str, Any]) -> Study:
    """Insert the study under its URL name. A URL-safe `name` is the URL name itself and must be
    free (StudyExists otherwise, as before display names existed). Any other text is a display
    name: its slug gets the first free suffix (-2, -3, ...). No name: a generated one."""
    if name is not None and name.strip() and is_url_name(name):
        if study_store.find_study(session, name) is not None:
            raise StudyExists(name)
        try:
            with session.begin_nested():
                return study_store.insert_study(session, name=name, display_name=name, **fields)
        except IntegrityError:   # created by a concurrent request since the check
            raise StudyExists(name) from None
    generated = name is None or not name.strip()
    base = _generated_name() if generated else (slugify(name, max_length=SLUG_MAX) or _generated_name())
    for slug in slug_candidates(base):
        if study_store.find_study(session, slug) is not None:
            continue
        try:
            with session.begin_nested():
                return study_store.insert_study(session, name=slug, display_name=slug if generated else name,
                                                **fields)
        except IntegrityError:
            continue
    raise AssertionError("unreachable: the candidates never run out")


def create_study(session: Session, body: StudyCreate, *, parent: Study | None = None, stage_index: int | None = None,
                 refine_record: dict[str, Any] | None = None) -> Study:
    """Validate a document into a stored study. `parent`, `stage_index` and `refine_record` are set
    for the children the craft makes (core/lineage.py). The features parse their keys of the
    document and may shape the draft (hooks.parse_document, check_document) and act once the row
    exists (hooks.on_create)."""
    space = build_space(body.parameters)
    check_document(body, space)
    draft = StudyDraft(body=body, space=space, parent=parent, stage_index=stage_index, max_trials=body.max_trials)
    hooks.parse_document(draft)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31 - 1)
    fidelity = None
    if body.fidelity is not None or draft.manages_fidelity or parent is not None:
        managed, space = fidelity_domain.resolve(space, body.fidelity, seed=seed, stage=draft.fidelity_overrides)
        fidelity = managed.to_dict()
        draft.space = space
    method = draft.method or body.method.value
    engine = resolve_engine(method, space)
    try:
        validate_method(engine, space)
    except ValueError as err:   # SpaceError too: grid over a dimension with infinitely many values
        raise InvalidInput(("body", "method"), str(err)) from None
    pruner = _pruner_config(body, space, fidelity)
    objectives = body.objective_list()
    metric = body.metric or (MetricSpec(name=objectives[0].name, goal=objectives[0].goal) if body.metrics
                             else DEFAULT_METRIC)
    max_trials = draft.max_trials
    if engine == Method.GRID:
        size = grid_size(space)
        max_trials = size if max_trials is None else min(max_trials, size)
    if body.warm_start_from is not None and parent is None:
        _check_warm_start(session, body.warm_start_from, space)
    draft.objective = runners.study_objective(body)
    hooks.check_document(draft)
    config = body.model_dump(mode="json", exclude_none=True, by_alias=False)
    config["metric"] = metric.model_dump(mode="json", exclude_none=True)
    if body.metrics or body.constraints:   # the ordered objectives (core/objectives.py reads them)
        config["objectives"] = [o.model_dump(mode="json") for o in objectives] or [
            {"name": metric.name, "goal": metric.goal.value}]
    study = _insert_named(session, body.name, dict(
        description=body.description,
        metric_name=metric.name,
        goal=metric.goal,
        metric_target=metric.target,
        method=engine,
        space=space.to_json(),
        pruner=pruner.to_dict(),
        config=config,
        max_trials=max_trials,
        max_concurrent=body.max_concurrent,
        seed=seed,
        lease_seconds=body.lease_seconds,
        max_retries=body.max_retries,
        warm_start_from=body.warm_start_from,
        objective=draft.objective,
        state=StudyState.RUNNING,
        next_number=0,
        parent_id=parent.id if parent is not None else None,
        stage_index=draft.stage_index,
        fidelity=fidelity,
        refine=refine_record,
    ))
    hooks.on_create(session, study, draft)
    return study


def target_reached(goal: str, target: float | None, value: float | None) -> bool:
    """Whether `value` reaches `target` in the study's direction (<= for minimize, >= for maximize)."""
    if target is None or value is None or not math.isfinite(value):
        return False
    return value <= target if goal == "minimize" else value >= target


def finish_on_target(session: Session, study_id: int, value: float | None, trial_number: int | None = None,
                     header: Any = None) -> bool:
    """W&B's `metric.target`: a trial that completes at or beyond the target finishes its study
    (running or paused; trials still running are then told to stop at their next report or
    heartbeat, like any finished study's). Returns whether it did. `header`: the study's goal,
    metric_target and name as the caller read them (no read of the study unless the target is hit)."""
    study = header if header is not None else study_store.get_study_by_id(session, study_id)
    if not target_reached(study.goal, study.metric_target, value):
        return False
    study = study_store.get_study(session, study.name, lock=True)
    if study.state not in (StudyState.RUNNING, StudyState.PAUSED):
        return False
    study.target_reached_by = trial_number
    study_store.set_study_state(session, study, StudyState.FINISHED)
    return True


def _check_warm_start(session: Session, name: str, space: SearchSpace) -> None:
    source = study_store.find_study(session, name)
    if source is None:
        raise InvalidInput(("body", "warm_start_from"), f"study {name!r} not found")
    source_space = SearchSpace.from_json(source.space)
    ours = {d.name: d.kind for d in space.dimensions if d.kind != "constant"}
    theirs = {d.name: d.kind for d in source_space.dimensions if d.kind != "constant"}
    if ours != theirs:
        raise InvalidInput(
            ("body", "warm_start_from"),
            f"study {name!r} has an incompatible space: its parameters {sorted(theirs)} "
            f"must match these {sorted(ours)} with the same kinds",
        )


_TRANSITIONS = {
    "pause": ({StudyState.RUNNING}, StudyState.PAUSED),
    "resume": ({StudyState.PAUSED}, StudyState.RUNNING),
    "stop": ({StudyState.RUNNING, StudyState.PAUSED}, StudyState.STOPPED),
}


def settle(session: Session, study_id: int, budget: tuple[int | None, int | None] | None = None) -> bool:
    """Finish the study when its budget is spent and nothing is active (store.studies.finish_if_done,
    which locks the study row), then let the features act on it in the same transaction, under that
    lock (hooks.on_finished: stages move on, repeats run). Called wherever a trial of a study ends
    (complete, fail, prune, release, divergence, the lease reaper, a grid running out, resume).
    `budget`: (max_trials, next_number) as the statement that ended the trial read them; when they
    say the budget is not spent, nothing is read. A reservation of the last numbers that commits
    after that statement, and whose trials all end before this transaction commits, would leave the
    study unfinished: the lease reaper's sweep finishes such studies (leases.reap_expired).
    Returns whether it finished."""
    if budget is not None and budget[1] is not None and (budget[0] is None or budget[1] < budget[0]):
        return False
    if not study_store.finish_if_done(session, study_id):
        return False
    hooks.on_finished(session, study_store.get_study_by_id(session, study_id))
    return True


def change_state(session: Session, name: str, action: str) -> Study:
    """Pause, resume or stop a study. A study that serves its claims from another (a staged study
    whose named stage has finished: hooks.serve) is steered through the one that hands out its
    trials now, and that one is answered."""
    study = study_store.get_study(session, name, lock=True)
    if study.state == StudyState.FINISHED:
        active = hooks.serve(session, study_store.study_header(session, study.id))
        if active.id != study.id:
            study = study_store.get_study(session, active.name, lock=True)
    allowed, target = _TRANSITIONS[action]
    if study.state not in allowed:
        raise InvalidStudyState(name, study.state, action)
    study_store.set_study_state(session, study, target)
    hooks.on_state_change(session, study, action)
    if action == "resume":
        settle(session, study.id)
    return study


def validate_params(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """A user-given configuration checked against the space; constants filled in. Flat result.
    A mapping is a nested block unless the space has a parameter of that name (whose value may
    itself be a mapping). A `seed` the space does not have is taken too (a non-negative integer):
    it is how a configuration is re-run with another seed (service/domain/features/repeats.py)."""
    flat = flatten_params(params, leaves=space.names)
    dims = {d.name: d for d in space.dimensions}
    for key in flat:
        if key not in dims and key != SEED:
            raise InvalidInput(("body", "params", *split_name(key)), f"unknown parameter {key!r}; the space has {sorted(dims)}")
    out = {}
    if SEED in flat and SEED not in dims:
        seed = flat[SEED]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise InvalidInput(("body", "params", SEED), f"seed must be an integer in [0, 2^31), got {seed!r}")
        out[SEED] = seed
    for name, dim in dims.items():
        if name not in flat:
            if dim.kind == "constant":
                out[name] = dim.from_internal(0.0)
                continue
            raise InvalidInput(("body", "params", *split_name(name)), f"parameter {name!r} is required")
        if not dim.contains(flat[name]):
            raise InvalidInput(
                ("body", "params", *split_name(name)),
                f"{flat[name]!r} is outside the space of {name!r} ({dim.distribution})",
            )
        out[name] = flat[name]
    return out


def enqueue(session: Session, name: str, params: dict[str, Any]) -> dict[str, Any]:
    study = study_store.get_study(session, name, lock=True)
    if study.state in (StudyState.STOPPED, StudyState.FINISHED):
        raise InvalidStudyState(name, study.state, "enqueue a trial")
    space = SearchSpace.from_json(study.space)
    if study.fidelity is not None:
        knobs = sorted(k for k in flatten_params(params, leaves=space.names) if k in RECORD_KEYS)
        if knobs:
            raise InvalidInput(("body", "params", knobs[0]),
                               f"{knobs[0]!r} is this study's fidelity ({fidelity_domain.label(study.fidelity)}), "
                               f"set for every trial: it is not a parameter")
    flat = validate_params(space, params)
    # Enqueued configurations count toward the budget like suggested ones; they ignore max_concurrent
    # because they only wait in the queue.
    if study.max_trials is not None and study.next_number >= study.max_trials:
        raise BudgetExhausted(name, f"the budget of {study.max_trials} trials is used up")
    (row,) = add_trials(session, study, [flat], "enqueued")
    return row


def add_trials(session: Session, study: Study, params_list: list[dict[str, Any]], method: str, *,
               extend_budget: bool = False) -> list[dict[str, Any]]:
    """Insert waiting trials with these (flat, checked) params under the next numbers, each with
    its fidelity record and configuration key; `extend_budget` adds them to max_trials (repeats:
    an extra spend). The caller holds the study row's lock."""
    count = len(params_list)
    if not count:
        return []
    if extend_budget and study.max_trials is not None:
        study.max_trials += count
    first = study.next_number
    study.next_number = first + count
    session.flush()
    return trial_store.insert_trials(
        session, study.id, range(first, first + count), params_list, [method] * count, state=TrialState.WAITING,
        fidelities=[fidelity_domain.trial_record(study.fidelity, p) for p in params_list],
        config_keys=[config_key(p) for p in params_list])


def best_trial(session: Session, study: Study):
    """The best completed trial at the study's top fidelity (service/domain/core/fidelity.py)."""
    levels = None
    if study.fidelity is None and fidelity_domain.searches_data(study.space):
        levels = fidelity_domain.top_level_records(trial_store.completed_fidelities(session, study.id))
    return trial_store.best_trial(session, study.id, study.goal, levels)


def study_read(session: Session, study: Study) -> StudyRead:
    """The study as read: the core's fields, then each feature's (hooks.read_fields, in order)."""
    counts = study_store.count_trials_by_state(session, study.id)
    config = study.config or {}
    metric = config.get("metric") or {}
    fields: dict[str, Any] = dict(
        id=study.id,
        name=study.name,
        display_name=study.display_name or study.name,
        description=study.description,
        # Older studies stored no requested method apart from the engine: they are the same.
        method=config.get("method", study.method),
        engine=study.method,
        metric=MetricRead(name=study.metric_name, goal=study.goal, target=study.metric_target,
                          impute=metric.get("impute"), impute_while_running=metric.get("impute_while_running")),
        state=study.state,
        parameters=config.get("parameters", {}),
        max_trials=study.max_trials,
        max_concurrent=study.max_concurrent,
        seed=study.seed,
        lease_seconds=study.lease_seconds,
        max_retries=study.max_retries,
        pruner=study.pruner,
        warm_start_from=study.warm_start_from,
        objective=study.objective,
        **runners.read_fields(session, study, hooks.aliases(session, study)),
        project=config.get("project"),
        entity=config.get("entity"),
        target_reached_by=study.target_reached_by,
        trials_created=study.next_number,
        counts=TrialCounts(**counts),
        best_trial=best_trial(session, study),  # a row until the features had their say
        stage_index=study.stage_index,
        fidelity=study.fidelity,
        fidelity_label=fidelity_domain.label(study.fidelity),
        repeats=study.repeats or [],
        created_at=utc(study.created_at),
        updated_at=utc(study.updated_at),
    )
    hooks.read_fields(session, study, fields)
    best = fields["best_trial"]
    fields["best_trial"] = trial_read(best, study.name) if best is not None else None
    fields["advice"] = [AdviceRead(**a.to_json()) for a in hooks.advice(session, study)]
    return StudyRead(**fields)


# --- what the routes call: one transaction each (see tuneserve_service/domain/__init__.py) -----------

def create(db: Database, body: StudyCreate) -> StudyRead:
    with db.transaction() as s:
        return study_read(s, create_study(s, body))


def read(db: Database, name: str) -> StudyRead:
    with db.transaction() as s:
        return study_read(s, study_store.get_study(s, name))


def list_reads(db: Database, state: StudyState | None = None) -> list[StudyRead]:
    with db.transaction() as s:
        return [study_read(s, st) for st in study_store.list_studies(s, state)]


def delete(db: Database, name: str) -> None:
    with db.transaction() as s:
        study_store.delete_study(s, study_store.get_study(s, name))


def change(db: Database, name: str, action: str) -> StudyRead:
    with db.transaction() as s:
        return study_read(s, change_state(s, name, action))


def enqueue_read(db: Database, name: str, params: dict[str, Any]) -> TrialRead:
    with db.transaction() as s:
        return trial_read(enqueue(s, name, params), name)


def trial_page(db: Database, name: str, state: TrialState | None, limit: int, offset: int) -> TrialPage:
    with db.transaction() as s:
        study = study_store.get_study(s, name)
        items, total = trial_store.list_trials(s, study.id, state=state, limit=limit, offset=offset)
        return TrialPage(items=[trial_read(t, name) for t in items], total=total, limit=limit, offset=offset)
