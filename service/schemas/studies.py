"""Wire types for studies. A W&B sweep document validates as a StudyCreate as it is."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from service.schemas.enums import StudyState
from service.schemas.trials import TrialRead

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"


class MetricSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="val_loss", min_length=1, max_length=200)
    goal: Literal["minimize", "maximize"] = "minimize"


# Keys of a W&B sweep document that describe how W&B launches runs; tuneserve keeps them in the
# stored config and otherwise ignores them, so a sweep file can be pasted as it is.
WANDB_IGNORED_KEYS = ("program", "command", "project", "entity", "controller", "name_prefix", "job", "image_uri")


class StudyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique; letters, digits, '_', '-', '.'")
    description: str = Field(default="", max_length=10_000)
    method: str = Field(default="random", description="random | grid | tpe | tpe_hyperopt | gp")
    metric: MetricSpec = Field(default_factory=MetricSpec)
    parameters: dict[str, Any] = Field(description="A W&B sweep `parameters` block")
    # strict: numbers only, never "10" or true (issue 8).
    max_trials: int | None = Field(
        default=None, ge=1, le=1_000_000, validation_alias=AliasChoices("max_trials", "run_cap"), strict=True
    )
    max_concurrent: int | None = Field(default=None, ge=1, le=100_000, strict=True)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, strict=True)
    lease_seconds: float = Field(default=60.0, ge=1.0, le=86_400.0, strict=True)
    max_retries: int = Field(default=2, ge=0, le=100, strict=True)
    early_terminate: dict[str, Any] | None = Field(default=None, description="A W&B early_terminate block")
    pruner: dict[str, Any] | None = Field(
        default=None, description='Native pruner, e.g. {"type": "asha", "grace_period": 2}'
    )
    warm_start_from: str | None = Field(default=None, pattern=NAME_PATTERN)
    objective: str = Field(default="", max_length=200)
    # W&B launch keys: accepted and kept, not used.
    program: Any = None
    command: Any = None
    project: Any = None
    entity: Any = None
    controller: Any = None
    name_prefix: Any = None
    job: Any = None
    image_uri: Any = None

    @field_validator("method")
    @classmethod
    def _method_lower(cls, v: str) -> str:
        return v.strip().lower()


class TrialCounts(BaseModel):
    waiting: int = 0
    running: int = 0
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    diverged: int = 0
    total: int = 0


class StudyRead(BaseModel):
    id: int
    name: str
    description: str
    method: str
    metric: MetricSpec
    state: StudyState
    parameters: dict[str, Any]
    max_trials: int | None
    max_concurrent: int | None
    seed: int
    lease_seconds: float
    max_retries: int
    pruner: dict[str, Any]
    warm_start_from: str | None
    objective: str
    trials_created: int
    counts: TrialCounts
    best_trial: TrialRead | None
    created_at: datetime
    updated_at: datetime
