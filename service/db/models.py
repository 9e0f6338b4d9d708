"""SQLAlchemy 2 models: studies, trials, their per-step reports, and API tokens.

The schema changes only through Alembic migrations in migrations/; tests compare these models with
the migrated database so a missing migration fails CI.

Columns that hold one of a fixed list of names (states, kinds, methods, goals, roles) are typed by
the enums of tuneserve.schemas.enums and CHECKed by the database (migration 0010 adds the same
named constraints, `ENUM_CHECKS` below lists them): a row with a value outside the list is refused
by the database itself, whoever writes it. The column stays a VARCHAR of the same length; a value
read back is the enum member (equal to its string).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from enum import StrEnum

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Enum, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, true)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tuneserve.schemas.enums import FailKind, Gate, Goal, Method, Role, StudyState, TrialKind, TrialSource, TrialState

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# The same, with Python None stored as SQL NULL rather than JSON null: for optional records that
# queries test with IS NULL (a trial's fidelity, written in bulk with None for "no record").
NullableJSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


# (table, column) -> (CHECK constraint name, the values it allows, VARCHAR length). Migration 0010
# creates these constraints with the values of its day; the models and the migration test read them here.
ENUM_CHECKS: dict[tuple[str, str], tuple[str, list[str], int]] = {
    ("studies", "goal"): ("ck_studies_goal", _values(Goal), 16),
    ("studies", "method"): ("ck_studies_method", _values(Method), 32),
    ("studies", "state"): ("ck_studies_state", _values(StudyState), 16),
    ("studies", "gate"): ("ck_studies_gate", _values(Gate), 16),
    ("trials", "state"): ("ck_trials_state", _values(TrialState), 16),
    ("trials", "method"): ("ck_trials_method", _values(Method) + _values(TrialSource), 32),
    ("trials", "kind"): ("ck_trials_kind", _values(TrialKind), 16),
    ("trials", "fail_kind"): ("ck_trials_fail_kind", _values(FailKind), 32),
    ("api_tokens", "role"): ("ck_api_tokens_role", _values(Role), 16),
}


def checked(table: str, column: str, enum: type[StrEnum] | None = None) -> Enum:
    """A VARCHAR column whose values the database CHECKs (ENUM_CHECKS); typed by `enum` when one
    enum holds all its values (read back as members), else plain strings."""
    name, values, length = ENUM_CHECKS[(table, column)]
    if enum is not None:
        assert _values(enum) == values, f"{table}.{column}: ENUM_CHECKS and {enum.__name__} disagree"
        return Enum(enum, name=name, native_enum=False, create_constraint=True, length=length,
                    values_callable=_values, validate_strings=True)
    return Enum(*values, name=name, native_enum=False, create_constraint=True, length=length, validate_strings=True)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Study(Base):
    __tablename__ = "studies"
    # One study per (parent, stage): two servers ending a stage's last trials create its next stage once.
    __table_args__ = (Index("uq_studies_parent_stage", "parent_id", "stage_index", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # the URL name (a slug when generated)
    display_name: Mapped[str] = mapped_column(String(500))  # the document's `name` as written
    description: Mapped[str] = mapped_column(Text, default="")
    metric_name: Mapped[str] = mapped_column(String(200))
    goal: Mapped[Goal] = mapped_column(checked("studies", "goal", Goal))
    # W&B metric.target: a completed trial at or beyond it finishes the study.
    metric_target: Mapped[float | None] = mapped_column(Float, nullable=True)
    target_reached_by: Mapped[int | None] = mapped_column(Integer, nullable=True)  # that trial's number
    method: Mapped[Method] = mapped_column(checked("studies", "method", Method))  # the engine; config["method"] is what was asked
    space: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)  # SearchSpace.to_json()
    pruner: Mapped[dict[str, Any]] = mapped_column(JSONType)  # PrunerConfig as JSON
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the document as submitted (W&B keys kept)
    max_trials: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_concurrent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seed: Mapped[int] = mapped_column(Integer)
    lease_seconds: Mapped[float] = mapped_column(Float)
    max_retries: Mapped[int] = mapped_column(Integer)
    warm_start_from: Mapped[str | None] = mapped_column(String(200), nullable=True)
    objective: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[StudyState] = mapped_column(checked("studies", "state", StudyState), default=StudyState.RUNNING)
    # Trial numbers handed out so far (enqueued or suggested); the budget is counted against it.
    next_number: Mapped[int] = mapped_column(Integer, default=0)
    # The sanity gate: config, state, figures and verdict (tuneserve_service.diagnosis.SanityResult); NULL if never asked.
    sanity: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # The special run that holds ordinary trials back, None when none (domain/gates.py).
    gate: Mapped[Gate | None] = mapped_column(checked("studies", "gate", Gate), nullable=True)
    # The craft (service/craft): the study this one was refined from or is a later stage of, which
    # stage it is, the fidelity its trials run at, its range test (curve, suggestion, narrowing),
    # and how it was refined from its parent. No ON DELETE on parent_id (SQLite reflects none for a
    # column added later): deleting a parent must clear its children's parent_id first.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", name="fk_studies_parent_id"), nullable=True)
    stage_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fidelity: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    lr_range: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    refine: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # Repeat requests (service/domain/repeats.py): [{source, top_k, seeds, trials, ...}], in order; the
    # trials they enqueued were added to max_trials (repeats are an explicit extra spend).
    repeats: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    # Why a staged study's next stage could not start (e.g. no completed trial to refine around).
    stage_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    trials: Mapped[list[Trial]] = relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_trials_study_number"),
        Index("ix_trials_study_state", "study_id", "state"),
        Index("ix_trials_state_lease", "state", "lease_expires_at"),
        # Recent endings (workers seen in the last minute, for /metrics) without a full scan.
        Index("ix_trials_finished_at", "finished_at"),
        # Covers the dashboard's per-study scans (history, curve selection, counts, best value, last
        # ending): read from the index alone, never from the wide rows that hold the JSON params.
        Index("ix_trials_study_points", "study_id", "number", "state", "value", "last_step", "finished_at"),
        Index("ix_trials_study_config", "study_id", "config_key"),
        # Advice variants (parent_trial_id set, a few per study) for every study read's advice_tried,
        # without reading each trial row of the study.
        Index("ix_trials_parent", "parent_trial_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[TrialState] = mapped_column(checked("trials", "state", TrialState))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)  # flat: dotted names -> values
    # The engine that drew the params (Method), or where they came from (TrialSource).
    method: Mapped[str] = mapped_column(checked("trials", "method"))
    kind: Mapped[TrialKind] = mapped_column(checked("trials", "kind", TrialKind), default=TrialKind.TRIAL,
                                            server_default=TrialKind.TRIAL.value)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # How many times the trial was handed to a worker (each claim is a new run; a release keeps the
    # attempt but not the run). Reports carry it: a later run may rewrite an earlier run's steps.
    runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The lease a running trial is held under; kept on an ended trial so that only the lease that
    # ended it may repeat the ending (idempotent retries), any other gets a 409.
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Who holds the lease: the authenticated identity that claimed it (tuneserve_service.auth.Caller.key),
    # None when the server runs without auth. A fenced call must come from the same identity.
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # False while the trial is a reservation whose params are not drawn yet (see domain/suggest.py):
    # the row exists from the moment its number is taken, so no failure can lose it from the budget.
    drawn: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Seconds since the epoch by the database clock (see db.engine.db_epoch).
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # set when told to stop
    # The reported step at which the pruner decided to stop the trial (the dashboard shows it).
    stop_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fail_kind: Mapped[FailKind | None] = mapped_column(checked("trials", "fail_kind", FailKind), nullable=True)
    fail_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # tuneserve_service.diagnosis.Diagnosis.to_json(), computed when the trial ends.
    diagnosis: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # What the trial trained on (craft.fidelity record) and its configuration without the seed
    # (craft.repeats.config_key), which groups its repeats.
    fidelity: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)
    config_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Set on a trial enqueued from another trial's diagnosis (POST /trials/{id}/try-advice, migration
    # 0012): the diagnosed trial's id and the notch of its variant that was applied (lr_down, ...).
    parent_trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    advice_notch: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Several objectives and constraints (migration 0013, service/domain/core/objectives.py): the
    # objective vector and each constraint's value (<= 0 holds) from the final report, whether all
    # hold and by how much they are exceeded together. NULL for single-objective, unconstrained studies.
    objectives: Mapped[list[Any] | None] = mapped_column(NullableJSON, nullable=True)
    constraint_values: Mapped[list[Any] | None] = mapped_column(NullableJSON, nullable=True)
    feasible: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    violation: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    study: Mapped[Study] = relationship(back_populates="trials")
    reports: Mapped[list[TrialReport]] = relationship(
        back_populates="trial", cascade="all, delete-orphan", passive_deletes=True,
        order_by="TrialReport.step",
    )


class TrialReport(Base):
    __tablename__ = "trial_reports"
    __table_args__ = (UniqueConstraint("trial_id", "step", name="uq_trial_reports_trial_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    # The run of the trial (trials.runs) that stored this step: a repeat from the same run must
    # match, a later run (a retry that started over) replaces it.
    run: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The study metric at this step, when reported and finite; what pruners compare.
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    trial: Mapped[Trial] = relationship(back_populates="reports")


class TrialLog(Base):
    """The tail of a trial's output log, per attempt, as its worker last uploaded it."""

    __tablename__ = "trial_logs"

    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)  # bytes of the whole log on the worker
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrialProvenance(Base):
    """What a trial's latest attempt was, as its worker sent it with its first report (migration 0014):
    versions, code hash, command line, seed, data subset. Apart from trials so the protocol's reads
    and RETURNING of trial rows stay as narrow as they were."""

    __tablename__ = "trial_provenance"

    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONType)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WorkerSeen(Base):
    """Workers that asked for work recently, and what they run: a study with no matching worker
    says so. Written by claims (at most every few seconds per worker)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the worker_id it claims with
    objective: Mapped[str | None] = mapped_column(String(200), nullable=True)  # None: sent none (old client)
    study: Mapped[str | None] = mapped_column(String(200), nullable=True)  # its --study filter
    # Seconds since the epoch by the database clock, like lease times.
    last_seen_at: Mapped[float] = mapped_column(Float)
    # Where it runs (tuneserve.schemas.workers.WorkerIdentity as JSON text): host, Slurm job, pod, GPU.
    identity: Mapped[str | None] = mapped_column(Text, nullable=True)


class ApiToken(Base):
    """A named API token; only the SHA-256 of its secret is stored (service/auth/tokens.py)."""

    __tablename__ = "api_tokens"
    # AUTOINCREMENT on SQLite: ids are never reused, so a lease bound to a revoked token's id can
    # never pass to a token created later.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[Role] = mapped_column(checked("api_tokens", "role", Role))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
