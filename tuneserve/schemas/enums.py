"""The names that travel on the wire and in the database, each list of values defined here once:
study and trial states, trial kinds and methods, fail kinds, goals, gates, token roles, diagnosis
labels and advice kinds. One StrEnum each, shared by the models (enum-typed columns that the
database checks, migration 0010), the wire types (so OpenAPI publishes each as a named schema, and
the dashboard reads its value lists from there) and the client; a member compares equal to its
string, so stored rows and existing comparisons need no mapping.
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


# A stage of a staged study: its study's state once it has one, pending before (derived, so a study
# state added later is a stage state too).
StageState = StrEnum("StageState", [("PENDING", "pending"), *((m.name, m.value) for m in StudyState)])
StageState.__doc__ = "A stage's state: pending until its study starts, then that study's state."
StageState.__module__ = __name__


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
    BOTORCH = "botorch"   # needs the server extra [botorch] (optimizers/botorch_engine.py)


class TrialSource(StrEnum):
    """Where a trial's params came from when no engine drew them (trials.method holds a Method or one
    of these)."""

    ENQUEUED = "enqueued"  # given by hand (POST /studies/{name}/trials) or by a refine
    REPEAT = "repeat"      # a configuration re-run with another seed (domain/repeats.py)
    SANITY = "sanity"      # the sanity gate's run
    LR_RANGE = "lr_range"  # a learning-rate range test


class Goal(StrEnum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class Gate(StrEnum):
    """The special run holding a study's ordinary trials back (studies.gate; NULL when none)."""

    SANITY = "sanity"
    LR_RANGE = "lr_range"


class Role(StrEnum):
    """admin: everything. worker: read, and claim / ask / heartbeat / report / end trials."""

    ADMIN = "admin"
    WORKER = "worker"


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


class AdviceKind(StrEnum):
    """One line of study-level advice: a rule over the trials (service/diagnosis/study.py says what
    each means) or the state of a gate (service/domain/gates.py)."""

    PIPELINE = "pipeline"
    RANGE_DIVERGES = "range_diverges"
    RANGE_TOO_LOW = "range_too_low"
    VALUE_DIVERGES = "value_diverges"
    EDGE_OF_RANGE = "edge_of_range"
    COMMON_LABEL = "common_label"
    TRIAL_FAULTS = "trial_faults"            # trials with a confident fault no other line covers
    SANITY_SKIPPED = "sanity_skipped"        # the objective cannot run the sanity check
    SANITY_FAILED = "sanity_failed"          # the check failed: the study is paused
    SANITY_OVERRIDDEN = "sanity_overridden"  # it failed and the study was resumed over it
    LR_RANGE = "lr_range"                    # a range test suggestion not applied yet
    LR_RANGE_FAILED = "lr_range_failed"      # the range test gave no usable curve


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
    BOTORCH = "botorch"   # needs the server extra [botorch] (optimizers/botorch_engine.py)
