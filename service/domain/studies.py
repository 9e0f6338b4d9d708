"""Study rules: validate a definition into a stored study, its lifecycle, enqueue, and the read view."""
from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.orm import Session

from service.db.models import Study
from service.domain import runners
from service.domain.views import trial_read, utc
from service.errors import BudgetExhausted, InvalidInput, InvalidStudyState, StudyExists
from service.optimizers.registry import METHODS, grid_size, validate_method
from service.pruners.base import PrunerConfig
from service.pruners.registry import parse_pruner, pruner_from_wandb
from service.schemas.studies import MetricSpec, StudyCreate, StudyRead, TrialCounts
from service.space import SearchSpace, flatten_params, parse_parameters
from service.space.parse import SpaceError
from service.store import studies as study_store
from service.store import trials as trial_store


def _space_error(err: SpaceError) -> InvalidInput:
    path = tuple(p for p in err.path.split(".") if p)
    return InvalidInput(("body", "parameters", *path), str(err))


def build_space(parameters: dict[str, Any]) -> SearchSpace:
    try:
        return parse_parameters(parameters)
    except SpaceError as err:
        raise _space_error(err) from None


def _pruner_config(body: StudyCreate) -> PrunerConfig:
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
    return config


def create_study(session: Session, body: StudyCreate) -> Study:
    if body.method not in METHODS:
        raise InvalidInput(("body", "method"), f"unknown method {body.method!r}; valid methods: {', '.join(METHODS)}")
    space = build_space(body.parameters)
    try:
        validate_method(body.method, space)
    except ValueError as err:
        raise InvalidInput(("body", "method"), str(err)) from None
    pruner = _pruner_config(body)
    max_trials = body.max_trials
    if body.method == "grid":
        size = grid_size(space)
        max_trials = size if max_trials is None else min(max_trials, size)
    if body.warm_start_from is not None:
        _check_warm_start(session, body.warm_start_from, space)
    if study_store.find_study(session, body.name) is not None:
        raise StudyExists(body.name)
    return study_store.insert_study(
        session,
        name=body.name,
        description=body.description,
        metric_name=body.metric.name,
        goal=body.metric.goal,
        method=body.method,
        space=space.to_json(),
        pruner=pruner.to_dict(),
        config=body.model_dump(mode="json", exclude_none=True),
        max_trials=max_trials,
        max_concurrent=body.max_concurrent,
        seed=body.seed if body.seed is not None else secrets.randbelow(2**31 - 1),
        lease_seconds=body.lease_seconds,
        max_retries=body.max_retries,
        warm_start_from=body.warm_start_from,
        objective=runners.study_objective(body),
        state="running",
        next_number=0,
    )


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
    "pause": ({"running"}, "paused"),
    "resume": ({"paused"}, "running"),
    "stop": ({"running", "paused"}, "stopped"),
}


def change_state(session: Session, name: str, action: str) -> Study:
    study = study_store.get_study(session, name, lock=True)
    allowed, target = _TRANSITIONS[action]
    if study.state not in allowed:
        raise InvalidStudyState(name, study.state, action)
    study_store.set_study_state(session, study, target)
    if action == "resume":
        study_store.finish_if_done(session, study.id)
    return study


def validate_params(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """A user-given configuration checked against the space; constants filled in. Flat result."""
    flat = flatten_params(params)
    dims = {d.name: d for d in space.dimensions}
    for key in flat:
        if key not in dims:
            raise InvalidInput(("body", "params", *key.split(".")), f"unknown parameter {key!r}; the space has {sorted(dims)}")
    out = {}
    for name, dim in dims.items():
        if name not in flat:
            if dim.kind == "constant":
                out[name] = dim.value
                continue
            raise InvalidInput(("body", "params", *name.split(".")), f"parameter {name!r} is required")
        if not dim.contains(flat[name]):
            raise InvalidInput(
                ("body", "params", *name.split(".")),
                f"{flat[name]!r} is outside the space of {name!r} ({dim.distribution})",
            )
        out[name] = flat[name]
    return out


def enqueue(session: Session, name: str, params: dict[str, Any]) -> dict[str, Any]:
    study = study_store.get_study(session, name, lock=True)
    if study.state in ("stopped", "finished"):
        raise InvalidStudyState(name, study.state, "enqueue a trial")
    flat = validate_params(SearchSpace.from_json(study.space), params)
    # Enqueued configurations count toward the budget like suggested ones; they ignore max_concurrent
    # because they only wait in the queue.
    if study.max_trials is not None and study.next_number >= study.max_trials:
        raise BudgetExhausted(name, f"the budget of {study.max_trials} trials is used up")
    number = study.next_number
    study.next_number = number + 1
    session.flush()
    (row,) = trial_store.insert_trials(session, study.id, [number], [flat], ["enqueued"], state="waiting")
    return row


def study_read(session: Session, study: Study) -> StudyRead:
    counts = study_store.count_trials_by_state(session, study.id)
    best = trial_store.best_trial(session, study.id, study.goal)
    return StudyRead(
        id=study.id,
        name=study.name,
        description=study.description,
        method=study.method,
        metric=MetricSpec(name=study.metric_name, goal=study.goal),
        state=study.state,
        parameters=study.config.get("parameters", {}),
        max_trials=study.max_trials,
        max_concurrent=study.max_concurrent,
        seed=study.seed,
        lease_seconds=study.lease_seconds,
        max_retries=study.max_retries,
        pruner=study.pruner,
        warm_start_from=study.warm_start_from,
        objective=study.objective,
        **runners.read_fields(session, study),
        trials_created=study.next_number,
        counts=TrialCounts(**counts),
        best_trial=trial_read(best, study.name) if best is not None else None,
        created_at=utc(study.created_at),
        updated_at=utc(study.updated_at),
    )
