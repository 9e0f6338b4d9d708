"""Wire types of several objectives and constraints: the document's `metrics` and `constraints`
lists, and the Pareto front as read (GET /api/v1/studies/{name}/pareto).

`metrics: [{name, goal}, ...]` is the shape W&B's Launch schedulers take for several objectives;
`constraints: [{name, max} | {name, min}, ...]` bound any reported metric (a range is two entries).
A trial is feasible when every constraint holds on its final metrics.
"""
from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from tuneserve.schemas.enums import Goal

MIN_OBJECTIVES = 2
MAX_OBJECTIVES = 4
MAX_CONSTRAINTS = 8


class ObjectiveSpec(BaseModel):
    """One objective of `metrics`: {name, goal} (goal defaults to minimize, as W&B's)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="A metric the trials report, e.g. val_loss")
    goal: Goal = Goal.MINIMIZE


def _bound(v: Any, key: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PydanticCustomError("number_type", "constraint {key} must be a number, got {got}",
                                  {"key": key, "got": type(v).__name__})
    if not math.isfinite(v):
        raise PydanticCustomError("finite_number", "constraint {key} must be a finite number, got {got}",
                                  {"key": key, "got": repr(v)})
    return float(v)


class ConstraintSpec(BaseModel):
    """One constraint: {name, max} (value <= max) or {name, min} (value >= min), never both."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="A metric the trials report, e.g. latency_ms")
    max: Any = Field(default=None, description="The metric must be <= max")
    min: Any = Field(default=None, description="The metric must be >= min")

    @model_validator(mode="after")
    def _one_bound(self) -> ConstraintSpec:
        self.max = _bound(self.max, "max")
        self.min = _bound(self.min, "min")
        if (self.max is None) == (self.min is None):
            raise PydanticCustomError(
                "constraint_bound", "constraint '{name}' needs exactly one of max or min (got {got}); "
                "a range is two constraints on the same metric",
                {"name": self.name, "got": "both" if self.max is not None else "neither"})
        return self

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, "max" if self.max is not None else "min")


class ConstraintRead(BaseModel):
    name: str
    max: float | None = None
    min: float | None = None


class ParetoPoint(BaseModel):
    trial_id: int
    number: int
    params: dict[str, Any]
    values: list[float] = Field(description="The objective values, in the order of `objectives`")
    rank: int | None = Field(description="Non-domination rank among feasible trials: 1 is the front; "
                                         "None for an infeasible trial")
    feasible: bool
    violation: float | None = Field(description="Sum of the constraints' excess (0: feasible; None: a "
                                                "constrained metric was not reported)")


class ParetoRead(BaseModel):
    study: str
    objectives: list[ObjectiveSpec]
    constraints: list[ConstraintRead]
    front: list[ParetoPoint] = Field(description="The rank-1 trials (the Pareto front among feasible trials)")
    trials: list[ParetoPoint] = Field(description="Every trial with objective values, front first")
    hypervolume: float | None = Field(
        default=None, description="Hypervolume of the front, in objectives normalised over the study's "
                                  "feasible trials (minimisation form, reference point 1.1 in each)")
