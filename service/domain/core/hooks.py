"""The hook points where features plug into the study core, and the dispatch the core calls.

The core (this package) creates studies, adds trials, builds the space, changes a study's state and
runs the worker protocol; it imports no feature. A feature (tuneserve_service.domain.features) is a
`Feature`: a name and a function for any of the hook points below. The features in force, and their
order, are the one list in tuneserve_service/domain/features/__init__.py (installed by
tuneserve_service/domain/__init__.py); every hook point calls the features in that order, as
Prefect's orchestration rules run in their declared order. The core calls these dispatchers, never a
feature's module.

Hook points, in the order a study meets them:

  parse_document(draft)                  validate the feature's keys of a study document (422
                                         naming the field); may shape the draft (stages: stage 0's
                                         method, budget and fidelity)
  check_document(draft)                  validate what needs the resolved study (objective, engine)
  on_create(session, study, draft)       the study row exists (gates: open the first gate)
  serve(session, header) -> header       the study that hands out trials for a claim or ask naming
                                         `header`'s (stages: a finished stage's successor); a running
                                         study serves its own claims (on PostgreSQL a claim takes its
                                         waiting trial in the statement that reads its header, before
                                         serve is asked)
  on_claimed(session, rows) -> rows      claimed rows, in the claim's transaction (gates: a special
                                         run's request on its lease)
  on_heartbeat(session, row, metric,     a running ordinary trial's diagnosis at a heartbeat
               diagnosis) -> diagnosis
  wants_heartbeat(row) -> bool           after a report renewed a running ordinary trial's lease:
                                         whether a heartbeat soon would bring news (diagnoses: a
                                         provisional diagnosis missing or old); a worker that
                                         reports often skips heartbeats otherwise
  after_trial_ends(session, row,         a trial changed state (row after the change: ended,
      ending) -> row                     released); every ending calls it, the protocol's and the
                                         lease reaper's (gates judge special runs, diagnoses the
                                         ordinary ones)
  on_finished(session, study)            `settle` finished the study (stages move on, repeats of
                                         the document's repeat_top are enqueued)
  on_state_change(session, study,        pause / resume / stop applied (gates: a resume over a
                  action)                failed sanity check is recorded)
  aliases(session, study) -> names       other study names a worker's --study may give to be served
                                         this study (stages: the earlier stages)
  read_fields(session, study, fields)    StudyRead fields the feature adds (or replaces: repeats
      -> dict                            give the noise-aware best); `fields` are the ones so far
  advice(session, study) -> [Advice]     the study's advice lines, in feature order
  trial_read(trial, read)                a single trial's read (diagnoses: a running trial's
                                         provisional diagnosis)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sqlalchemy.orm import Session

from tuneserve_service.db.models import Study
from tuneserve_service.diagnosis import Advice
from tuneserve_service.space import SearchSpace


@dataclass
class StudyDraft:
    """A study document on its way to a row: what the core resolved, and what the features shaped.
    `plans` keeps each feature's parsed document keys (by feature name) until `on_create`."""

    body: Any                                   # tuneserve.schemas.studies.StudyCreate
    space: SearchSpace
    parent: Study | None = None
    stage_index: int | None = None
    method: str | None = None                   # overrides the document's method (a stage's own)
    max_trials: int | None = None
    manages_fidelity: bool = False              # resolve a fidelity even without `fidelity:`
    fidelity_overrides: dict[str, Any] | None = None
    objective: str | None = None                # set by the core before check_document
    plans: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialEnding:
    """What the caller of after_trial_ends knows: the study's metric, a special run's outcome, and
    every report the trial has when the caller has them all (else None: they are read)."""

    metric: str
    outcome: Any = None
    known: list[tuple[int, dict[str, Any]]] | None = None
    # The study as the statement that ended the trial read it (store.trials.HeldStudy with its ending
    # fields: the space's JSON text, the document's objectives and constraints), or None: a hook
    # that needs them reads them.
    study: Any = None


@dataclass(frozen=True)
class Feature:
    name: str
    parse_document: Callable[[StudyDraft], None] | None = None
    check_document: Callable[[StudyDraft], None] | None = None
    on_create: Callable[[Session, Study, StudyDraft], None] | None = None
    serve: Callable[[Session, Any], Any] | None = None
    on_claimed: Callable[[Session, list[dict[str, Any]]], list[dict[str, Any]]] | None = None
    on_heartbeat: Callable[[Session, dict[str, Any], str, Any], Any] | None = None
    wants_heartbeat: Callable[[dict[str, Any]], bool] | None = None
    after_trial_ends: Callable[[Session, dict[str, Any], TrialEnding], dict[str, Any]] | None = None
    on_finished: Callable[[Session, Study], None] | None = None
    on_state_change: Callable[[Session, Study, str], None] | None = None
    aliases: Callable[[Session, Study], tuple[str, ...]] | None = None
    read_fields: Callable[[Session, Study, dict[str, Any]], dict[str, Any]] | None = None
    advice: Callable[[Session, Study], list[Advice]] | None = None
    trial_read: Callable[[Any, Any], None] | None = None


_installed: tuple[Feature, ...] = ()
_by_point: dict[str, tuple[Callable, ...]] = {}  # each hook point's functions, in feature order


def install(features: Iterable[Feature]) -> None:
    """Put `features` in force, in this order (tuneserve_service/domain/__init__.py does, once)."""
    global _installed, _by_point
    features = tuple(features)
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ValueError(f"a feature is listed twice: {names}")
    _installed = features
    points = [name for name in Feature.__dataclass_fields__ if name != "name"]
    _by_point = {p: tuple(fn for f in features if (fn := getattr(f, p)) is not None) for p in points}


def installed() -> tuple[Feature, ...]:
    return _installed


def _each(point: str) -> tuple[Callable, ...]:
    return _by_point.get(point, ())


def parse_document(draft: StudyDraft) -> None:
    for fn in _each("parse_document"):
        fn(draft)


def check_document(draft: StudyDraft) -> None:
    for fn in _each("check_document"):
        fn(draft)


def on_create(session: Session, study: Study, draft: StudyDraft) -> None:
    for fn in _each("on_create"):
        fn(session, study, draft)


def serve(session: Session, header: Any) -> Any:
    for fn in _each("serve"):
        header = fn(session, header)
    return header


def on_claimed(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for fn in _each("on_claimed"):
        rows = fn(session, rows)
    return rows


def on_heartbeat(session: Session, row: dict[str, Any], metric: str, diagnosis: Any) -> Any:
    for fn in _each("on_heartbeat"):
        diagnosis = fn(session, row, metric, diagnosis)
    return diagnosis


def wants_heartbeat(row: dict[str, Any]) -> bool:
    return any(fn(row) for fn in _each("wants_heartbeat"))


def after_trial_ends(session: Session, row: dict[str, Any], ending: TrialEnding) -> dict[str, Any]:
    for fn in _each("after_trial_ends"):
        row = fn(session, row, ending)
    return row


def on_finished(session: Session, study: Study) -> None:
    for fn in _each("on_finished"):
        fn(session, study)


def on_state_change(session: Session, study: Study, action: str) -> None:
    for fn in _each("on_state_change"):
        fn(session, study, action)


def aliases(session: Session, study: Study) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    for fn in _each("aliases"):
        out += tuple(fn(session, study))
    return out


def read_fields(session: Session, study: Study, fields: dict[str, Any]) -> dict[str, Any]:
    for fn in _each("read_fields"):
        fields.update(fn(session, study, fields))
    return fields


def advice(session: Session, study: Study) -> list[Advice]:
    out: list[Advice] = []
    for fn in _each("advice"):
        out += fn(session, study)
    return out


def trial_read(trial: Any, read: Any) -> None:
    for fn in _each("trial_read"):
        fn(trial, read)
