"""Each trial's diagnosis stored with it, and the study's advice: service/diagnosis's pure rules
wired to the store.

When a trial ends (complete, prune, fail, a divergence seen by the server, a lease that ran out of
retries), `diagnose` reads its reports and stores `trials.diagnosis` in the same transaction. While
it runs, `diagnose` after each report stores a provisional one (label and evidence so far), which the
report and heartbeat answers and every view of the trial read without another query. Reports are per
epoch; the last REPORTS_READ of them are read, which bounds the cost for very long curves.

`advice` reads the ended ordinary trials (the most recent ADVICE_TRIALS of them) with their stored
diagnoses and runs service.diagnosis.study_advice; the gates add their own lines (a skipped or
overridden sanity check, a range test suggestion not applied yet).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Study, Trial, TrialReport
from service.diagnosis import Advice, Diagnosis, TrialSummary, diagnose_trial, study_advice
from service.schemas.enums import ENDED_STATES, TrialKind
from service.space import SearchSpace

REPORTS_READ = 500
ADVICE_TRIALS = 3000


def _reports(session: Session, trial_id: int) -> list[tuple[int, dict[str, Any]]]:
    rows = session.execute(
        select(TrialReport.step, TrialReport.metrics).where(TrialReport.trial_id == trial_id)
        .order_by(TrialReport.step.desc()).limit(REPORTS_READ)
    ).all()
    return [(step, metrics) for step, metrics in reversed(rows)]


def diagnose(session: Session, row: dict[str, Any], metric: str,
             final_metrics: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Compute and store the diagnosis of trial `row` (a row mapping, after its latest change) and
    return it as stored (None: nothing to judge yet). Special runs are judged by their gate."""
    if (row.get("kind") or TrialKind.TRIAL) != TrialKind.TRIAL:
        return None
    found = diagnose_trial(
        _reports(session, row["id"]), state=row["state"], fail_kind=row.get("fail_kind"),
        fail_reason=row.get("fail_reason"), final_metrics=final_metrics or row.get("metrics") or None,
        metric=metric)
    stored = None if found is None else found.to_json()
    if stored != row.get("diagnosis"):
        session.execute(Trial.__table__.update().where(Trial.__table__.c.id == row["id"]).values(diagnosis=stored))
    return stored


def _summaries(session: Session, study_id: int) -> list[TrialSummary]:
    rows = session.execute(
        select(Trial.number, Trial.state, Trial.params, Trial.value, Trial.diagnosis)
        .where(Trial.study_id == study_id, Trial.kind == TrialKind.TRIAL, Trial.state.in_(ENDED_STATES))
        .order_by(Trial.number.desc()).limit(ADVICE_TRIALS)
    ).all()
    out = []
    for number, state, params, value, diagnosis in rows:
        try:
            found = Diagnosis.from_json(diagnosis) if diagnosis else None
        except (KeyError, ValueError):  # written by another version: judged as if missing
            found = None
        out.append(TrialSummary(number, state, params or {}, value, found))
    return out[::-1]


def advice(session: Session, study: Study) -> list[Advice]:
    """The study's advice, most urgent first: the gates' lines, then what the trials say together."""
    from service.domain import gates

    found = gates.advice(study)
    summaries = _summaries(session, study.id)
    if summaries:
        found += study_advice(summaries, SearchSpace.from_json(study.space), study.goal)
    return found
