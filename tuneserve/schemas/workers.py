"""Wire types for a worker's identity: where it runs (host, scheduler job, pod) and on what GPU, so a
trial on the dashboard or in `tuneserve trial show` says which machine and which Slurm job or
Kubernetes pod ran it. A worker sends it once when it starts (PUT /api/v1/workers/{worker_id})."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_SHORT = {"max_length": 200}


class WorkerIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str | None = Field(default=None, **_SHORT, description="Hostname the worker runs on")
    scheduler: str | None = Field(default=None, max_length=40, description="slurm | kubernetes | None (started by hand)")
    job_id: str | None = Field(default=None, **_SHORT,
                               description="Slurm: ARRAYJOB_TASK (or the job id); with its restart count after a requeue")
    pod: str | None = Field(default=None, **_SHORT, description="Kubernetes pod name (downward API)")
    node: str | None = Field(default=None, **_SHORT, description="Kubernetes node name (downward API)")
    gpu: str | None = Field(default=None, max_length=400, description="GPU model(s) the worker trains on, or None (CPU)")
    device: str | None = Field(default=None, max_length=40, description="cpu | cuda:N | auto")
    slots: int | None = Field(default=None, ge=1, le=1024, description="Trials this process's supervisor runs at once")
    pid: int | None = Field(default=None, ge=0)


class WorkerRead(BaseModel):
    id: str
    objective: str | None = None
    study: str | None = None
    last_seen_at: float | None = Field(default=None, description="Seconds since the epoch, database clock")
    identity: WorkerIdentity | None = None
