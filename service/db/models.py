"""SQLAlchemy 2 models: studies, trials, their per-step reports, and API tokens.

The schema changes only through Alembic migrations in migrations/; tests compare these models with
the migrated database so a missing migration fails CI.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    metric_name: Mapped[str] = mapped_column(String(200))
    goal: Mapped[str] = mapped_column(String(16))  # minimize | maximize
    method: Mapped[str] = mapped_column(String(32))
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
    # running | paused | stopped | finished
    state: Mapped[str] = mapped_column(String(16), default="running")
    # Trial numbers handed out so far (enqueued or suggested); the budget is counted against it.
    next_number: Mapped[int] = mapped_column(Integer, default=0)
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
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    # waiting | running | completed | pruned | failed | diverged
    state: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)  # flat: dotted names -> values
    method: Mapped[str] = mapped_column(String(32))  # engine that produced the params, or "enqueued"
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # How many times the trial was handed to a worker (each claim is a new run; a release keeps the
    # attempt but not the run). Reports carry it: a later run may rewrite an earlier run's steps.
    runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The lease a running trial is held under; kept on an ended trial so that only the lease that
    # ended it may repeat the ending (idempotent retries), any other gets a 409.
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Who holds the lease: the authenticated identity that claimed it (service.auth.Caller.key),
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
    fail_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fail_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
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


class ApiToken(Base):
    """A named API token; only the SHA-256 of its secret is stored (service/auth/tokens.py)."""

    __tablename__ = "api_tokens"
    # AUTOINCREMENT on SQLite: ids are never reused, so a lease bound to a revoked token's id can
    # never pass to a token created later.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | worker (service.auth.tokens.Role)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
