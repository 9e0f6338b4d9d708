"""Wire types for trials and the worker protocol (claim, heartbeat, report, complete, fail).

Numbers are strict: a JSON number (or, for metrics, null); the strings "NaN" or "1e309" and the
booleans are refused (422) where a number is expected. JSON's NaN and Infinity *tokens* are
accepted in metric values and in `value`: they are how a diverged run reports itself.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tuneserve.schemas.enums import FailKind, Goal, Method, StopKind, TrialKind, TrialSource, TrialState
from tuneserve.schemas.gates import DiagnosisRead, LrRangeLease, SanityLease, SpecialOutcome
from tuneserve.schemas.provenance import Provenance

TOKEN = Field(min_length=1, max_length=64, description="The lease token from the claim")
WORKER_ID = Field(default="anonymous", min_length=1, max_length=200)

MAX_METRIC_NAME = 128
MAX_METRICS_PER_STEP = 200
MAX_STEPS_PER_REQUEST = 10_000
MAX_STEP = 10_000_000

Number = Annotated[float, Field(strict=True)]
Step = Annotated[int, Field(strict=True, ge=0, le=MAX_STEP)]
# A metric name: printable, at most MAX_METRIC_NAME characters.
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METRIC_NAME, pattern=r"^[^\x00-\x1f\x7f]+$")]
# A metric value: numbers (NaN and infinities allowed: they mean divergence), or null.
MetricValue = Number | None
Metrics = Annotated[dict[MetricName, MetricValue], Field(max_length=MAX_METRICS_PER_STEP)]


class Metric(BaseModel):
    name: str
    goal: Goal


class TrialLease(BaseModel):
    trial_id: int
    study: str
    number: int
    params: dict[str, Any]
    attempt: int
    lease_token: str
    lease_expires_at: datetime
    lease_seconds: float
    metric: Metric
    method: Method | TrialSource
    fidelity: dict[str, Any] | None = Field(
        default=None, description="What this run trains on (epochs, data_fraction, classes, data_seed); a "
                                  "study that manages its fidelity also puts these knobs into `params`")
    kind: TrialKind = Field(default=TrialKind.TRIAL, description="trial, or a special run: sanity | lr_range")
    sanity: SanityLease | None = Field(default=None, description="Set for kind sanity: the check to run")
    lr_range: LrRangeLease | None = Field(default=None, description="Set for kind lr_range: the ramp to run")


class ReportRead(BaseModel):
    step: int
    metrics: dict[str, Any]
    created_at: datetime


class TrialRead(BaseModel):
    id: int
    study: str
    number: int
    state: TrialState
    params: dict[str, Any]
    method: Method | TrialSource = Field(
        description="The engine that drew the params, 'enqueued', 'repeat' (a configuration re-run with another "
                    "seed), or the special run it is (sanity, lr_range)")
    attempt: int
    worker_id: str | None
    value: float | None
    metrics: dict[str, Any]
    last_step: int | None
    stop_reason: str | None
    stop_step: int | None = Field(default=None, description="The step at which the pruner said stop")
    fail_kind: FailKind | None
    fail_reason: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    fidelity: dict[str, Any] | None = Field(
        default=None, description="What the trial trained on (epochs, data_fraction, classes, data_seed): compare "
                                  "values only at the same fidelity")
    config_key: str | None = Field(default=None, description="Its configuration (params without the seed): "
                                                             "repeats share it")
    kind: TrialKind = Field(default=TrialKind.TRIAL, description="trial, or a special run (sanity, lr_range), numbered below zero")
    diagnosis: DiagnosisRead | None = Field(
        default=None, description="What its curves say; provisional while it runs, null before any report")
    parent_trial_id: int | None = Field(
        default=None, description="Set when the trial was enqueued from another trial's advice (try-advice) or "
                                  "as its rerun (POST /trials/{id}/rerun): that trial's id")
    advice_notch: str | None = Field(
        default=None, description="The notch of the parent's variant this trial runs (lr_down, regularise, ...); "
                                  "'rerun' for a rerun")
    rerun_of: int | None = Field(default=None, description="Set on a rerun: the id of the trial it reruns")
    provenance: Provenance | None = Field(
        default=None, description="What is needed to rerun it (versions, code hash, command line, seed, data "
                                  "subset), as its worker sent it; in the read of one trial only")
    objectives: list[float] | None = Field(
        default=None, description="Several objectives: its values, in the study's order, from its final report")
    feasible: bool | None = Field(default=None, description="With constraints: whether they all hold")
    violation: float | None = Field(
        default=None, description="With constraints: the sum of their excess (0 when feasible)")
    reports: list[ReportRead] | None = None


class TrialPage(BaseModel):
    items: list[TrialRead]
    total: int
    limit: int
    offset: int


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    worker_id: str = WORKER_ID
    study: str | None = Field(default=None, max_length=200, description="Claim from this study only")
    objective: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="What this worker runs (`builtin:cnn`, `module:function`, `program`): it is only handed "
        "trials of studies with that objective (or none). Omitted: any study (a client that drives trials itself).")


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=1, ge=1, le=256, strict=True)
    worker_id: str = WORKER_ID


class EnqueueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any]


class LeaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_token: str = TOKEN


class StepReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: Step
    metrics: Metrics


class ReportRequest(BaseModel):
    """One step (`step` + `metrics`) or several at once (`reports`)."""

    model_config = ConfigDict(extra="forbid")
    lease_token: str = TOKEN
    step: Step | None = None
    metrics: Metrics | None = None
    reports: list[StepReport] | None = Field(default=None, min_length=1, max_length=MAX_STEPS_PER_REQUEST)
    provenance: Provenance | None = Field(
        default=None, description="What this run is (versions, code, seed, data): sent once, with an attempt's "
                                  "first report")

    @model_validator(mode="after")
    def _one_form(self) -> "ReportRequest":
        single = self.step is not None or self.metrics is not None
        if single and self.reports is not None:
            raise ValueError("send either step+metrics or reports, not both")
        if not single and self.reports is None:
            raise ValueError("step and metrics are required (or a reports list)")
        if single and (self.step is None or self.metrics is None):
            raise ValueError("step and metrics must be sent together")
        return self

    def steps(self) -> list[StepReport]:
        if self.reports is not None:
            return self.reports
        return [StepReport(step=self.step, metrics=self.metrics)]


class Decision(BaseModel):
    should_stop: bool
    stop_kind: StopKind | None = Field(default=None, description="Why to stop (set whenever should_stop is true)")
    reason: str = Field(default="", description="For people: the stop's explanation; decisions read stop_kind")
    lease_expires_at: datetime | None = None
    diagnosis: DiagnosisRead | None = Field(default=None, description="The trial's provisional diagnosis so far")
    needs_heartbeat: bool = Field(
        default=True, description="On a report's answer: false when the report renewed the lease and a heartbeat "
        "would bring no other news (the study's pruner does not re-judge running trials at heartbeats, as W&B's "
        "hyperband does), so a worker that reports within every third of its lease need not heartbeat")


MAX_RENEWALS = 1000


class LeaseRef(BaseModel):
    """One held lease: the trial and the lease token its claim gave."""

    model_config = ConfigDict(extra="forbid")
    trial_id: int = Field(strict=True, ge=1, le=2**31 - 1)
    lease_token: str = TOKEN


class RenewRequest(BaseModel):
    """Leases to renew in one call (POST /leases/renew): a worker with several slots sends all of its."""

    model_config = ConfigDict(extra="forbid")
    leases: list[LeaseRef] = Field(min_length=1, max_length=MAX_RENEWALS)


class LeaseVerdict(Decision):
    """One lease's answer to a renewal: a heartbeat's Decision, or, when the caller no longer holds
    it, held=false with the error a heartbeat would have answered (409 / 404) and should_stop."""

    trial_id: int
    held: bool = True
    error: str | None = Field(default=None, description="Why it is not held: trial_not_running, "
                                                         "not_lease_holder or trial_not_found")


class RenewResponse(BaseModel):
    leases: list[LeaseVerdict] = Field(description="One verdict per lease sent, in the order sent")


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_token: str = TOKEN
    value: Number | None = None
    metrics: Metrics = Field(default_factory=dict)
    reports: list[StepReport] | None = Field(
        default=None, max_length=MAX_STEPS_PER_REQUEST, description="Per-step reports not sent yet, stored first"
    )
    claim_next: ClaimRequest | None = Field(
        default=None, description="Claim the next trial in the same request"
    )
    outcome: SpecialOutcome | None = Field(
        default=None, description="A special run's result (kind sanity or lr_range); refused on an ordinary trial")
    provenance: Provenance | None = Field(
        default=None, description="What this run is, when no report carried it (a run that reported nothing)")


class CompleteResponse(BaseModel):
    trial: TrialRead
    next: TrialLease | None = None


class FailRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_token: str = TOKEN
    reason: str = Field(default="", max_length=20_000)
    kind: FailKind = Field(default=FailKind.ERROR, description="Why it failed; lease_expired is the server's own")


class PruneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_token: str = TOKEN
    reason: str = Field(default="", max_length=20_000)
