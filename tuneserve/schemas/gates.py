"""Wire types of the gates and the diagnoses: the sanity check, the learning-rate range test (special
runs a worker is leased like a trial), each trial's diagnosis and the study's advice.

The rules behind them are pure modules: service/diagnosis (diagnosis, advice, sanity verdict) and
service/craft/lr_range.py (suggestion, narrowing); service/domain/gates.py wires them to the store.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneserve.schemas.enums import AdviceKind, DiagnosisCause, DiagnosisLabel, LrRangeState, SanityState


# ---- what a worker is handed and sends back for a special run ----------------------------------

class SanityLease(BaseModel):
    """The sanity check a lease of kind `sanity` asks for (tuneserve_workers.training.objective.SanityRequest)."""

    samples: int = Field(description="Fit this many training examples (stratified over the classes)")
    max_epochs: int = Field(description="Give up after this many epochs")
    lrs: list[float] = Field(default_factory=list, description="Learning rates to try in order (empty: the params' own)")


class LrRangeLease(BaseModel):
    """The range test a lease of kind `lr_range` asks for (tuneserve_workers.training.lr_range.lr_range_test)."""

    start_lr: float
    end_lr: float
    steps: int = Field(description="Mini-batches: the lr grows geometrically from start_lr to end_lr over them")


class SpecialOutcome(BaseModel):
    """`outcome` on complete for a special run. Sanity: `figures` beyond the reports (input_std, ...).
    Range test: `curve` {lr: [...], loss: [...]} one point per mini-batch. `supported` false: the
    objective cannot run it (`message` says why); the sanity gate is then skipped with a warning."""

    model_config = ConfigDict(extra="forbid")
    supported: bool = True
    figures: dict[str, float | None] = Field(default_factory=dict, max_length=200)
    curve: dict[str, list[float | None]] | None = Field(
        default=None, description="The range test's curve: equal-length `lr` and `loss` lists (other keys kept)")
    message: str = Field(default="", max_length=20_000)


# ---- what a study and a trial show ------------------------------------------------------------

class VariantRead(BaseModel):
    """The run a diagnosis proposes: the trial's params with one notch of one knob changed
    (service/diagnosis/variant.py). `POST /trials/{id}/try-advice` enqueues it."""

    params_change: dict[str, Any] = Field(description="The change, as params (nested like the trial's)")
    why: str = Field(default="", description="What it changes and why, in words")
    notch: str = Field(default="", description="The change's stable id: lr_down, lr_up, regularise, wider, ...")
    params: dict[str, Any] | None = Field(
        default=None, description="The params it would run: the trial's with the change applied (a single "
                                  "trial's read fills it in)")


class DiagnosisRead(BaseModel):
    """What a trial's curves say (service/diagnosis/trial.py)."""

    label: DiagnosisLabel
    cause: DiagnosisCause | None = Field(default=None, description="The likely cause of a NaN or an explosion")
    evidence: dict[str, Any] = Field(default_factory=dict, description="The figures and epochs behind the label")
    advice: str = Field(description="One sentence a user can act on")
    provisional: bool = Field(default=False, description="True while the trial still runs")
    step: int | None = Field(default=None, description="The last reported step it read")
    confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="How sure the rule is (0..1); study advice counts a label only "
                                                  "at 0.6 or more. Null: stored before confidences existed")
    rule: str | None = Field(default=None, description="The stable id of the rule that fired, e.g. overfitting.val_rise")
    variant: VariantRead | None = Field(
        default=None, description="The change to try (none for healthy, insufficient, or a data problem)")


class AdviceRead(BaseModel):
    """Study-level advice from the trials together (service/diagnosis/study.py)."""

    kind: AdviceKind
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    param: str | None = None


class AdviceTriedRead(BaseModel):
    """How often a diagnosis's variant, run with try-advice, did better than the trial it came from."""

    tried: int = Field(default=0, description="Advice variants that ended (completed, pruned, failed, diverged)")
    helped: int = Field(default=0, description="Of those, the ones whose value beat their parent's by the study's "
                                               "goal (a variant with a value beats a parent that has none)")
    pending: int = Field(default=0, description="Advice variants still waiting or running")


class SanityRead(BaseModel):
    """The sanity gate on a study (service/diagnosis/sanity.py)."""

    state: SanityState
    verdict: str = Field(description="What was seen and what to check, in words")
    figures: dict[str, Any] = Field(default_factory=dict)
    checks: list[dict[str, Any]] = Field(default_factory=list, description="Each check: name, ok, detail")
    config: dict[str, Any] = Field(default_factory=dict, description="samples, max_epochs, sweep")
    trial: int | None = Field(default=None, description="The sanity run's trial number (below zero)")
    overridden: bool = Field(default=False, description="The user resumed the study over a failed verdict")


class LrRangeRead(BaseModel):
    """The learning-rate range test on a study (service/craft/lr_range.py states the rule)."""

    state: LrRangeState
    message: str = ""
    config: dict[str, Any] = Field(default_factory=dict, description="start_lr, end_lr, steps, rule, apply")
    trial: int | None = Field(default=None, description="The range test's trial number (below zero)")
    curve: dict[str, list[float | None]] | None = Field(default=None, description="lr and loss per mini-batch")
    suggestion: dict[str, Any] | None = Field(
        default=None, description="lr, low, high, rule and the curve's landmarks (steepest_lr, min_loss_lr, blowup_lr)")
    parameter: str | None = Field(default=None, description="The study's lr parameter")
    narrowing: dict[str, Any] | None = Field(
        default=None, description="The narrowing in force: path, before, after, and `redrawn`: waiting trials drawn "
                                  "from the old range that are drawn again when claimed (DELETE .../narrowing restores)")


# ---- request bodies ---------------------------------------------------------------------------

class SanityRunRequest(BaseModel):
    """POST /studies/{name}/sanity: (re)run the sanity check now; omitted keys keep the study's."""

    model_config = ConfigDict(extra="forbid")
    samples: int | None = Field(default=None, ge=2, le=10_000, strict=True)
    max_epochs: int | None = Field(default=None, ge=1, le=10_000, strict=True)
    sweep: bool | None = Field(default=None, strict=True, description="Try three learning rates")


class LrRangeTestRequest(BaseModel):
    """POST /studies/{name}/lr-range-test (also the body of `lr_range_test:` in a study document)."""

    model_config = ConfigDict(extra="forbid")
    start_lr: float = Field(default=1e-7, gt=0.0, le=1e3, strict=True)
    end_lr: float = Field(default=10.0, gt=0.0, le=1e4, strict=True)
    steps: int = Field(default=200, ge=20, le=5000, strict=True, description="Mini-batches in the ramp")
    apply: bool = Field(default=False, strict=True,
                        description="Narrow the study's lr parameter to the suggested range by itself")
    rule: Literal["steepest", "steepest_ema", "min_ema_tenth"] = Field(
        default="steepest", description="How the lr is read off the curve (service/craft/lr_range.py)")


class NarrowingRequest(BaseModel):
    """POST /studies/{name}/narrowing: narrow the lr parameter (default: the range test's suggestion)."""

    model_config = ConfigDict(extra="forbid")
    parameter: str | None = Field(default=None, max_length=200, description="Dotted path (default: the lr)")
    low: float | None = Field(default=None, gt=0.0, strict=True)
    high: float | None = Field(default=None, gt=0.0, strict=True)
