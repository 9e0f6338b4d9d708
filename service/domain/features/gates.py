"""The gates: special runs a study makes before (or between) its ordinary trials, leased to a worker
like a trial and judged by the server.

  sanity    the sanity check (issue 11): the largest model the space allows, no regularisation, on
            `samples` training examples, until it fits them; judged by tuneserve_service.diagnosis.sanity_verdict
  lr_range  the learning-rate range test (issue 12): the study's default configuration while the lr
            grows geometrically; the curve is read by tuneserve_service.craft.lr_range.suggest_lr

How a gate holds the study: `studies.gate` names the special run that is pending or running, and
the claim statements (store/trials.py, store/studies.py) hand out no ordinary trial of a study whose
gate is set, and only the special trial of that kind. The special run is a row in `trials` with
`kind` = the gate and a number below zero (-1, -2, ... in the order they were made), so it never
counts against the budget, the optimizers' history, the pruners' cohorts or the best trial. A study
asks for gates in its document (`sanity`, `lr_range_test`; sanity first) or on demand (POST
/studies/{name}/sanity, /lr-range-test).

How a gate ends (`end`, in the transaction that ended its trial):
  sanity completed  -> verdict from the stored reports and the outcome's figures: passed (the next
                       gate opens, or the ordinary trials flow), failed (the study is paused with the
                       verdict; `resume` is the user's override, recorded), or skipped when the
                       objective does not support it (the study proceeds; the advice says so)
  lr_range done     -> curve, suggestion and, when asked (`apply`), the study's lr narrowed to the
                       suggested range for every trial not yet drawn (recorded; DELETE restores)
  failed / diverged -> sanity: failed (run_failed, or judged from its figures when it diverged);
                       lr_range: failed with the reason, the space unchanged
  pruned            -> told to stop because the study was paused or stopped: the gate stays and a
                       fresh special run waits for the study to run again
  released          -> back to waiting (another worker takes it)
A special run whose lease ran out of retries fails like any trial (leases.reap_expired calls `end`).
"""
from __future__ import annotations

import logging
import math
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from tuneserve_service.craft import lr_range as lr_rules
from tuneserve_service.db.engine import Database
from tuneserve_service.db.models import Study
from tuneserve_service.diagnosis import (
    Advice, SanityConfig, SanityConfigError, SanityResult, figures_from_reports, sanity_lrs, sanity_params,
    sanity_verdict,
)
from tuneserve_service.diagnosis.curve import reason_figures
from tuneserve_service.domain.core import fidelity as fidelity_domain
from tuneserve_service.domain.core.hooks import Feature, StudyDraft, TrialEnding
from tuneserve_service.domain.core.studies import build_space, study_read
from tuneserve_service.errors import GateConflict, InvalidInput, InvalidStudyState
from tuneserve.schemas.enums import FailKind, LrRangeState, SanityState, StudyState, TrialKind, TrialState
from tuneserve.schemas.gates import LrRangeRead, LrRangeTestRequest, NarrowingRequest, SanityRead, SanityRunRequest
from tuneserve.schemas.studies import StudyRead
from tuneserve.schemas.objectives import BUILTIN_CNN, normalize_objective
from tuneserve_service.space import SearchSpace
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store

log = logging.getLogger("tuneserve.gates")

SANITY, LR_RANGE = TrialKind.SANITY.value, TrialKind.LR_RANGE.value
ORDER = (SANITY, LR_RANGE)  # the order a document's gates run in
WHAT = {SANITY: "sanity check", LR_RANGE: "lr range test"}
CURVE_POINTS = 5000  # points of a range test's curve kept on the study
LR_FEATURE = "lr_range_test"
PENDING, RUNNING = SanityState.PENDING.value, SanityState.RUNNING.value  # the same words in LrRangeState


# ---- the study document ------------------------------------------------------------------------

def supports_lr_range(objective: str, features: list[str] | None) -> bool:
    """The built-in trainer runs the range test; a user objective or program only when its study
    says it does (`objective_features: [lr_range_test]`)."""
    return normalize_objective(objective) in ("", BUILTIN_CNN) or LR_FEATURE in (features or ())


def _unsupported(objective: str) -> str:
    return (f"the objective {objective!r} does not support the lr range test: the built-in trainer does; a user "
            f"objective that follows context.lr_range (decorated with tuneserve_workers.training.objective."
            f"supports_lr_range) or a program that reads TUNESERVE_LR_RANGE_* says so in the study document "
            f"with `objective_features: [lr_range_test]`")


def _lr_request(data: Any, loc: tuple) -> LrRangeTestRequest:
    if data is True:
        return LrRangeTestRequest()
    if not isinstance(data, dict):
        raise InvalidInput(loc, "must be true or an object like {apply: true, steps: 200}")
    try:
        request = LrRangeTestRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise InvalidInput((*loc, *first["loc"]), first["msg"]) from None
    _check_ramp(request, loc)
    return request


def _check_ramp(request: LrRangeTestRequest, loc: tuple) -> None:
    if not request.start_lr < request.end_lr:
        raise InvalidInput((*loc, "end_lr"), f"must be greater than start_lr ({request.start_lr:g})")


def parse_document(body: Any, objective: str) -> dict[str, Any]:
    """The gates a study document asks for, validated (422 naming the field)."""
    sanity = None
    if body.sanity is not None and body.sanity is not False:
        try:
            sanity = SanityConfig.from_json(body.sanity)
        except SanityConfigError as err:
            raise InvalidInput(("body", "sanity", *([err.field] if err.field else [])), err.rule) from None
    lr = None
    if body.lr_range_test is not None and body.lr_range_test is not False:
        lr = _lr_request(body.lr_range_test, ("body", "lr_range_test"))
        if not supports_lr_range(objective, body.objective_features):
            raise InvalidInput(("body", "lr_range_test"), _unsupported(objective))
        if lr.apply and lr_rules.find_lr_parameter(body.parameters) is None:
            raise InvalidInput(("body", "lr_range_test", "apply"),
                               "the space has no `lr` or `learning_rate` parameter to narrow")
    return {SANITY: sanity, LR_RANGE: lr}


def open_new(session: Session, study: Study, gates: dict[str, Any]) -> None:
    """Record the document's gates as pending on a new study and open the first."""
    if gates[SANITY] is not None:
        study.sanity = _sanity_pending(gates[SANITY])
    if gates[LR_RANGE] is not None:
        study.lr_range = _lr_pending(gates[LR_RANGE].model_dump(), None)
    _open_next(session, study)


def _sanity_pending(config: SanityConfig) -> dict[str, Any]:
    return {**SanityResult.pending().to_json(), "config": config.to_json(), "trial": None, "overridden": False}


def _lr_pending(config: dict[str, Any], narrowing: dict[str, Any] | None) -> dict[str, Any]:
    return {"state": LrRangeState.PENDING.value, "message": "waiting for a worker to run the range test",
            "config": config, "trial": None, "curve": None, "suggestion": None, "parameter": None,
            "narrowing": narrowing}


# ---- opening a gate: its special run -----------------------------------------------------------

def _record(study: Study, kind: str) -> dict[str, Any] | None:
    return study.sanity if kind == SANITY else study.lr_range


def _store(study: Study, kind: str, record: dict[str, Any]) -> None:
    # A new dict, never an in-place change: the JSON column only notices assignment.
    if kind == SANITY:
        study.sanity = record
    else:
        study.lr_range = record


def _open_next(session: Session, study: Study) -> str | None:
    """Open the first pending gate (insert its special run) or, with none pending, lift the gate."""
    for kind in ORDER:
        record = _record(study, kind)
        if record is not None and record.get("state") == PENDING:
            _insert_run(session, study, kind)
            return kind
    study.gate = None
    session.flush()
    return None


def _insert_run(session: Session, study: Study, kind: str) -> None:
    number = min(trial_store.lowest_number(session, study.id) or 0, 0) - 1
    space = SearchSpace.from_json(study.space)
    if kind == SANITY:
        params = sanity_params(space, None, SanityConfig.from_json(study.sanity["config"]).max_epochs)
    else:
        params = lr_rules.default_configuration(space)
    trial_store.insert_trials(session, study.id, [number], [params], [kind], state=TrialState.WAITING, kind=kind,
                              fidelities=[fidelity_domain.trial_record(study.fidelity, params)])
    _store(study, kind, {**_record(study, kind), "trial": number})
    study.gate = kind
    session.flush()


def on_claimed(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Claimed rows with each special run's request put on it for the lease (and its gate marked
    running); ordinary rows pass through. Called in the claim's transaction."""
    for row in rows:
        kind = row.get("kind") or TrialKind.TRIAL
        if kind == TrialKind.TRIAL:
            continue
        study = study_store.lock_study_by_id(session, row["study_id"])
        record = dict(_record(study, kind) or {})
        record.update(state=RUNNING, trial=row["number"])
        if kind == SANITY:
            config = SanityConfig.from_json(record.get("config") or True)
            record["verdict"] = f"the sanity check is running (trial {row['number']})"
            row["sanity_request"] = {"samples": config.samples, "max_epochs": config.max_epochs,
                                     "lrs": sanity_lrs(SearchSpace.from_json(study.space), None, config.sweep)}
        else:
            config = record.get("config") or {}
            record["message"] = f"the range test is running (trial {row['number']})"
            row["lr_range_request"] = {k: config[k] for k in ("start_lr", "end_lr", "steps")}
        _store(study, kind, record)
        session.flush()
    return rows


# ---- ending a gate ------------------------------------------------------------------------------

def end(session: Session, row: dict[str, Any], outcome: Any = None) -> None:
    """A special run changed state (`row`, after the change): apply it to its gate. A run that is no
    longer its gate's current one (superseded by a rerun) changes nothing."""
    kind = row["kind"]
    study = study_store.lock_study_by_id(session, row["study_id"])
    record = _record(study, kind)
    if record is None or record.get("trial") != row["number"]:
        return
    state = row["state"]
    if state == TrialState.WAITING:  # released: another worker takes it
        _store(study, kind, {**record, "state": PENDING})
        session.flush()
        return
    if state == TrialState.PRUNED:  # told to stop: the study was paused or stopped
        why = f"stopped before it finished (the study is {study.state}); it runs again when the study runs"
        _store(study, kind, {**record, "state": PENDING, **({"verdict": why} if kind == SANITY else {"message": why})})
        if study.state in (StudyState.RUNNING, StudyState.PAUSED):
            _insert_run(session, study, kind)
        return
    if kind == SANITY:
        _end_sanity(session, study, row, record, outcome)
    else:
        _end_lr_range(session, study, row, record, outcome)
    _open_next(session, study)


def _end_sanity(session: Session, study: Study, row: dict[str, Any], record: dict[str, Any], outcome: Any) -> None:
    config = SanityConfig.from_json(record.get("config") or True)
    state = row["state"]
    if state == TrialState.COMPLETED and outcome is not None and not outcome.supported:
        result = SanityResult.skipped(outcome.message or "the objective does not support the sanity check")
        log.warning("study=%s sanity check skipped: %s", study.name, outcome.message)
    elif state == TrialState.COMPLETED or (state == TrialState.DIVERGED or row.get("fail_kind") == FailKind.DIVERGED):
        done: dict[str, Any] = dict(outcome.figures) if outcome is not None else {}
        if state != TrialState.COMPLETED:
            done = {**reason_figures(row.get("fail_reason")), **done, "diverged": 1.0}
        figures = figures_from_reports(trial_store.all_reports(session, row["id"]), {k: v for k, v in done.items() if v is not None})
        result = sanity_verdict(figures, config.samples, config.max_epochs)
    else:
        result = SanityResult.run_failed(row.get("fail_kind") or FailKind.ERROR.value, row.get("fail_reason") or "")
    _store(study, SANITY, {**record, **result.to_json()})
    if result.state == SanityState.FAILED and study.state == StudyState.RUNNING:
        study.state = StudyState.PAUSED  # the verdict is on the study; `resume` overrides it
    session.flush()


def _curve(outcome: Any) -> tuple[list[float], list[float]]:
    curve = outcome.curve if outcome is not None else None
    if not curve or "lr" not in curve or "loss" not in curve:
        raise lr_rules.LrRangeError("outcome.curve", "the run sent no curve (lr and loss per mini-batch)")
    lrs, losses = curve["lr"], curve["loss"]
    if len(lrs) != len(losses):
        raise lr_rules.LrRangeError("outcome.curve", f"lr has {len(lrs)} points and loss {len(losses)}")
    if any(v is None or not math.isfinite(v) or v <= 0 for v in lrs):
        raise lr_rules.LrRangeError("outcome.curve.lr", "every lr must be a positive finite number")
    return [float(v) for v in lrs], [math.nan if v is None else float(v) for v in losses]


def _lr_failed(study: Study, record: dict[str, Any], why: str, curve: dict[str, Any] | None = None) -> None:
    _store(study, LR_RANGE, {**record, "state": LrRangeState.FAILED.value, "curve": curve,
                             "message": f"{why}; the space is unchanged"})


def _end_lr_range(session: Session, study: Study, row: dict[str, Any], record: dict[str, Any], outcome: Any) -> None:
    config = record.get("config") or {}
    if row["state"] != TrialState.COMPLETED:
        last = (row.get("fail_reason") or "").strip().splitlines()
        return _lr_failed(study, record, f"the range test run {row['state']}: "
                                         f"{last[-1][:300] if last else row.get('fail_kind')}")
    if outcome is not None and not outcome.supported:
        return _lr_failed(study, record, outcome.message or "the objective does not support the range test")
    try:
        lrs, losses = _curve(outcome)
    except lr_rules.LrRangeError as err:
        return _lr_failed(study, record, f"no curve: {err.path}: {err.rule}")
    kept = {"lr": lrs[:CURVE_POINTS], "loss": [v if math.isfinite(v) else None for v in losses[:CURVE_POINTS]]}
    try:
        suggestion = lr_rules.suggest_lr(lrs, losses, rule=config.get("rule", lr_rules.DEFAULT_RULE))
    except lr_rules.LrRangeError as err:
        return _lr_failed(study, record, f"no suggestion from the curve: {err.rule}", kept)
    parameter = lr_rules.find_lr_parameter((study.config or {}).get("parameters") or {})
    message = (f"suggested lr {suggestion.lr:.3g}, range [{suggestion.low:.3g}, {suggestion.high:.3g}] "
               f"({suggestion.rule} rule, {suggestion.points} points)")
    _store(study, LR_RANGE, {**record, "state": LrRangeState.DONE.value, "curve": kept,
                             "suggestion": suggestion.to_dict(), "parameter": parameter, "message": message})
    if config.get("apply") and parameter is not None:
        try:
            _narrow(session, study, parameter, suggestion.low, suggestion.high)
            message = f"{message}; {parameter} narrowed to it"
        except InvalidInput as err:
            message = f"{message}; not narrowed: {err.message}"
        _store(study, LR_RANGE, {**study.lr_range, "message": message})
    session.flush()


# ---- on demand ----------------------------------------------------------------------------------

def _runnable(study: Study, action: str) -> None:
    if study.state not in (StudyState.RUNNING, StudyState.PAUSED):
        raise InvalidStudyState(study.name, study.state, action)
    if study.gate is not None:
        record = _record(study, study.gate) or {}
        raise GateConflict(study.name, f"its {WHAT[study.gate]} is {record.get('state', 'pending')} "
                                       f"(trial {record.get('trial')}): wait for it to end")


def request_sanity(session: Session, name: str, body: SanityRunRequest) -> Study:
    """Run the sanity check now (again): the study holds its ordinary trials back until the verdict
    (trials already running finish). A paused study runs again for the check."""
    study = study_store.get_study(session, name, lock=True)
    _runnable(study, "run the sanity check")
    base = SanityConfig.from_json((study.sanity or {}).get("config") or True)
    config = SanityConfig(samples=body.samples if body.samples is not None else base.samples,
                          max_epochs=body.max_epochs if body.max_epochs is not None else base.max_epochs,
                          sweep=body.sweep if body.sweep is not None else base.sweep)
    study.sanity = _sanity_pending(config)
    study.state = StudyState.RUNNING
    _insert_run(session, study, SANITY)
    return study


def request_lr_range(session: Session, name: str, body: LrRangeTestRequest) -> Study:
    """Run the range test now: 409 when the objective cannot, or another gate is open."""
    study = study_store.get_study(session, name, lock=True)
    _runnable(study, "run the lr range test")
    features = (study.config or {}).get("objective_features") or []
    if not supports_lr_range(study.objective, features):
        raise GateConflict(study.name, _unsupported(study.objective))
    _check_ramp(body, ("body",))
    if body.apply and lr_rules.find_lr_parameter((study.config or {}).get("parameters") or {}) is None:
        raise InvalidInput(("body", "apply"), "the space has no `lr` or `learning_rate` parameter to narrow")
    study.lr_range = _lr_pending(body.model_dump(), (study.lr_range or {}).get("narrowing"))
    study.state = StudyState.RUNNING
    _insert_run(session, study, LR_RANGE)
    return study


def on_resume(study: Study) -> None:
    """`resume` of a study the sanity check paused is the user's override: recorded, verdict kept."""
    if study.sanity and study.sanity.get("state") == SanityState.FAILED and not study.sanity.get("overridden"):
        study.sanity = {**study.sanity, "overridden": True}


# ---- narrowing the lr ---------------------------------------------------------------------------

def _set_parameters(study: Study, parameters: dict[str, Any], path: str) -> None:
    """The document's parameters block replaced, and the one dimension `path` swapped in the stored
    space (a study that manages its fidelity keeps its resolved space otherwise)."""
    fresh = build_space(parameters)
    space = SearchSpace.from_json(study.space)
    study.space = SearchSpace(tuple(fresh.dimension(d.name) if d.name == path else d
                                    for d in space.dimensions)).to_json()
    study.config = {**(study.config or {}), "parameters": parameters}


def _narrow(session: Session, study: Study, path: str, low: float, high: float) -> None:
    """Narrow `path` to [low, high] in the study's document and space; the waiting trials its engine
    drew ahead from the old range are drawn again when claimed (store.trials.undraw_waiting)."""
    record = dict(study.lr_range or {"state": LrRangeState.NOT_RUN.value, "message": "no range test; narrowed by hand",
                                     "config": {}, "trial": None, "curve": None, "suggestion": None})
    parameters = (study.config or {}).get("parameters") or {}
    try:
        if record.get("narrowing"):  # a new narrowing replaces the one in force: `before` stays the original
            parameters = lr_rules.restore_space(parameters, record["narrowing"])
            original = record["narrowing"]["before"]
        else:
            original = None
        narrowing = lr_rules.narrow_space(parameters, path, low, high)
    except lr_rules.LrRangeError as err:
        field = {"low": "low", "high": "high"}.get(err.path, "parameter")
        raise InvalidInput(("body", field), f"{err.path}: {err.rule}") from None
    done = narrowing.to_dict()
    if original is not None:
        done["before"] = original
    _set_parameters(study, narrowing.parameters, path)
    done["redrawn"] = trial_store.undraw_waiting(session, study.id)
    study.lr_range = {**record, "narrowing": done, "parameter": path}


def narrow(session: Session, name: str, body: NarrowingRequest) -> Study:
    """Narrow the lr (or `parameter`) for every trial not drawn yet: to [low, high] when given, else
    to the range test's suggested range."""
    study = study_store.get_study(session, name, lock=True)
    if study.state in (StudyState.STOPPED, StudyState.FINISHED):
        raise InvalidStudyState(name, study.state, "narrow a parameter")
    parameters = (study.config or {}).get("parameters") or {}
    path = body.parameter or (study.lr_range or {}).get("parameter") or lr_rules.find_lr_parameter(parameters)
    if path is None:
        raise InvalidInput(("body", "parameter"), "the space has no `lr` or `learning_rate` parameter: name one")
    suggestion = (study.lr_range or {}).get("suggestion") or {}
    low = body.low if body.low is not None else suggestion.get("low")
    high = body.high if body.high is not None else suggestion.get("high")
    if low is None or high is None:
        missing = "low" if low is None else "high"
        raise InvalidInput(("body", missing), "give low and high, or run a range test first (its suggestion is the default)")
    _narrow(session, study, path, float(low), float(high))
    session.flush()
    return study


def restore(session: Session, name: str) -> Study:
    """Undo the narrowing in force."""
    study = study_store.get_study(session, name, lock=True)
    if study.state in (StudyState.STOPPED, StudyState.FINISHED):
        raise InvalidStudyState(name, study.state, "restore a parameter")
    narrowing = (study.lr_range or {}).get("narrowing")
    if not narrowing:
        raise GateConflict(name, "no narrowing is in force: nothing to restore")
    try:
        parameters = lr_rules.restore_space((study.config or {}).get("parameters") or {}, narrowing)
    except lr_rules.LrRangeError as err:
        raise GateConflict(name, f"{err.path}: {err.rule}") from None
    _set_parameters(study, parameters, narrowing["path"])
    study.lr_range = {**study.lr_range, "narrowing": None, "restored": narrowing}
    session.flush()
    return study


# ---- what a study shows -------------------------------------------------------------------------

def read_fields(study: Study) -> dict[str, Any]:
    return {
        "gate": study.gate,
        "sanity": SanityRead.model_validate(study.sanity) if study.sanity else None,
        "lr_range": LrRangeRead.model_validate(study.lr_range) if study.lr_range else None,
    }


def advice(study: Study) -> list[Advice]:
    """The gates' own lines of study advice."""
    out: list[Advice] = []
    sanity = study.sanity or {}
    if sanity.get("state") == SanityState.SKIPPED:
        out.append(Advice("sanity_skipped", sanity.get("verdict", "sanity check skipped")))
    elif sanity.get("state") == SanityState.FAILED:
        if sanity.get("overridden"):
            out.append(Advice("sanity_overridden", "the sanity check failed and the study was resumed over it: "
                                                   + sanity.get("verdict", "")))
        else:
            out.append(Advice("sanity_failed", sanity.get("verdict", "the sanity check failed")))
    lr = study.lr_range or {}
    suggestion = lr.get("suggestion")
    if lr.get("state") == LrRangeState.DONE and suggestion and not lr.get("narrowing") and lr.get("parameter"):
        out.append(Advice(
            "lr_range", f"the range test suggests {lr['parameter']} {suggestion['lr']:.3g} in "
                        f"[{suggestion['low']:.3g}, {suggestion['high']:.3g}]: narrow it with `tuneserve study narrow "
                        f"{study.name}` (POST /studies/{study.name}/narrowing)",
            {"lr": suggestion["lr"], "low": suggestion["low"], "high": suggestion["high"]}, lr["parameter"]))
    elif lr.get("state") == LrRangeState.FAILED:
        out.append(Advice("lr_range_failed", lr.get("message", "the range test failed")))
    return out


# ---- the hooks and the routes' entry points ------------------------------------------------------

def _check(draft: StudyDraft) -> None:
    # The gates run once, before the first stage: later stages and refined children skip them.
    if draft.parent is None:
        draft.plans["gates"] = parse_document(draft.body, draft.objective)


def _on_create(session: Session, study: Study, draft: StudyDraft) -> None:
    plan = draft.plans.get("gates")
    if plan is not None:
        open_new(session, study, plan)


def _after_trial_ends(session: Session, row: dict[str, Any], ending: TrialEnding) -> dict[str, Any]:
    if row["kind"] != TrialKind.TRIAL:   # a special run: its gate judges it
        end(session, row, ending.outcome)
    return row


def _on_state_change(session: Session, study: Study, action: str) -> None:
    if action == "resume":
        on_resume(study)


def _read_fields(session: Session, study: Study, fields: dict[str, Any]) -> dict[str, Any]:
    return read_fields(study)


def _advice(session: Session, study: Study) -> list[Advice]:
    return advice(study)


FEATURE = Feature("gates", check_document=_check, on_create=_on_create, on_claimed=on_claimed,
                  after_trial_ends=_after_trial_ends, on_state_change=_on_state_change,
                  read_fields=_read_fields, advice=_advice)


def run_sanity(db: Database, name: str, body: SanityRunRequest) -> StudyRead:
    with db.transaction() as s:
        return study_read(s, request_sanity(s, name, body))


def run_lr_range(db: Database, name: str, body: LrRangeTestRequest) -> StudyRead:
    with db.transaction() as s:
        return study_read(s, request_lr_range(s, name, body))


def narrow_read(db: Database, name: str, body: NarrowingRequest) -> StudyRead:
    with db.transaction() as s:
        return study_read(s, narrow(s, name, body))


def restore_read(db: Database, name: str) -> StudyRead:
    with db.transaction() as s:
        return study_read(s, restore(s, name))
