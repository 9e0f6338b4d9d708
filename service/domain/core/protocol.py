"""The worker protocol: claim, ask, heartbeat, report, complete, prune, fail, release.

Each operation on a held trial is fenced by its lease token and by the API identity that claimed
it (`holder`, see store.trials): a worker whose lease ran out, or a caller with another worker's
lease token but its own API token, changes nothing. Reports renew the lease, are stored once per
(trial, step) (a repeat must carry the same metrics, else 409), and answer with the pruner's
decision. A NaN or infinite loss ends the trial as diverged; it is never stored as a value, so it
can never rank as best. Only the lease that completed a trial may complete it again (a retry
whose answer was lost); any other caller is told the trial's state (409).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import hooks
from tuneserve_service.domain.core.hooks import TrialEnding
from tuneserve_service.domain.core.pruning import prune_verdict, recheck_verdict, rechecks
from tuneserve_service.domain.core.studies import finish_on_target, settle
from tuneserve_service.domain.core.suggest import draw_claimed, suggest_trials
from tuneserve_service.domain.core.views import epoch_to_datetime, json_safe_metrics, trial_lease, trial_read
from tuneserve_service.errors import (
    ConflictingCompletion, ConflictingReport, InvalidInput, NotLeaseHolder, StudyNotFound, TrialNotFound,
    TrialNotHeld,
)
from tuneserve.schemas.enums import FailKind, StopKind, StudyState, TrialKind, TrialState
from tuneserve.schemas.trials import CompleteResponse, Decision, StepReport, TrialLease, TrialRead
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store
from tuneserve_service.store import workers as worker_store
from tuneserve_service.observability import metrics as observe

REPEAT = "repeat"  # the method of a repeat's trial (core/repeat_trials.py): it never reaches a target


def not_held(session: Session, trial_id: int, token: str, holder: str | None) -> Exception:
    row = trial_store.get_trial_row(session, trial_id)
    if row is None:
        return TrialNotFound(trial_id)
    if row["state"] == TrialState.RUNNING:
        if row["lease_token"] == token and row["holder"] != holder:
            return NotLeaseHolder(trial_id)
        return TrialNotHeld(trial_id, TrialState.RUNNING, "the lease token is not the current one (the lease was lost and the trial was claimed again)")
    if row["state"] == TrialState.WAITING:
        return TrialNotHeld(trial_id, TrialState.WAITING, "the lease ran out and the trial went back to the queue")
    return TrialNotHeld(trial_id, row["state"], "the trial has ended")


def _is_divergence(name: str, value: Any, metric: str) -> bool:
    return isinstance(value, float) and not math.isfinite(value) and (name == metric or name.endswith("loss"))


# ---- claim / ask -------------------------------------------------------------------------------

def _claim_from(s: Session, study_id: int, max_concurrent: int | None, worker_id: str, holder: str | None,
                limit: int = 1) -> list[dict[str, Any]]:
    if max_concurrent is not None:
        study_store.lock_admission(s, study_id)
    rows = trial_store.claim_waiting(s, worker_id=worker_id, study_id=study_id, limit=limit, holder=holder)
    return hooks.on_claimed(s, rows)  # e.g. a special run's request goes on its lease (features/gates.py)


def _claim_waiting(s: Session, worker_id: str, study_name: str | None, objective: str | None,
                   holder: str | None):
    """Waiting trials (a retry, an enqueued or drawn-ahead configuration, an orphaned reservation)
    under a fresh lease: (rows, their study, []), or ([], None, the studies a suggestion may come
    from); only of studies a worker running `objective` can run (store.workers.runs_study)."""
    worker_store.record_seen(s, worker_id, objective, study_name)
    if study_name:
        tried = False
        if s.bind.dialect.name == "postgresql":
            # One statement: the header, and a waiting trial when the named study hands out its own
            # (it runs, has no max_concurrent, and this worker may run it).
            named = trial_store.claim_named(s, worker_id=worker_id, study_name=study_name, objective=objective,
                                            holder=holder)
            if named is None:
                raise StudyNotFound(study_name)
            header, rows = named
            if rows:
                return hooks.on_claimed(s, rows), header, []
            tried = header.max_concurrent is None
        else:
            header = study_store.study_header_by_name(s, study_name)
        study = hooks.serve(s, header)  # e.g. a staged study's active stage
        if not worker_store.can_run(study.objective, objective):
            return [], None, []
        if tried and study.id == header.id:  # the statement above found nothing waiting
            return [], None, [study.id]
        rows = _claim_from(s, study.id, study.max_concurrent, worker_id, holder)
        return rows, (study if rows else None), ([] if rows else [study.id])
    # Studies locked in id order: two claimers never wait on each other's locks crosswise.
    for study_id, cap in sorted(trial_store.waiting_studies(s, objective)):
        rows = _claim_from(s, study_id, cap, worker_id, holder)
        if rows:
            return rows, study_store.study_header(s, study_id), []
    return [], None, study_store.candidate_studies(s, objective)


def _lease_for(db: Database, rows: list[dict[str, Any]], study) -> TrialLease | None:
    rows = draw_claimed(db, rows)
    return trial_lease(rows[0], study) if rows else None


def _suggest_for(db: Database, worker_id: str, candidates: list[int], holder: str | None) -> TrialLease | None:
    for sid in candidates:
        rows, study = suggest_trials(db, sid, 1, worker_id, holder)
        if rows:
            return trial_lease(rows[0], study)
    return None


def claim(db: Database, worker_id: str, study_name: str | None, holder: str | None = None,
          objective: str | None = None) -> TrialLease | None:
    """A waiting trial first, else a fresh suggestion (computed with no transaction open)."""
    lease = _claim(db, worker_id, study_name, holder, objective)
    observe.claimed(lease is not None)
    return lease


def _claim(db: Database, worker_id: str, study_name: str | None, holder: str | None,
           objective: str | None) -> TrialLease | None:
    with db.transaction() as s:
        rows, study, candidates = _claim_waiting(s, worker_id, study_name, objective, holder)
    if rows:
        lease = _lease_for(db, rows, study)
        if lease is not None:
            return lease
        candidates = [rows[0]["study_id"]]
    return _suggest_for(db, worker_id, candidates, holder)


def ask(db: Database, study_name: str, count: int, worker_id: str, holder: str | None = None) -> list[TrialLease]:
    with db.transaction() as s:
        study = hooks.serve(s, study_store.study_header_by_name(s, study_name))  # e.g. a staged study's active stage
        rows = _claim_from(s, study.id, study.max_concurrent, worker_id, holder, limit=count)
    rows = draw_claimed(db, rows) if rows else []
    if len(rows) < count:
        rows += suggest_trials(db, study.id, count - len(rows), worker_id, holder)[0]
    observe.claimed(len(rows))
    return [trial_lease(r, study) for r in rows]


# ---- reports and heartbeats --------------------------------------------------------------------

def _same_metrics(stored: dict[str, Any], sent: dict[str, Any]) -> bool:
    if stored.keys() != sent.keys():
        return False
    for k, a in stored.items():
        b = sent[k]
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            if not _same_value(float(a), float(b)):
                return False
        elif a != b:
            return False
    return True


def _distinct_steps(steps: list[StepReport]) -> list[StepReport]:
    """One report per step: an exact repeat inside one request is dropped, a different one refused."""
    seen: dict[int, StepReport] = {}
    for i, st in enumerate(steps):
        first = seen.setdefault(st.step, st)
        if first is not st and not _same_metrics(json_safe_metrics(first.metrics), json_safe_metrics(st.metrics)):
            raise InvalidInput(("body", "reports", i, "step"), f"step {st.step} appears twice with different metrics")
    return list(seen.values())


def _store_steps(session: Session, trial: dict[str, Any], study, steps: list[StepReport]) -> str | None:
    """Store steps; returns a divergence reason when a loss was NaN or infinite. A step stored
    before with other metrics raises ConflictingReport (the transaction rolls back: nothing changes)."""
    stored, diverged = [], None
    for st in _distinct_steps(steps):
        value = st.metrics.get(study.metric_name)
        for name, v in st.metrics.items():
            if diverged is None and _is_divergence(name, v, study.metric_name):
                diverged = f"non-finite {name} ({v}) at step {st.step}"
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        stored.append((st.step, float(value) if finite else None, json_safe_metrics(st.metrics)))
    for step, before, sent in trial_store.record_reports(session, trial["id"], trial["runs"], stored):
        if not _same_metrics(before, sent):
            raise ConflictingReport(trial["id"], step)
    observe.reported(len(stored))
    return diverged


def _touch(session: Session, trial_id: int, token: str, holder: str | None,
           steps: list[StepReport]) -> tuple[dict[str, Any], trial_store.HeldStudy]:
    """Renew the lease (and raise last_step): one fenced UPDATE that also reads the study's
    HeldStudy; raises when the caller does not hold the trial."""
    extra = {"last_step": max(st.step for st in steps)} if steps else {}
    held = trial_store.touch_held(session, trial_id, token, holder, with_study=True, **extra)
    if held is None:
        raise not_held(session, trial_id, token, holder)
    return held


def _after_end(s: Session, row: dict[str, Any], study, outcome: Any = None,
               steps: list[StepReport] | None = None) -> dict[str, Any]:
    # A trial that never reported before this request (a complete carrying its reports: last_step,
    # which every /report sets, is still unset) is judged from those reports without reading them back.
    known = [(st.step, st.metrics) for st in steps] if steps and row["last_step"] is None else None
    read = study if getattr(study, "space_text", None) is not None else None  # the ending's statement read it
    return hooks.after_trial_ends(s, row, TrialEnding(study.metric_name, outcome, known, read))


def report(db: Database, trial_id: int, token: str, steps: list[StepReport], holder: str | None = None) -> Decision:
    """Store steps, renew the lease (one UPDATE that reads the study too, and the INSERT of the steps),
    and answer the pruner's decision. The report renewed the lease, so `needs_heartbeat` is false
    unless a heartbeat would bring news: the study's pruner re-judges at heartbeats (W&B's hyperband),
    or a feature wants one (hooks.wants_heartbeat: a provisional diagnosis to refresh)."""
    # Only a non-finite value can end the trial here (a divergence: its ending and the study's
    # settling use the ORM); a report of finite values runs on a plain Connection.
    unit = db.core() if _all_finite(None, {}, steps) else db.transaction()
    with unit as s:
        row, study = _touch(s, trial_id, token, holder, steps)
        decision = _report(s, row, study, trial_id, token, steps, holder)
    decision.needs_heartbeat = not decision.should_stop and (rechecks(study) or hooks.wants_heartbeat(row))
    return decision


def _report(s: Session, row: dict[str, Any], study: trial_store.HeldStudy, trial_id: int, token: str,
            steps: list[StepReport], holder: str | None) -> Decision:
    diverged = _store_steps(s, row, study, steps)
    if diverged:
        ended = trial_store.end_held(s, trial_id, token, TrialState.DIVERGED, holder, fail_kind=FailKind.DIVERGED,
                                     fail_reason=diverged)
        ended = _after_end(s, ended, study)
        settle(s, study.id)
        if ended["kind"] == TrialKind.TRIAL:
            observe.ended(TrialState.DIVERGED)
        return Decision(should_stop=True, stop_kind=StopKind.DIVERGED, reason=f"diverged: {diverged}",
                        diagnosis=ended.get("diagnosis"))
    expires = epoch_to_datetime(row["lease_expires_at"])
    special = row["kind"] != TrialKind.TRIAL
    diagnosis = row["diagnosis"]  # provisional, as the last heartbeat refreshed it
    if study.state != StudyState.RUNNING:
        return Decision(should_stop=True, stop_kind=StopKind.STUDY, reason=f"study is {study.state}",
                        lease_expires_at=expires,
                        diagnosis=diagnosis)
    if row["stop_reason"] or special:  # special runs are never pruned
        return _stored_stop(row, expires, diagnosis)
    verdict = prune_verdict(s, study, trial_id, [st.step for st in steps])
    if verdict.stop:
        trial_store.touch_held(s, trial_id, token, holder, stop_reason=verdict.reason, stop_step=verdict.step)
    return Decision(should_stop=verdict.stop, stop_kind=StopKind.PRUNE if verdict.stop else None,
                    reason=verdict.reason, lease_expires_at=expires, diagnosis=diagnosis)


def _stored_stop(row: dict[str, Any], expires, diagnosis) -> Decision:
    """The answer from the trial's own row: a stop a pruner or a reached target recorded earlier."""
    stop = bool(row["stop_reason"])
    return Decision(should_stop=stop, stop_kind=StopKind.PRUNE if stop else None, reason=row["stop_reason"] or "",
                    lease_expires_at=expires, diagnosis=diagnosis)


def heartbeat(db: Database, trial_id: int, token: str, holder: str | None = None) -> Decision:
    """Renew one lease: one fenced UPDATE (which reads the study too), plus, now and then, the
    provisional diagnosis (features/diagnoses.py: when steps came in and the stored one is old).
    Runs on Database.renewal(): on PostgreSQL the UPDATE autocommits, one round trip."""
    with db.renewal() as s:
        row, study = _touch(s, trial_id, token, holder, [])
        ordinary = row["kind"] == TrialKind.TRIAL
        diagnosis = hooks.on_heartbeat(s, row, study.metric_name, row["diagnosis"]) if ordinary else None
        return _keepalive_decision(s, row, study, token, holder, diagnosis)


def _keepalive_decision(s: Session, row: dict[str, Any], study: trial_store.HeldStudy, token: str,
                        holder: str | None, diagnosis: Any) -> Decision:
    """What a renewed lease answers: stop when the study no longer runs, when a pruner or a reached
    target recorded a stop, or when W&B's hyperband's re-check says so (a read only for studies
    with that pruner, once the trial reached a band)."""
    expires = epoch_to_datetime(row["lease_expires_at"])
    if study.state != StudyState.RUNNING:
        return Decision(should_stop=True, stop_kind=StopKind.STUDY, reason=f"study is {study.state}",
                        lease_expires_at=expires, diagnosis=diagnosis)
    if not row["stop_reason"] and row["kind"] == TrialKind.TRIAL:  # W&B's hyperband re-checks running trials
        verdict = recheck_verdict(s, study, row["id"], row["last_step"] or 0)
        if verdict.stop:
            trial_store.touch_held(s, row["id"], token, holder, stop_reason=verdict.reason, stop_step=verdict.step)
            return Decision(should_stop=True, stop_kind=StopKind.PRUNE, reason=verdict.reason,
                            lease_expires_at=expires, diagnosis=diagnosis)
    return _stored_stop(row, expires, diagnosis)


def renew_leases(db: Database, leases: list[tuple[int, str]],
                 holder: str | None = None) -> list[tuple[int, Decision | Exception]]:
    """Renew several leases at once (a worker with several slots): one fenced UPDATE for all of
    them, then each one's answer as its heartbeat gives it, or, for a lease the caller does not
    hold, the error a heartbeat would raise. In the order given; a trial named twice is answered
    twice."""
    with db.renewal() as s:
        renewed = trial_store.renew_many(s, list(dict.fromkeys(leases)), holder)
        out: list[tuple[int, Decision | Exception]] = []
        for trial_id, token in leases:
            held = renewed.get(trial_id)
            if held is None or held[0]["lease_token"] != token:
                out.append((trial_id, not_held(s, trial_id, token, holder)))
                continue
            row, study = held
            ordinary = row["kind"] == TrialKind.TRIAL
            diagnosis = hooks.on_heartbeat(s, row, study.metric_name, row["diagnosis"]) if ordinary else None
            out.append((trial_id, _keepalive_decision(s, row, study, token, holder, diagnosis)))
        return out


# ---- ending a trial ----------------------------------------------------------------------------

def _same_value(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)


def _all_finite(value: float | None, metrics: dict[str, Any], steps: list[StepReport] | None) -> bool:
    values = [value, *metrics.values(), *(v for st in steps or () for v in st.metrics.values())]
    return all(v is None or math.isfinite(v) for v in values)


class Completion(NamedTuple):
    """What completing a held trial did: the ended row and its study, or, when this same lease had
    completed it already with the same value (a retry whose answer was lost), `replay`: the answer
    to give again, and nothing else to do."""

    row: dict[str, Any] | None
    study: Any
    replay: CompleteResponse | None = None


def _end_completed(
    s: Session, trial_id: int, token: str, holder: str | None, value: float | None, metrics: dict[str, Any],
    steps: list[StepReport] | None, outcome: Any = None,
) -> Completion:
    """End a held trial as completed (or diverged). A special run may end with no value (its
    `outcome` says it all)."""
    if value is not None and outcome is None and _all_finite(value, metrics, steps):
        # The common case in one fenced UPDATE; only a miss needs the reads below to explain it.
        held = trial_store.end_held_with_study(s, trial_id, token, TrialState.COMPLETED, holder,
                                               value=float(value), metrics=metrics)
        if held is not None:
            ended, study = held
            if steps:
                _store_steps(s, ended, study, steps)
            return Completion(ended, study)
    row = trial_store.get_trial_row(s, trial_id)
    if row is None:
        raise TrialNotFound(trial_id)
    study = study_store.study_header(s, row["study_id"])
    final = value if value is not None else metrics.get(study.metric_name)
    special = row["kind"] != TrialKind.TRIAL
    if outcome is not None and not special:
        raise InvalidInput(("body", "outcome"), f"trial {trial_id} is an ordinary trial: only a special run "
                                                f"(kind sanity or lr_range) is completed with an outcome")
    if row["state"] != TrialState.RUNNING or row["lease_token"] != token or row["holder"] != holder:
        if row["state"] == TrialState.COMPLETED and row["lease_token"] == token and row["holder"] == holder:
            stored = row["value"]
            if final is None or _same_value(stored, float(final)):
                return Completion(None, study, CompleteResponse(trial=trial_read(row, study.name)))
            raise ConflictingCompletion(trial_id, stored, final)
        raise not_held(s, trial_id, token, holder)
    diverged = _store_steps(s, row, study, steps) if steps else None
    if final is None and not diverged and not special:
        final = trial_store.last_report_value(s, trial_id)
        if final is None:
            raise InvalidInput(
                ("body", "value"),
                f"value is required: no {study.metric_name!r} in metrics or in any report of this trial",
            )
    if diverged is None and final is not None and not math.isfinite(float(final)):
        diverged = f"non-finite final value ({final})"
    if diverged:
        ended = trial_store.end_held(
            s, trial_id, token, TrialState.DIVERGED, holder, fail_kind=FailKind.DIVERGED, fail_reason=diverged,
            metrics=json_safe_metrics(metrics),
        )
    else:
        ended = trial_store.end_held(
            s, trial_id, token, TrialState.COMPLETED, holder, value=None if final is None else float(final),
            metrics=json_safe_metrics(metrics)
        )
    if ended is None:  # lost the lease between the read and the write
        raise not_held(s, trial_id, token, holder)
    return Completion(ended, study)


def complete(
    db: Database, trial_id: int, token: str, value: float | None, metrics: dict[str, Any],
    steps: list[StepReport] | None, claim_next: tuple[str, str | None, str | None] | None,
    holder: str | None = None, outcome: Any = None,
) -> CompleteResponse:
    """End a held trial as completed; `claim_next` (worker id, study, objective) hands out the next.
    `outcome`: a special run's result (service/domain/features/gates.py)."""
    with db.transaction() as s:
        ended, study, replay = _end_completed(s, trial_id, token, holder, value, metrics, steps, outcome)
        if replay is not None:
            return replay  # completed before with the same value: idempotent
        if (ended["state"] == TrialState.COMPLETED and ended["method"] != REPEAT
                and ended["kind"] == TrialKind.TRIAL):
            finish_on_target(s, study.id, ended["value"], ended["number"], study)  # W&B's metric.target
        ended = _after_end(s, ended, study, outcome, steps)
        settle(s, study.id, (study.max_trials, study.next_number))
        if ended["kind"] == TrialKind.TRIAL:
            observe.ended(ended["state"])
        done = trial_read(ended, study.name)
        if claim_next is None:
            return CompleteResponse(trial=done)
        # The next trial, when one is waiting, is handed out in the same transaction.
        rows, nxt_study, candidates = _claim_waiting(s, *claim_next, holder)
    nxt = _lease_for(db, rows, nxt_study) if rows else None
    if nxt is None:
        nxt = _suggest_for(db, claim_next[0], candidates or ([rows[0]["study_id"]] if rows else []), holder)
    observe.claimed(nxt is not None)
    return CompleteResponse(trial=done, next=nxt)


def end_trial(db: Database, trial_id: int, token: str, state: TrialState, holder: str | None = None,
              **values: Any) -> TrialRead:
    """prune / fail / release (state waiting): one fenced transition."""
    with db.transaction() as s:
        if state == TrialState.PRUNED:
            values["value"] = trial_store.last_report_value(s, trial_id)
        row = trial_store.end_held(s, trial_id, token, state, holder, **values)
        if row is None:
            raise not_held(s, trial_id, token, holder)
        study = study_store.study_header(s, row["study_id"])
        row = _after_end(s, row, study)
        settle(s, study.id)
    if state != TrialState.WAITING and row["kind"] == TrialKind.TRIAL:
        observe.ended(state)
    return trial_read(row, study.name)


def get_trial(db: Database, trial_id: int) -> TrialRead:
    """A trial with its reports, as read (the features add to it: hooks.trial_read)."""
    with db.transaction() as s:
        trial = trial_store.get_trial(s, trial_id)
        if trial is None:
            raise TrialNotFound(trial_id)
        read = trial_read(trial, trial.study.name, reports=list(trial.reports))
        hooks.trial_read(trial, read)
        return read
