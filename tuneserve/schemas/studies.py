"""Wire types for studies. A W&B sweep document validates as a StudyCreate as it is.

StudyCreate takes every key of W&B's sweep configuration (its JSON schema, src/sweeps/config/
schema.json of W&B's `sweeps` package) with W&B's types, and tuneserve's own keys. A key neither
defines is a 422 whose message lists the keys allowed. What W&B's schema admits but tuneserve
cannot run (`method: custom`, a scheduler that loads a search space from code) is a 422 that says
why. W&B's multi-objective `metrics` list (its Launch schedulers' shape) is accepted with any
method, with tuneserve's `constraints` (tuneserve/schemas/multiobjective.py). The rules that need the whole document (bayes needs a metric,
grid cannot weight values, ...) are checked in tuneserve_service.domain.studies.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tuneserve.schemas import craft
from tuneserve.schemas.gates import AdviceRead, AdviceTriedRead, LrRangeRead, SanityRead
from tuneserve.schemas.multiobjective import (MAX_CONSTRAINTS, MAX_OBJECTIVES, MIN_OBJECTIVES, ConstraintRead,
                                              ConstraintSpec, ObjectiveSpec)
from tuneserve.schemas.enums import Gate, Goal, Method, StudyMethod, StudyState, TrialState
from tuneserve.schemas.trials import TrialRead

# A study's URL name (its slug): what /api/v1/studies/{name} takes.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"
DISPLAY_NAME_MAX = 500


def _json_number(v: Any) -> Any:
    """A JSON number, as W&B's schema means it: not a boolean, not a numeric string, finite."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PydanticCustomError("number_type", "must be a number, got {got}", {"got": type(v).__name__})
    if not math.isfinite(v):
        raise PydanticCustomError("finite_number", "must be a finite number, got {got}", {"got": repr(v)})
    return float(v)


def _json_integer(v: Any) -> Any:
    """A JSON integer as JSON Schema (draft 7) reads it: 5 and 5.0, never 5.1, "5" or true."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise PydanticCustomError("int_type", "must be an integer, got {got}", {"got": repr(v)})
    return int(v)


JsonNumber = Annotated[float, BeforeValidator(_json_number)]
# The budget: W&B's run_cap is a JSON integer > 0.
Budget = Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_json_integer)]


class _Strict(BaseModel):
    """extra="forbid", with the 422 for an unknown key listing the keys this block takes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="wrap")
    @classmethod
    def _list_allowed_keys(cls, data: Any, handler: Any) -> Any:
        data = cls._prepare(data)
        try:
            return handler(data)
        except ValidationError as err:
            if not any(e["type"] == "extra_forbidden" and len(e["loc"]) == 1 for e in err.errors()):
                raise
            allowed = ", ".join(cls.allowed_keys())
            details = []
            for e in err.errors():
                if e["type"] == "extra_forbidden" and len(e["loc"]) == 1:
                    kind = PydanticCustomError(
                        "extra_forbidden", "unknown key '{key}': {owner} takes only: {allowed}",
                        {"key": str(e["loc"][0]), "owner": cls.owner(), "allowed": allowed})
                else:
                    # Passed through unchanged: the message as pydantic wrote it, braces escaped
                    # so that it is not read as a template again.
                    kind = PydanticCustomError(e["type"], e["msg"].replace("{", "{{").replace("}", "}}"))
                details.append(InitErrorDetails(type=kind, loc=e["loc"], input=e.get("input")))
            raise ValidationError.from_exception_data(cls.__name__, details) from None

    @classmethod
    def allowed_keys(cls) -> list[str]:
        keys = []
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            keys.extend(alias.choices if isinstance(alias, AliasChoices) else [field.alias or name])
        return keys

    @classmethod
    def owner(cls) -> str:
        return "this block"

    @classmethod
    def _prepare(cls, data: Any) -> Any:
        """Checks that must run before field validation; raise with `_error(loc, message)`."""
        return data


def _error(loc: tuple, kind: str, message: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "StudyCreate", [InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=None)])


class MetricSpec(_Strict):
    """W&B's `metric`: name, goal, target, impute, impute_while_running."""

    name: str = Field(min_length=1, max_length=200, description="The metric workers report, e.g. val_loss")
    goal: Goal = Goal.MINIMIZE
    target: JsonNumber | None = Field(
        default=None, description="The study finishes once a trial completes at or beyond this value "
                                  "(<= for minimize, >= for maximize)")
    impute: Literal["latest", "best", "worst"] | None = Field(
        default=None, description="Value the model-based engines give failed, diverged and pruned "
                                  "trials (W&B: runs that fail, crash or are killed); unset: tuneserve's "
                                  "default (failed below every result, pruned at their last value)")
    impute_while_running: Literal["latest", "best", "worst", "false"] | None = Field(
        default=None, description="Whether the model-based engines learn from running trials' reports "
                                  "(their best value so far) instead of treating them as pending")

    @classmethod
    def owner(cls) -> str:
        return "metric"


class ControllerSpec(BaseModel):
    """W&B's `controller`: where W&B's controller runs. Kept; tuneserve's server is the controller."""

    model_config = ConfigDict(extra="allow")

    type: Literal["local", "cloud"]


class SchedulerSpec(_Strict):
    """W&B Launch's `scheduler`. Only the `wandb` engine exists in W&B's validator; here it means
    what it means there: the standard engine of `method` over `parameters`."""

    engine: Literal["optuna", "ax", "wandb"]
    source: str | None = None
    optimizer: str | None = None
    search_space: str | None = None

    @classmethod
    def owner(cls) -> str:
        return "scheduler"

    @model_validator(mode="after")
    def _wandb_rules(self) -> SchedulerSpec:
        for key in ("optimizer", "search_space"):
            if getattr(self, key) is not None and self.source is None:
                raise PydanticCustomError("scheduler_source", f"scheduler.{key} needs scheduler.source (W&B's schema)")
        if self.engine != "wandb":
            raise PydanticCustomError(
                "scheduler_engine", f"scheduler.engine {self.engine!r} is not supported (W&B supports only "
                f"'wandb', its standard engine; tuneserve's engines are chosen with `method`)")
        return self


class StudyCreate(_Strict):
    """A study document: a W&B sweep configuration, plus tuneserve's own keys."""

    # W&B's keys.
    name: str | None = Field(
        default=None, max_length=DISPLAY_NAME_MAX,
        description="The study's name. A URL-safe name (letters, digits, '_', '-', '.') is its URL name and "
                    "must be unique (409 when taken); any other text is a display name, and the study's URL "
                    "name is a slug made from it (a suffix -2, -3, ... when taken). None: a generated name")
    description: str = Field(default="", max_length=10_000)
    method: StudyMethod = Field(
        default=StudyMethod.RANDOM,
        description="random | grid | bayes (W&B's; runs on gp or tpe, see StudyRead.engine) | tpe | "
                    "tpe_hyperopt | gp | botorch (needs the server extra [botorch]). W&B requires it; "
                    "tuneserve defaults to random")
    metric: MetricSpec | None = Field(default=None, description="Default: val_loss, minimize")
    parameters: dict[str, Any] = Field(description="A W&B sweep `parameters` block")
    max_trials: Budget | None = Field(
        default=None, validation_alias=AliasChoices("max_trials", "run_cap"),
        description="The trial budget (W&B: run_cap)")
    early_terminate: dict[str, Any] | None = Field(
        default=None, description="W&B's block: {type: hyperband, min_iter | max_iter and s, eta, strict}")
    program: str | None = Field(default=None, description="W&B: the training script a worker runs")
    command: list[Any] | None = Field(default=None, description="W&B: the command line, with ${...} macros")
    project: str | None = None
    entity: str | None = None
    controller: ControllerSpec | None = Field(default=None, description="W&B's controller; kept, not used")
    scheduler: SchedulerSpec | None = Field(default=None, description="W&B Launch: only {engine: wandb}")
    job: str | None = Field(default=None, description="W&B Launch job; kept, not used")
    image_uri: str | None = Field(default=None, description="W&B Launch image; kept, not used")
    apiVersion: str | None = None
    kind: Literal["sweep"] | None = None
    metrics: list[ObjectiveSpec] | None = Field(
        default=None, description="Several objectives: [{name, goal}, ...], 2 to 4 (W&B Launch's list); with "
                                  "`metric` too, that one is the first objective")
    constraints: list[ConstraintSpec] | None = Field(
        default=None, max_length=MAX_CONSTRAINTS,
        description="[{name, max} | {name, min}, ...] on any reported metric: the best is the best feasible trial")

    # tuneserve's keys; strict: numbers only, never "10" or true.
    max_concurrent: int | None = Field(default=None, ge=1, le=100_000, strict=True)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, strict=True)
    lease_seconds: float = Field(default=60.0, ge=1.0, le=86_400.0, strict=True)
    max_retries: int = Field(default=2, ge=0, le=100, strict=True)
    pruner: dict[str, Any] | None = Field(
        default=None, description='Native pruner, e.g. {"type": "asha", "grace_period": 2}')
    warm_start_from: str | None = Field(default=None, pattern=NAME_PATTERN)
    objective: str = Field(default="", max_length=200)
    # The craft's keys, validated by service/craft (errors name the path, e.g. stages[1].refine.top_k).
    fidelity: dict[str, Any] | None = Field(
        default=None, description="What every trial trains on: {epochs, data_fraction, classes, data_seed}; "
                                  "handed to each trial with its params and recorded on it")
    stages: list[Any] | None = Field(
        default=None, description="Coarse to fine: [{trials, epochs?, data_fraction?, classes?, method?, "
                                   "refine?: {top_k, margin, min_fraction, rerun_top}, repeat_top?}, ...]; each "
                                   "stage is a study that starts when the previous one ends")
    repeat_top: Any = Field(
        default=None, description="{top_k, seeds}: once the budget is spent, re-run the top configurations "
                                  "with other seeds (an extra spend on top of max_trials)")
    # The gates (service/domain/gates.py): special runs before the first ordinary trial.
    sanity: Any = Field(
        default=None, description="The sanity gate: true or {samples: 64, max_epochs: 100, sweep: false}; before "
                                  "any trial one worker checks that the largest model can overfit `samples` examples")
    lr_range_test: Any = Field(
        default=None, description="true or {start_lr, end_lr, steps, apply, rule}: a learning-rate range test "
                                  "before the first trial (after the sanity check); `apply` narrows the lr by itself")
    objective_features: list[Literal["lr_range_test"]] = Field(
        default_factory=list, max_length=8,
        description="What a user objective (module:function or program) supports beyond trials: "
                    "`lr_range_test` when it follows context.lr_range. The built-in trainer supports everything")

    @classmethod
    def owner(cls) -> str:
        return "a study document (W&B's sweep keys and tuneserve's)"

    @classmethod
    def _prepare(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "max_trials" in data and "run_cap" in data:
            if data["max_trials"] != data["run_cap"] or type(data["max_trials"]) is not type(data["run_cap"]):
                raise _error(("run_cap",), "budget_conflict", "give max_trials or run_cap (the same budget), "
                             "not both with different values")
            data = {k: v for k, v in data.items() if k != "run_cap"}
        scheduler = data.get("scheduler")
        if "parameters" not in data and isinstance(scheduler, dict) and scheduler.get("search_space"):
            raise _error(("parameters",), "missing", "`parameters` is required: tuneserve does not load a search "
                         "space from code (scheduler.search_space is for a W&B Launch scheduler)")
        return data

    @field_validator("method", mode="before")
    @classmethod
    def _no_custom(cls, v: Any) -> Any:
        if v == "custom":
            raise PydanticCustomError(
                "custom_method", "method 'custom' means a W&B Launch custom scheduler with its own optimizer, "
                "which tuneserve does not run; use random, grid, bayes, tpe, tpe_hyperopt, gp or botorch")
        return v

    @field_validator("metrics")
    @classmethod
    def _objectives(cls, v: list[ObjectiveSpec] | None) -> list[ObjectiveSpec] | None:
        if v is None:
            return v
        names = [m.name for m in v]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise PydanticCustomError("duplicate_objective", "objective '{name}' is listed twice in metrics",
                                      {"name": dup})
        if len(v) > MAX_OBJECTIVES:
            raise PydanticCustomError("objective_count", "metrics takes at most {most} objectives, got {got}",
                                      {"most": MAX_OBJECTIVES, "got": len(v)})
        return v

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, v: list[ConstraintSpec] | None) -> list[ConstraintSpec] | None:
        if v is None:
            return v
        keys = [c.key for c in v]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            raise PydanticCustomError("duplicate_constraint", "constraint '{name}' gives {side} twice",
                                      {"name": dup[0], "side": dup[1]})
        if not v:
            raise PydanticCustomError("constraint_count", "constraints is empty: leave it out or give at least one")
        return v

    @model_validator(mode="after")
    def _metric_and_metrics(self) -> StudyCreate:
        if self.metrics is None:
            return self
        names = [m.name for m in self.metrics]
        total = len(self.metrics) + (self.metric is not None)
        if self.metric is not None and self.metric.name in names:
            raise _error(("metrics",), "duplicate_objective",
                         f"objective {self.metric.name!r} is both `metric` and in `metrics`: name it once")
        if total < MIN_OBJECTIVES:
            raise _error(("metrics",), "objective_count",
                         f"metrics needs {MIN_OBJECTIVES} to {MAX_OBJECTIVES} objectives, got {total}; "
                         "a single objective is `metric: {{name, goal}}`")
        if total > MAX_OBJECTIVES:
            raise _error(("metrics",), "objective_count",
                         f"at most {MAX_OBJECTIVES} objectives (`metric` and `metrics` together), got {total}")
        if self.metric is not None and (self.metric.impute or self.metric.impute_while_running):
            raise _error(("metric", "impute"), "multi_objective_impute",
                         "impute and impute_while_running apply to a single objective: leave them out with `metrics`")
        return self

    def objective_list(self) -> list[ObjectiveSpec]:
        """The objectives in order: `metric` first when given, then `metrics` (one when single-objective)."""
        first = [ObjectiveSpec(name=self.metric.name, goal=self.metric.goal)] if self.metric is not None else []
        return first + list(self.metrics or [])



# How many trials are in each state (one field per TrialState, so a state added there is counted
# here), and the total.
TrialCounts = create_model(
    "TrialCounts", __module__=__name__, **{state.value: (int, 0) for state in TrialState}, total=(int, 0))


class MetricRead(BaseModel):
    name: str
    goal: Goal
    target: float | None = None
    impute: str | None = None
    impute_while_running: str | None = None


class StudyRead(BaseModel):
    id: int
    name: str = Field(description="The study's URL name (its unique slug): /api/v1/studies/{name}")
    display_name: str = Field(description="The name as the document gave it (or the generated one)")
    description: str
    method: StudyMethod = Field(description="The method the document asked for")
    engine: Method = Field(description="The engine that draws the trials (bayes runs on gp or tpe)")
    metric: MetricRead
    state: StudyState
    parameters: dict[str, Any]
    max_trials: int | None
    max_concurrent: int | None
    seed: int
    lease_seconds: float
    max_retries: int
    pruner: dict[str, Any]
    warm_start_from: str | None
    objective: str = Field(description="What runs its trials: `program`, `builtin:cnn`, a `module:function`, or '' (any)")
    program: str | None = Field(default=None, description="The W&B sweep's `program`, run by `tuneserve worker --study`")
    command: list[Any] | None = Field(
        default=None, description="The W&B sweep's `command` (its ${...} macros as `wandb agent` expands them)")
    project: str | None = None
    entity: str | None = None
    runnable_by_workers: int = Field(
        default=0, description="Workers that can run this study: seen claiming in the last 120 s, or holding its trials")
    runner_warning: str | None = Field(default=None, description="Set while the study runs with no such worker")
    target_reached_by: int | None = Field(
        default=None, description="The trial number whose value reached metric.target (the study then finished)")
    trials_created: int
    counts: TrialCounts
    best_trial: TrialRead | None = Field(
        description="The best completed trial at the study's top fidelity; once any configuration has "
                    "repeats, the best run of the noise-aware best configuration (best_configuration). "
                    "With constraints: the best feasible trial, or the least infeasible one while none is "
                    "feasible (best_is_feasible false). With several objectives: the front's trial best "
                    "in the first objective (the whole front: GET /studies/{name}/pareto)")
    # Several objectives and constraints (service/domain/features/multiobjective.py).
    objectives: list[ObjectiveSpec] = Field(
        default_factory=list, description="The objectives, in order (empty: the single `metric`)")
    constraints: list[ConstraintRead] = Field(default_factory=list, description="The constraints (empty: none)")
    best_is_feasible: bool | None = Field(
        default=None, description="With constraints: whether best_trial satisfies them all (null: no constraints)")
    pareto_front: list[dict[str, Any]] | None = Field(
        default=None, description="With several objectives: the front's trials {trial_id, number, values}")
    pruning_note: str | None = Field(
        default=None, description="With several objectives: pruners compare the first objective only")
    # The craft (service/domain/refine.py, stages.py, repeats.py, fidelity.py).
    parent: craft.StudyLink | None = Field(default=None, description="The study this one was refined from or follows as a stage")
    children: list[craft.StudyLink] = Field(default_factory=list, description="Studies refined from this one, and its next stage")
    stage_index: int | None = Field(default=None, description="Which stage of a staged study this is (0: the first)")
    stages: list[craft.StageRead] | None = Field(default=None, description="The staged study's timeline (null: not staged)")
    active_stage: str | None = Field(default=None, description="The stage study that hands out trials now")
    stage_note: str | None = Field(default=None, description="Why the next stage could not start")
    fidelity: dict[str, Any] | None = Field(
        default=None, description="What every trial of this study trains on (epochs, data_fraction, classes, "
                                  "data_seed); null when the study manages none")
    fidelity_label: str | None = None
    refine: dict[str, Any] | None = Field(default=None, description="How this study was refined from its parent")
    repeats: list[dict[str, Any]] = Field(default_factory=list, description="Repeat requests, in order")
    best_configuration: craft.BestConfiguration | None = Field(
        default=None, description="The noise-aware best configuration and how sure that is")
    repeat_groups: list[craft.RepeatGroupRead] = Field(
        default_factory=list, description="Configurations run more than once, with mean and std")
    # The gates and the diagnoses (service/domain/gates.py, service/diagnosis).
    gate: Gate | None = Field(
        default=None, description="The special run holding ordinary trials back now (null: none)")
    sanity: SanityRead | None = Field(default=None, description="The sanity gate (null: never asked)")
    lr_range: LrRangeRead | None = Field(default=None, description="The learning-rate range test (null: never run)")
    advice: list[AdviceRead] = Field(default_factory=list, description="What the trials together suggest, most urgent first")
    advice_tried: AdviceTriedRead = Field(
        default_factory=AdviceTriedRead, description="Trials' advice run as variants (try-advice): how often it helped")
    created_at: datetime
    updated_at: datetime
