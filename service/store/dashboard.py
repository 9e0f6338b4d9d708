"""Aggregate reads for the dashboard: one query per view, shaped as plain rows, bounded in size.

Every function here reads; none writes. The callers (service/dashboard/data.py) choose which
trials to show, so the queries that return per-trial data take explicit id lists (chunked) and the
per-study scans return a handful of columns, never the JSON documents of every trial.

Only ordinary trials (kind 'trial') are counted, drawn or listed: the special runs (the sanity check,
the lr range test; kind 'sanity' / 'lr_range', numbered below zero) are not trials of the search and
are shown by their own panels. `kind` is not in the covering index ix_trials_study_points: the
filter costs a few ms at 20,000 trials on either backend (measured with benchmarks/dashboard.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import DateTime, Text, and_, cast, func, select
from sqlalchemy.orm import Session

from tuneserve_service.db.models import Study, Trial, TrialReport
from tuneserve.schemas.enums import DiagnosisLabel, TrialKind

TRIALS = Trial.__table__
REPORTS = TrialReport.__table__
STUDIES = Study.__table__
ORDINARY = TRIALS.c.kind == TrialKind.TRIAL.value  # not a special run

# IN lists are sent in chunks: SQLite caps bound parameters per statement, and long lists plan badly.
CHUNK = 500


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


def study_rows(session: Session) -> list[Any]:
    return list(session.execute(
        select(STUDIES.c.id, STUDIES.c.name, STUDIES.c.state, STUDIES.c.method, STUDIES.c.goal,
               STUDIES.c.metric_name, STUDIES.c.max_trials, STUDIES.c.next_number, STUDIES.c.created_at,
               STUDIES.c.updated_at, STUDIES.c.description, STUDIES.c.gate,
               # Only the sanity check's state travels to the studies list (a badge), not its figures.
               STUDIES.c.sanity["state"].as_string().label("sanity_state"))
        .order_by(STUDIES.c.id)
    ).all())


def trial_aggregates(session: Session, study_id: int | None = None) -> list[Any]:
    """Per (study, trial state): count, min and max value, reported steps, the latest ending.
    Answered from the covering index ix_trials_study_points."""
    last = func.max(TRIALS.c.finished_at, type_=DateTime(timezone=True))
    stmt = select(
        TRIALS.c.study_id, TRIALS.c.state, func.count().label("n"),
        func.min(TRIALS.c.value).label("lo"), func.max(TRIALS.c.value).label("hi"),
        func.coalesce(func.sum(TRIALS.c.last_step), 0).label("steps"), last.label("last"),
    ).where(ORDINARY).group_by(TRIALS.c.study_id, TRIALS.c.state)
    # SQLite would rather walk ix_trials_study_state (ordered for the GROUP BY) and read every row.
    stmt = stmt.with_hint(TRIALS, "INDEXED BY ix_trials_study_points", "sqlite")
    if study_id is not None:
        stmt = stmt.where(TRIALS.c.study_id == study_id)
    return list(session.execute(stmt).all())


def latest_starts(session: Session, study_id: int | None = None) -> dict[int, Any]:
    """The latest start of a running trial per study (running trials are few: ix_trials_study_state).
    A running special run counts too: it is activity, though not a trial of the search."""
    stmt = select(TRIALS.c.study_id, func.max(TRIALS.c.started_at, type_=DateTime(timezone=True))).where(
        TRIALS.c.state == "running").group_by(TRIALS.c.study_id)
    if study_id is not None:
        stmt = stmt.where(TRIALS.c.study_id == study_id)
    return dict(session.execute(stmt).all())


def trial_points(session: Session, study_id: int) -> list[tuple]:
    """(id, number, state, value, last_step) of every ordinary trial of a study, in number order, as plain
    tuples from the driver's cursor (in this session's transaction): at 20,000 trials, SQLAlchemy's
    row objects cost 100 ms more than the query on PostgreSQL. Columns of simple types only."""
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute("SELECT id, number, state, value, last_step FROM trials "
                       f"WHERE study_id = {mark} AND kind = 'trial' ORDER BY number", (study_id,))
        return cursor.fetchall()
    finally:
        cursor.close()


def special_runs(session: Session, study_id: int) -> list[dict[str, Any]]:
    """(id, number, kind, state) of a study's special runs, newest first: they are numbered below zero,
    so this is a short range of ix_trials_study_points."""
    return [dict(r) for r in session.execute(
        select(TRIALS.c.id, TRIALS.c.number, TRIALS.c.kind, TRIALS.c.state)
        .where(TRIALS.c.study_id == study_id, TRIALS.c.number < 0, ~ORDINARY).order_by(TRIALS.c.number)
    ).mappings().all()]


def trial_fidelities(session: Session, study_id: int) -> list[tuple[int, str | None]]:
    """(number, fidelity record as JSON text) of every ordinary trial of a study, in number order."""
    return list(session.execute(
        select(TRIALS.c.number, cast(TRIALS.c.fidelity, Text))
        .where(TRIALS.c.study_id == study_id, ORDINARY).order_by(TRIALS.c.number)
    ).all())


def curve_points(session: Session, trial_ids: Sequence[int]) -> list[tuple[int, int, float]]:
    """(trial id, step, study metric value) of every finite report of the given trials."""
    out: list[tuple[int, int, float]] = []
    for chunk in _chunks(list(trial_ids)):
        out += session.execute(
            select(REPORTS.c.trial_id, REPORTS.c.step, REPORTS.c.value)
            .where(REPORTS.c.trial_id.in_(chunk), REPORTS.c.value.is_not(None))
            .order_by(REPORTS.c.trial_id, REPORTS.c.step)
        ).all()
    return out


def params_text(session: Session, trial_ids: Sequence[int]) -> dict[int, str]:
    """Each trial's params as stored JSON text (decoding is the caller's, and only for what it shows)."""
    out: dict[int, str] = {}
    for chunk in _chunks(list(trial_ids)):
        out.update(session.execute(
            select(TRIALS.c.id, cast(TRIALS.c.params, Text)).where(TRIALS.c.id.in_(chunk))
        ).all())
    return out


@dataclass(frozen=True)
class ParamFilter:
    """A filter on one parameter: a numeric range (either end open) or equality with a scalar."""

    name: str
    lo: float | None = None
    hi: float | None = None
    equals: str | float | bool | None = None
    is_equality: bool = False


def _param_expr(name: str, value: Any):
    node = TRIALS.c.params[name]
    if isinstance(value, bool):
        return node.as_boolean()
    if isinstance(value, (int, float)):
        return node.as_float()
    return node.as_string()


SORT_COLUMNS = {
    "number": TRIALS.c.number, "value": TRIALS.c.value, "state": TRIALS.c.state,
    "attempt": TRIALS.c.attempt, "last_step": TRIALS.c.last_step, "worker_id": TRIALS.c.worker_id,
    "started_at": TRIALS.c.started_at, "finished_at": TRIALS.c.finished_at,
}


def page_trials(
    session: Session, study_id: int, *, states: Sequence[str], labels: Sequence[str], value_min: float | None,
    value_max: float | None, params: Sequence[ParamFilter], sort: str, sort_kind: str,
    descending: bool, limit: int, offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of a study's trials, filtered and sorted in SQL, and the filtered total.

    `sort` is a column of SORT_COLUMNS or "params.<name>"; `sort_kind` says how to read a parameter
    ("float", "string" or "boolean"). `labels` keeps trials whose diagnosis has one of these labels
    (DiagnosisLabel values; a trial not diagnosed yet has none). NULLs sort last both ways; ties
    break on the trial number.
    """
    conds = [TRIALS.c.study_id == study_id, ORDINARY]
    if states:
        conds.append(TRIALS.c.state.in_(list(states)))
    if labels:
        conds.append(TRIALS.c.diagnosis["label"].as_string().in_([DiagnosisLabel(x).value for x in labels]))
    if value_min is not None:
        conds.append(TRIALS.c.value >= value_min)
    if value_max is not None:
        conds.append(TRIALS.c.value <= value_max)
    for f in params:
        if f.is_equality:
            conds.append(_param_expr(f.name, f.equals) == f.equals)
            continue
        expr = TRIALS.c.params[f.name].as_float()
        if f.lo is not None:
            conds.append(expr >= f.lo)
        if f.hi is not None:
            conds.append(expr <= f.hi)
    where = and_(*conds)
    total = session.scalar(select(func.count()).select_from(TRIALS).where(where)) or 0
    if sort.startswith("params."):
        node = TRIALS.c.params[sort[len("params."):]]
        key = {"float": node.as_float, "boolean": node.as_boolean}.get(sort_kind, node.as_string)()
    else:
        key = SORT_COLUMNS[sort]
    order = (key.desc() if descending else key.asc()).nulls_last()
    tie = TRIALS.c.number.desc() if descending else TRIALS.c.number.asc()
    rows = session.execute(
        select(TRIALS.c.id, TRIALS.c.number, TRIALS.c.state, TRIALS.c.value, TRIALS.c.params,
               TRIALS.c.method, TRIALS.c.attempt, TRIALS.c.worker_id, TRIALS.c.last_step,
               TRIALS.c.stop_reason, TRIALS.c.stop_step, TRIALS.c.fail_kind, TRIALS.c.started_at,
               TRIALS.c.finished_at, TRIALS.c.created_at, TRIALS.c.fidelity, TRIALS.c.config_key,
               TRIALS.c.diagnosis)
        .where(where).order_by(order, tie).limit(limit).offset(offset)
    ).mappings().all()
    return [dict(r) for r in rows], total


def trial_row(session: Session, trial_id: int) -> dict[str, Any] | None:
    row = session.execute(
        select(TRIALS, STUDIES.c.name.label("study_name"), STUDIES.c.metric_name, STUDIES.c.goal)
        .join(STUDIES, STUDIES.c.id == TRIALS.c.study_id)
        .where(TRIALS.c.id == trial_id)
    ).mappings().one_or_none()
    return dict(row) if row is not None else None


def trial_reports(session: Session, trial_id: int) -> list[Any]:
    """(step, metrics, created_at) of every report of a trial, in step order."""
    return list(session.execute(
        select(REPORTS.c.step, REPORTS.c.metrics, REPORTS.c.created_at)
        .where(REPORTS.c.trial_id == trial_id).order_by(REPORTS.c.step)
    ).all())
