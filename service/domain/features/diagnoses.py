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

`advice` reads the ended ordinary trials (the most recent ADVICE_TRIALS of them) with their stored
diagnoses and runs tuneserve_service.diagnosis.study_advice; the gates' own lines (a skipped or
overridden sanity check, a range test suggestion not applied yet) come first, by the order of the
features (tuneserve_service/domain/features/__init__.py).
"""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from tuneserve_service.db.models import Study, Trial
from tuneserve_service.diagnosis import Advice, Diagnosis, TrialSummary, diagnose_trial, study_advice
from tuneserve_service.domain.core.hooks import Feature, TrialEnding
from tuneserve.schemas.enums import ACTIVE_STATES, ENDED_STATES, TrialKind, TrialState
from tuneserve.schemas.gates import DiagnosisRead
from tuneserve_service.space import SearchSpace
from tuneserve_service.store import trials as trial_store

REPORTS_READ = 500
REFRESH_SECONDS = 5.0  # a stored provisional diagnosis younger than this is not recomputed
ADVICE_TRIALS = 3000


def diagnose(session: Session, row: dict[str, Any], metric: str, final_metrics: dict[str, Any] | None = None,
             known: list[tuple[int, dict[str, Any]]] | None = None) -> dict[str, Any] | None:
    """Compute and store the diagnosis of trial `row` (a row mapping, after its latest change) and
    return it as stored (None: nothing to judge yet). `known`: every report the trial has, when the
    caller has them all (else they are read). Special runs are judged by their gate."""
    if (row.get("kind") or TrialKind.TRIAL) != TrialKind.TRIAL:
        return None
    found = diagnose_trial(
        known if known is not None else trial_store.recent_reports(session, row["id"], REPORTS_READ), state=row["state"], fail_kind=row.get("fail_kind"),
        fail_reason=row.get("fail_reason"), final_metrics=final_metrics or row.get("metrics") or None,
        metric=metric)
    stored = None if found is None else {**found.to_json(), "step": row.get("last_step"), "at": round(time.time(), 3)}
    if stored != row.get("diagnosis"):
        trial_store.set_diagnosis(session, row["id"], stored)
    return stored


def after_trial_ends(session: Session, row: dict[str, Any], ending: TrialEnding) -> dict[str, Any]:
    """An ordinary trial that ended gets its diagnosis (`ending.known`: see `diagnose`); returns the
    row as it now reads. Special runs are their gate's (features/gates.py)."""
    if row["kind"] != TrialKind.TRIAL or row["state"] in ACTIVE_STATES:
        return row
    return {**row, "diagnosis": diagnose(session, row, ending.metric, known=ending.known)}


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
                           metric=metric)
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


def _trial_read(trial: Trial, read: Any) -> None:
    """A running trial's read carries its provisional diagnosis as of its latest report."""
    if trial.state == TrialState.RUNNING:
        found = fresh(trial, trial.study.metric_name)
        read.diagnosis = DiagnosisRead.model_validate(found) if found else None


FEATURE = Feature("diagnoses", on_heartbeat=_on_heartbeat, after_trial_ends=after_trial_ends, advice=advice,
                  trial_read=_trial_read)
