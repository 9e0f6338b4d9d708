"""Each trial's diagnosis stored with it, and the study's advice: service/diagnosis's pure rules
wired to the store.

When a trial ends (complete, prune, fail, a divergence seen by the server, a lease that ran out of
retries), `diagnose` reads its reports and stores `trials.diagnosis` in the same transaction. While
it runs, `provisional` refreshes a provisional one (label and evidence so far) at a heartbeat when
steps were reported since the last one and it is at least REFRESH_SECONDS old (the stored diagnosis
records the step it read up to and when), and
the trial's own view (GET /trials/{id}, which reads every report anyway) computes it afresh. So the
cost follows the heartbeat rate (one per lease/3 seconds per worker), not the report rate: on the
report path it cost 40% of a report's server time (0.15 of 0.37 ms on SQLite, in process) and a
quarter of the protocol's throughput (benchmarks/README.md). The last REPORTS_READ reports are read,
which bounds the cost for very long curves.

With the trial's params and the study's space (`space_info`: each numeric knob's bounds, the lr
schedules the space offers) a fault's diagnosis carries the `variant` to run; only knobs of the
space are changed, so a variant can be enqueued as it is (`try_advice`, POST /trials/{id}/try-advice:
the trial's params with the change, validated against the space, recording its parent and the
notch). `read_fields` counts how often those variants beat their parent (`advice_tried`).

`advice` reads the ended ordinary trials (the most recent ADVICE_TRIALS of them) with their stored
diagnoses and runs tuneserve_service.diagnosis.study_advice; the gates' own lines (a skipped or
overridden sanity check, a range test suggestion not applied yet) come first, by the order of the
features (tuneserve_service/domain/features/__init__.py).
"""
from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy.orm import Session

from tuneserve_service.db.engine import Database
from tuneserve_service.db.models import Study, Trial
from tuneserve_service.diagnosis import Advice, Diagnosis, TrialSummary, diagnose_trial, study_advice
from tuneserve_service.diagnosis.variant import BUILTIN_CNN_DEFAULTS
from tuneserve_service.domain.core.hooks import Feature, TrialEnding
from tuneserve_service.domain.core.studies import add_trials, validate_params
from tuneserve_service.domain.core.views import trial_read
from tuneserve_service.errors import InvalidInput, InvalidStudyState, NoVariant, TrialNotFound
from tuneserve.schemas.enums import ACTIVE_STATES, ENDED_STATES, VALUED_STATES, Goal, StudyState, TrialKind, TrialSource, TrialState
from tuneserve.schemas.gates import AdviceTriedRead, DiagnosisRead
from tuneserve.schemas.objectives import BUILTIN_CNN, normalize_objective
from tuneserve.schemas.trials import TrialRead
from tuneserve_service.space import SearchSpace, unflatten_params
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store

REPORTS_READ = 500
REFRESH_SECONDS = 5.0  # a stored provisional diagnosis younger than this is not recomputed
# A worker that reports within every third of its lease skips heartbeats; a report's answer asks for
# one when the stored provisional diagnosis is missing or older than this (wants_heartbeat).
PROVISIONAL_EVERY = 300.0
ADVICE_TRIALS = 3000


def diagnose(session: Session, row: dict[str, Any], metric: str, final_metrics: dict[str, Any] | None = None,
             known: list[tuple[int, dict[str, Any]]] | None = None,
             space_text: str | None = None, objective: str | None = None) -> dict[str, Any] | None:
    """Compute and store the diagnosis of trial `row` (a row mapping, after its latest change) and
    return it as stored (None: nothing to judge yet). `known`: every report the trial has, when the
    caller has them all (else they are read); `space_text` and `objective`: the study's space as
    stored JSON and its objective, when the caller read them (else they are read). Special runs are
    judged by their gate."""
    if (row.get("kind") or TrialKind.TRIAL) != TrialKind.TRIAL:
        return None
    if space_text is None:
        space_text, objective = study_store.study_space_text(session, row["study_id"])
    info = space_info_of(space_text, objective)
    found = diagnose_trial(
        known if known is not None else trial_store.recent_reports(session, row["id"], REPORTS_READ), state=row["state"], fail_kind=row.get("fail_kind"),
        fail_reason=row.get("fail_reason"), final_metrics=final_metrics or row.get("metrics") or None,
        metric=metric, params=row.get("params") or {}, space_info=info)
    stored = None if found is None else {**found.to_json(), "step": row.get("last_step"), "at": round(time.time(), 3)}
    if stored != row.get("diagnosis"):
        trial_store.set_diagnosis(session, row["id"], stored)
    return stored


def after_trial_ends(session: Session, row: dict[str, Any], ending: TrialEnding) -> dict[str, Any]:
    """An ordinary trial that ended gets its diagnosis (`ending.known`: see `diagnose`); returns the
    row as it now reads. Special runs are their gate's (features/gates.py)."""
    if row["kind"] != TrialKind.TRIAL or row["state"] in ACTIVE_STATES:
        return row
    space_text = ending.study.space_text if ending.study is not None else None
    objective = getattr(ending.study, "objective", None) if ending.study is not None else None
    return {**row, "diagnosis": diagnose(session, row, ending.metric, known=ending.known, space_text=space_text,
                                         objective=objective)}


def provisional(session: Session, row: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """A running trial's diagnosis, recomputed when it reported steps since the stored one and that
    one is at least REFRESH_SECONDS old (a worker that heartbeats right after every report of a
    fast loop does not pay for a diagnosis each time)."""
    stored = row.get("diagnosis")
    if row.get("last_step") is None or (stored is not None and stored.get("step") == row["last_step"]):
        return stored
    if stored is not None and time.time() - float(stored.get("at") or 0.0) < REFRESH_SECONDS:
        return stored
    return diagnose(session, row, metric)


def fresh(trial: Trial, metric: str) -> dict[str, Any] | None:
    """A running trial's provisional diagnosis from its loaded reports, written nowhere (a view)."""
    if trial.kind != TrialKind.TRIAL or trial.state != TrialState.RUNNING:
        return trial.diagnosis
    found = diagnose_trial([(r.step, r.metrics) for r in trial.reports[-REPORTS_READ:]], state=TrialState.RUNNING,
                           metric=metric, params=trial.params or {}, space_info=space_info(trial.study))
    return None if found is None else {**found.to_json(), "step": trial.last_step}


def _summaries(session: Session, study_id: int) -> list[TrialSummary]:
    rows = trial_store.ended_summaries(session, study_id, TrialKind.TRIAL, ENDED_STATES, ADVICE_TRIALS)
    out = []
    for number, state, params, value, diagnosis in rows:
        try:
            found = Diagnosis.from_json(diagnosis) if diagnosis else None
        except (KeyError, ValueError):  # written by another version: judged as if missing
            found = None
        out.append(TrialSummary(number, state, params or {}, value, found))
    return out[::-1]


def advice(session: Session, study: Study) -> list[Advice]:
    """What the ended trials say together (the gates' own lines come before these: features/gates.py)."""
    summaries = _summaries(session, study.id)
    if not summaries:
        return []
    return study_advice(summaries, SearchSpace.from_json(study.space), study.goal)


def _on_heartbeat(session: Session, row: dict[str, Any], metric: str, diagnosis: Any) -> dict[str, Any] | None:
    return provisional(session, row, metric)


def wants_heartbeat(row: dict[str, Any]) -> bool:
    """After a report: a heartbeat refreshes the provisional diagnosis when it is missing or older
    than PROVISIONAL_EVERY (so the dashboard's list of running trials stays current while the
    worker's reports keep its lease)."""
    if row.get("kind") != TrialKind.TRIAL:
        return False
    stored = row.get("diagnosis")
    return stored is None or time.time() - float(stored.get("at") or 0.0) >= PROVISIONAL_EVERY


def _trial_read(trial: Trial, read: Any) -> None:
    """A running trial's read carries its provisional diagnosis as of its latest report; a variant
    shows the params it would run."""
    if trial.state == TrialState.RUNNING:
        found = fresh(trial, trial.study.metric_name)
        read.diagnosis = DiagnosisRead.model_validate(found) if found else None
    variant = read.diagnosis.variant if read.diagnosis is not None else None
    if variant is not None:
        variant.params = unflatten_params(variant_params(trial.params or {}, variant.params_change))


# ---- variants: what the diagnosis proposes, and running it ------------------------------------

_SPACE_INFO: dict[tuple[str, str], dict[str, Any]] = {}  # by (space JSON text, objective): spaces change (narrowing)


def space_info(study: Study) -> dict[str, Any]:
    """What variant.py needs of the study's space: each bounded numeric knob's [low, high] (a
    change is clipped into them), and the lr schedules a categorical `lr_schedule` offers. Of the
    objective's defaults only the optimizer (see space_info_of): a variant changes only knobs the
    space has, so it can be enqueued as it is."""
    return space_info_of(json.dumps(study.space, sort_keys=True), study.objective)


def space_info_of(space_text: str, objective: str | None = None) -> dict[str, Any]:
    """space_info from the space's JSON text (as stored: no ORM object, no parse on a cache hit).
    For a study of the built-in trainer (`builtin:cnn`) the optimizer it runs when the space does
    not choose one (sgd) is a default: an lr's meaning depends on it (diagnosis/thresholds.py, the
    SGD rules). No other default: no notch changes the optimizer, so variants still change only
    knobs the space has."""
    objective = normalize_objective(objective)
    key = (space_text, objective)
    info = _SPACE_INFO.get(key)
    if info is None:
        space = SearchSpace.from_json(json.loads(space_text))
        bounds: dict[str, list[Any]] = {}
        info = {"bounds": bounds}
        if objective == BUILTIN_CNN:
            info["defaults"] = {"optimizer": BUILTIN_CNN_DEFAULTS["optimizer"]}
        for dim in space.dimensions:
            if dim.kind in ("int", "float"):
                found = dim.value_bounds()
                if found is not None:
                    bounds[dim.name] = [found[0], found[1]]
            elif dim.kind == "categorical" and dim.name.rsplit(".", 1)[-1] in ("lr_schedule", "lr_scheduler", "schedule"):
                info["schedules"] = [str(v).lower() for v in dim.values]
        if len(_SPACE_INFO) > 256:
            _SPACE_INFO.clear()
        _SPACE_INFO[key] = info
    return info


def variant_params(params: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """The trial's flat params with the variant's change applied (variant.py names a knob by its key in
    the flat params, so the change's keys are flat keys already)."""
    return {**params, **change}


def _range(space: SearchSpace, name: str) -> str:
    dim = next((d for d in space.dimensions if d.name == name), None)
    if dim is None:
        return f"the study's space has no parameter {name!r}"
    if dim.kind == "constant":
        return f"{name} is the constant {dim.value!r}"
    if dim.kind == "categorical":
        return f"{name} is one of {list(dim.values)!r}"
    bounds = dim.value_bounds()
    if bounds is not None:
        return f"{name} is {dim.distribution} in [{bounds[0]:g}, {bounds[1]:g}]"
    return f"{name} is {dim.distribution}"


def try_advice(db: Database, trial_id: int) -> TrialRead:
    """Enqueue the variant the trial's diagnosis proposes into its study: the trial's params with the
    change applied, validated against the study's space; the new trial records its parent and the
    notch. An explicit extra spend like a repeat (added to max_trials; a finished study runs again
    until it ends). NoVariant (409) when there is nothing to run; InvalidInput (422) naming the
    field, the diagnosis rule and the space's rule when the changed params leave the space."""
    with db.transaction() as s:
        trial = trial_store.get_trial(s, trial_id)
        if trial is None:
            raise TrialNotFound(trial_id)
        study = study_store.get_study(s, trial.study.name, lock=True)
        if trial.kind != TrialKind.TRIAL:
            raise NoVariant(trial_id, f"it is a {trial.kind} run, judged by its gate, not diagnosed")
        found = fresh(trial, study.metric_name)
        if not found:
            raise NoVariant(trial_id, "it has no diagnosis yet (nothing reported)")
        variant = found.get("variant")
        label = found.get("label")
        if not variant or not variant.get("params_change"):
            raise NoVariant(trial_id, f"its diagnosis ({label}, rule {found.get('rule') or '-'}) proposes no change "
                                      f"(healthy and insufficient runs have none, nor a data problem or a fault "
                                      f"whose knob the space does not have)")
        if study.state == StudyState.STOPPED:
            raise InvalidStudyState(study.name, study.state, "enqueue an advice variant")
        space = SearchSpace.from_json(study.space)
        change = dict(variant["params_change"])
        params = variant_params(trial.params or {}, change)
        try:
            flat = validate_params(space, unflatten_params(params))
        except InvalidInput as err:
            field = ".".join(str(p) for p in err.loc[2:]) or next(iter(change))
            raise InvalidInput(
                ("body", "variant", "params_change", *err.loc[2:]),
                f"the variant of rule {found.get('rule') or label} ({variant.get('notch') or '-'}) sets {field} = "
                f"{change.get(field, params.get(field))!r}, outside the study's space: {_range(space, field)}") from None
        (row,) = add_trials(s, study, [flat], TrialSource.ENQUEUED, extend_budget=True)
        row = trial_store.set_advice_origin(s, row["id"], trial.id, str(variant.get("notch") or label))
        if study.state == StudyState.FINISHED:
            study.state = StudyState.RUNNING  # it runs on until the variant ends
        s.flush()
        return trial_read(row, study.name)


def advice_tried(session: Session, study: Study) -> AdviceTriedRead:
    """For each advice variant that ended: did its value beat its parent's by the study's goal? A
    value beats no value (a diverged or failed parent); no value never helps."""
    tried = helped = pending = 0
    sign = 1.0 if study.goal == Goal.MINIMIZE else -1.0
    for state, value, parent_state, parent_value in trial_store.advice_pairs(session, study.id):
        if state in ACTIVE_STATES:
            pending += 1
            continue
        tried += 1
        mine = value if state in VALUED_STATES else None
        theirs = parent_value if parent_state in VALUED_STATES else None
        if mine is not None and (theirs is None or sign * mine < sign * theirs):
            helped += 1
    return AdviceTriedRead(tried=tried, helped=helped, pending=pending)


def _read_fields(session: Session, study: Study, fields: dict[str, Any]) -> dict[str, Any]:
    fields["advice_tried"] = advice_tried(session, study)
    return fields


FEATURE = Feature("diagnoses", on_heartbeat=_on_heartbeat, wants_heartbeat=wants_heartbeat,
                  after_trial_ends=after_trial_ends, advice=advice,
                  trial_read=_trial_read, read_fields=_read_fields)
