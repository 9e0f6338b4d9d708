"""The names that travel on the wire and in the database: study and trial states, fail kinds and
optimizer methods. One StrEnum each, shared by the models, the wire types (so OpenAPI lists the
values) and the worker SDK; a member compares equal to its string, so stored rows need no mapping.
"""
from __future__ import annotations

from enum import StrEnum


class TrialState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"
    DIVERGED = "diverged"


# A trial that may still produce a result: pending for the optimizers, active for the budget.
ACTIVE_STATES = (TrialState.WAITING, TrialState.RUNNING)
ENDED_STATES = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED, TrialState.DIVERGED)
# Ended with a value the optimizers learn from as it is (failed and diverged count as worse than any).
VALUED_STATES = (TrialState.COMPLETED, TrialState.PRUNED)


class StudyState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"


class StopKind(StrEnum):
    """Why a report's or heartbeat's answer says stop: what the worker does next depends on it, never
    on the wording of the reason."""

    PRUNE = "prune"        # a pruner (or a reached target) told it to stop: the worker calls /prune
    DIVERGED = "diverged"  # the server has already ended the trial as diverged: nothing more to send
    STUDY = "study"        # the study is paused, stopped or finished: the worker prunes and moves on


class FailKind(StrEnum):
    ERROR = "error"
    DIVERGED = "diverged"
    OOM = "oom"
    TIMEOUT = "timeout"
    KILLED = "killed"
    INVALID_PARAMS = "invalid_params"
    LEASE_EXPIRED = "lease_expired"
    OTHER = "other"


class Method(StrEnum):
    """An engine that draws parameters (what a trial records it was drawn by)."""

    RANDOM = "random"
    GRID = "grid"
    TPE = "tpe"
    TPE_HYPEROPT = "tpe_hyperopt"
    GP = "gp"


class TrialKind(StrEnum):
    TRIAL = "trial"      # an ordinary trial of the study's search
    SANITY = "sanity"    # the sanity gate's run (service/diagnosis/sanity.py)
    LR_RANGE = "lr_range"  # a learning-rate range test (service/craft/lr_range.py)


class DiagnosisLabel(StrEnum):
    """What a trial's curves say (service/diagnosis)."""

    HEALTHY = "healthy"
    DIVERGED = "diverged"
    LR_TOO_HIGH = "lr_too_high"
    LR_TOO_LOW = "lr_too_low"
    PLATEAU = "plateau"
    OVERFITTING = "overfitting"
    UNDERFITTING = "underfitting"
    NOISY = "noisy"
    INSUFFICIENT = "insufficient"  # too short or too noisy to judge: no fault named


class DiagnosisCause(StrEnum):
    """The likely cause of a divergence (NaN, inf or an exploded loss)."""

    LR_TOO_HIGH = "lr_too_high"   # the loss rose from the first epochs, the gradient norm grew
    BAD_DATA = "bad_data"         # NaN before any update: NaN or inf in the inputs
    BAD_SCALE = "bad_scale"       # a first loss far above ln(C): inputs or initial weights too large


class SanityState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class LrRangeState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"        # a curve and a suggestion
    FAILED = "failed"    # no usable curve (the run failed, or the loss never fell): the space is unchanged
    NOT_RUN = "not_run"  # no range test: the lr was narrowed by hand


class StudyMethod(StrEnum):
    """What a study document may ask for: every engine, and W&B's `bayes`, which the service maps
    onto one of its model-based engines (optimizers.registry.resolve_engine)."""

    RANDOM = "random"
    GRID = "grid"
    BAYES = "bayes"
    TPE = "tpe"
    TPE_HYPEROPT = "tpe_hyperopt"
    GP = "gp"
