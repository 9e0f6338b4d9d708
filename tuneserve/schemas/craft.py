"""Wire types of the craft's fields on a study: lineage, stages, fidelity, repeat groups and the
noise-aware best (the request bodies are in craft_requests.py, which needs the study types).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainSerializer, TypeAdapter, WithJsonSchema

from tuneserve.schemas.enums import StageState, StudyMethod, StudyState


class RepeatGroupRead(BaseModel):
    """One configuration (params without the seed) and its runs."""

    key: str = Field(description="The configuration's key (trials.config_key)")
    params: dict[str, Any]
    trials: list[int] = Field(description="Trial numbers of every run of it")
    count: int = Field(description="Completed runs")
    mean: float | None
    std: float | None = Field(description="Sample standard deviation; null below two completed runs")
    failures: int = Field(description="Failed or diverged runs")


class BestConfiguration(BaseModel):
    """The noise-aware best (service/craft/repeats.py): configurations ranked by mean + z * sigma /
    sqrt(n) over their repeats (sigma pooled over the study), failures last."""

    key: str
    params: dict[str, Any]
    mean: float
    std: float | None
    count: int
    trials: list[int]
    failures: int
    runner_up: RepeatGroupRead | None
    p_best_over_runner_up: float | None = Field(
        description="P(the best's true mean beats the runner-up's), Student's t with the pooled sigma; "
                    "null until some configuration has two completed runs")
    noise_sigma: float | None = Field(description="Run-to-run standard deviation pooled over configurations")
    noise_df: int
    statement: str = Field(description="The answer in one sentence")
    fidelity: dict[str, Any] | None = Field(default=None, description="The fidelity the runs compared were at")


class StudyLink(BaseModel):
    name: str
    state: StudyState
    stage_index: int | None = None
    relation: Literal["refine", "stage"] = Field(description="How the child was made from its parent")


class StageRead(BaseModel):
    """One stage of a staged study: its plan and, once started, its study."""

    index: int
    trials: int = Field(description="The stage's search budget")
    fidelity: dict[str, Any]
    fidelity_label: str
    refine: dict[str, Any] | None = None
    repeat_top: dict[str, Any] | None = None
    method: StudyMethod | None = None
    study: str | None = Field(default=None, description="The stage's study, null until it starts")
    # A stage's timeline is built with model_copy(update=...), which does not validate, so the value
    # may be the study's StudyState member or a plain string: serialized as its text, published as
    # the StageState enum.
    state: Annotated[StageState, PlainSerializer(str, return_type=str),
                     WithJsonSchema(TypeAdapter(StageState).json_schema())] = StageState.PENDING
    ended: int = 0
    total: int = 0
    best_value: float | None = None
