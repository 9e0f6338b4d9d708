"""Request and response bodies of the craft's routes: POST /studies/{name}/refine and /repeat.

Numbers are strict (JSON numbers, never "5" or true), like the rest of the API; the rules that need
the study (top_k against its completed trials, ...) are checked in service/domain/refine.py and
repeats.py and answered as 4xx naming the field.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tuneserve.schemas.craft import RepeatGroupRead
from tuneserve.schemas.enums import StudyMethod
from tuneserve.schemas.studies import NAME_PATTERN
from tuneserve.schemas.trials import TrialRead

MAX_SEEDS = 100


class RefineRequest(BaseModel):
    """POST /studies/{name}/refine: a child study around the parent's top k trials."""

    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(default=5, ge=1, le=1000, strict=True,
                       description="Refine around this many of the parent's best completed trials (at its top fidelity)")
    max_trials: int = Field(ge=1, le=1_000_000, strict=True, description="The child's own budget")
    name: str | None = Field(default=None, pattern=NAME_PATTERN,
                             description="The child's URL name (default: <parent>-refined, -2, -3, ...)")
    method: StudyMethod | None = Field(default=None, description="The child's method (default: the parent's)")
    margin: float = Field(default=0.25, ge=0.0, le=100.0, strict=True,
                          description="Widen each numeric span by this share of its width on each side")
    min_fraction: float = Field(default=0.1, gt=0.0, le=1.0, strict=True,
                                description="A numeric range keeps at least this share of the parent's width")
    epochs: int | None = Field(default=None, ge=1, le=100_000, strict=True,
                               description="The child's epochs (default: the objective's own)")
    data_fraction: float | None = Field(default=None, gt=0.0, le=1.0, strict=True,
                                        description="The child's share of the training data (default: all of it)")
    classes: int | None = Field(default=None, ge=2, le=100_000, strict=True,
                                description="Train and validate on this many classes (default: every class)")
    rerun_top: bool = Field(default=True, description="Run the top k configurations first in the child, at its "
                                                      "fidelity (they count toward its budget)")
    max_concurrent: int | None = Field(default=None, ge=1, le=100_000, strict=True)


class RepeatRequest(BaseModel):
    """POST /studies/{name}/repeat: re-run the top configurations with other seeds."""

    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(default=3, ge=1, le=1000, strict=True,
                       description="Repeat this many configurations, best first (noise-aware ranking)")
    seeds: int = Field(default=3, ge=1, le=MAX_SEEDS, strict=True, description="New seeds per configuration")


class RepeatResponse(BaseModel):
    trials: list[TrialRead] = Field(description="The trials enqueued, each with its configuration's config_key")
    configurations: list[RepeatGroupRead] = Field(description="The configurations repeated, best first")
    max_trials: int | None = Field(description="The study's budget after the repeats were added to it")


