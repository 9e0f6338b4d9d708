"""Rerun any trial exactly: POST /trials/{id}/rerun enqueues the trial's configuration again, with
the same seed and the same data subset and fidelity, into its own study or another one, and the
new trial records the one it reruns. The single trial's read carries the provenance its worker
sent (core/provenance.py) and, on a rerun, `rerun_of`.

The mechanism is try-advice's (features/diagnoses.py): `add_trials` with method enqueued, added to
the budget (an explicit extra spend, like a repeat; a finished study runs again until it ends), and
the origin recorded in trials.parent_trial_id with advice_notch 'rerun' (migration 0012's columns).

What "the same" means: the params the run was handed (the trial's params with its study's
fidelity knobs, core/fidelity.lease_params), so the `seed` param (or its absence: the built-in
trainer's 0) and `data_fraction`/`classes`/`data_seed`/`epochs` are as they were. Into a study that
manages its fidelity, those knobs come from that study and must equal the trial's (else a 422 naming
the knob); every other param must lie in the target's space (else a 422 naming the param and the
space's rule).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, object_session

from tuneserve_service.craft.fidelity import RECORD_KEYS
from tuneserve_service.db.engine import Database
from tuneserve_service.db.models import Study, Trial
from tuneserve_service.domain.core import provenance
from tuneserve_service.domain.core.fidelity import lease_params
from tuneserve_service.domain.core.hooks import Feature
from tuneserve_service.domain.core.studies import add_trials, validate_params
from tuneserve_service.domain.core.views import trial_read
from tuneserve_service.errors import InvalidInput, InvalidStudyState, NotRerunnable, TrialNotFound
from tuneserve.schemas.enums import StudyState, TrialKind, TrialSource
from tuneserve.schemas.provenance import RERUN, Provenance
from tuneserve.schemas.trials import TrialRead
from tuneserve_service.space import SearchSpace, unflatten_params
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store

# The value a run has when its params leave a knob out (the built-in trainer's defaults).
_KNOB_DEFAULT = {"data_fraction": 1.0, "classes": None}


def rerun(db: Database, trial_id: int, target: str | None = None) -> TrialRead:
    """Enqueue trial `trial_id`'s run again into `target` (default: its own study); see the module doc.
    TrialNotFound / StudyNotFound (404), NotRerunnable (409: never ran, a special run),
    InvalidStudyState (409: the target is stopped), InvalidInput (422: outside the target's space
    or at another fidelity)."""
    with db.transaction() as s:
        trial = trial_store.get_trial(s, trial_id)
        if trial is None:
            raise TrialNotFound(trial_id)
        if trial.kind != TrialKind.TRIAL:
            raise NotRerunnable(trial_id, f"it is a {trial.kind} run, started by its gate, not a trial")
        if trial.started_at is None:
            raise NotRerunnable(trial_id, f"it never ran (it is {trial.state} and was never claimed): there is "
                                          f"nothing to reproduce")
        source = trial.study
        study = study_store.get_study(s, target or source.name, lock=True)
        if study.state == StudyState.STOPPED:
            raise InvalidStudyState(study.name, study.state, "enqueue a rerun (resume it, or rerun into another study)")
        flat = _params_for(trial, source, study)
        (row,) = add_trials(s, study, [flat], TrialSource.ENQUEUED, extend_budget=True)
        row = trial_store.set_advice_origin(s, row["id"], trial.id, RERUN)
        if study.state == StudyState.FINISHED:
            study.state = StudyState.RUNNING  # it runs on until the rerun ends
        s.flush()
        return trial_read(row, study.name)


def _params_for(trial: Trial, source: Study, study: Study) -> dict[str, Any]:
    """The trial's run as params of `study`: checked against its space and its fidelity."""
    ran = lease_params(trial.params or {}, source.fidelity)
    if study.fidelity is not None:
        for knob, wanted in lease_params({}, study.fidelity).items():
            had = ran.get(knob, _KNOB_DEFAULT.get(knob))
            if knob == "data_seed" and ran.get("data_fraction", 1.0) == 1.0 and not ran.get("classes"):
                continue  # the whole data set: no subset for the seed to pick
            if had != wanted:
                raise InvalidInput(("body", "study"), f"study {study.name!r} runs every trial with {knob} = {wanted!r} "
                                                      f"(its fidelity); trial {trial.id} ran with {knob} = {had!r}: "
                                                      f"rerun it into a study at its fidelity")
        ran = {k: v for k, v in ran.items() if k not in RECORD_KEYS or (k == "epochs" and "epochs" not in
                                                                           (study.fidelity or {}))}
    space = SearchSpace.from_json(study.space)
    try:
        return validate_params(space, unflatten_params(ran))
    except InvalidInput as err:
        name = ".".join(str(p) for p in err.loc[2:])
        raise InvalidInput(("body", "study"), f"trial {trial.id} does not fit study {study.name!r}: "
                                              f"{_rule(space, name, ran, err.message)}") from None


def _rule(space: SearchSpace, name: str, ran: dict[str, Any], message: str) -> str:
    dim = next((d for d in space.dimensions if d.name == name), None)
    if dim is None:
        return message  # an unknown or a missing parameter: validate_params names it and the space's
    if dim.kind == "constant":
        rule = f"the constant {dim.value!r}"
    elif dim.kind == "categorical":
        rule = f"one of {list(dim.values)!r}"
    else:
        bounds = dim.value_bounds()
        rule = f"{dim.distribution} in [{bounds[0]:g}, {bounds[1]:g}]" if bounds is not None else dim.distribution
    return f"its {name} = {ran.get(name)!r} is outside the space, where {name} is {rule}"


def _trial_read(trial: Trial, read: Any) -> None:
    """The single trial's read carries the provenance its worker sent."""
    session: Session | None = object_session(trial)
    found = provenance.read(session, trial.id) if session is not None else None
    read.provenance = Provenance.model_validate(found) if found else None


FEATURE = Feature("reruns", trial_read=_trial_read)
