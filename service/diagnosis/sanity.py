"""The sanity gate's pure parts: its configuration, the parameters of the sanity run, the figures
read from its reports, and the verdict.

Practitioners train a large model on a tiny subset before they tune, and drive it to overfit: if it
cannot, the inputs, labels, loss or problem definition are broken and every trial would be wasted.
They also check the loss before any update against ln(C) for C classes.

The sanity run trains the largest model the space allows, with no dropout, weight decay or
augmentation, at the space's default learning rate (or a short sweep of three), on `samples`
training examples until training accuracy reaches 99% or the loss falls below 1% of its start, or
`max_epochs`. It reports per epoch what any trial reports (train_loss, train_acc, lr, grad_norm,
update_ratio; initial_loss and num_classes at step 1) and may add figures when done (`input_std`:
the inputs' per-pixel spread across the samples). `sanity_verdict` turns them into passed/failed
and one sentence that says what was seen and what to check.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from tuneserve_service.craft.fidelity import EPOCH_NAMES
from tuneserve_service.diagnosis.curve import Curve, to_float
from tuneserve_service.diagnosis.thresholds import THRESHOLDS, Thresholds
from tuneserve_service.diagnosis.trial import finite_json, fmt, num
from tuneserve.schemas.enums import SanityState
from tuneserve_service.space import Dimension, SearchSpace

# Leaf names (the last part of a dotted parameter name) the sanity run treats specially.
WIDTH_NAMES = frozenset({"width", "filters", "channels", "base_width", "num_filters", "hidden", "hidden_size",
                         "units", "hidden_units"})
DEPTH_NAMES = frozenset({"depth", "blocks", "num_blocks", "layers", "num_layers", "n_layers"})
LR_NAMES = frozenset({"lr", "learning_rate"})
# Regularisation and augmentation: off in a sanity run (a value of the kind the space uses).
OFF_NAMES = frozenset({"dropout", "weight_decay", "wd", "l2", "label_smoothing", "crop_padding", "augment_crop",
                       "hflip", "flip", "rotate", "rotate_degrees", "shift", "shift_fraction", "augment",
                       "augmentation", "mixup", "cutout", "cutmix"})
FULL_NAMES = frozenset({"data_fraction", "fraction"})  # the sanity run picks its own samples


class SanityConfigError(ValueError):
    """A bad `sanity` block: `field` names the key, the message the rule."""

    def __init__(self, field_name: str, rule: str):
        super().__init__(f"sanity.{field_name}: {rule}")
        self.field, self.rule = field_name, rule


@dataclass(frozen=True)
class SanityConfig:
    """`sanity: {samples: 64, max_epochs: 100, sweep: false}` in a study document."""

    samples: int = 64
    max_epochs: int = 100
    sweep: bool = False          # try three learning rates (the default, 10x lower, 10x higher)

    LIMITS = {"samples": (2, 10_000), "max_epochs": (1, 10_000)}

    @classmethod
    def from_json(cls, data: Any) -> "SanityConfig":
        if data is True:
            return cls()
        if not isinstance(data, Mapping):
            raise SanityConfigError("", "must be an object like {samples: 64, max_epochs: 100} or true")
        unknown = sorted(set(data) - {"samples", "max_epochs", "sweep"})
        if unknown:
            raise SanityConfigError(unknown[0], "unknown key; allowed: samples, max_epochs, sweep")
        values: dict[str, Any] = {}
        for key, (lo, hi) in cls.LIMITS.items():
            if key in data:
                v = data[key]
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                    raise SanityConfigError(key, f"must be an integer in [{lo}, {hi}]")
                values[key] = v
        if "sweep" in data:
            if not isinstance(data["sweep"], bool):
                raise SanityConfigError("sweep", "must be true or false")
            values["sweep"] = data["sweep"]
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "max_epochs": self.max_epochs, "sweep": self.sweep}


# ---- the sanity run's parameters ---------------------------------------------------------------

def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower()


def _numbers(dim: Dimension) -> list[float]:
    return sorted(v for v in dim.values if isinstance(v, (int, float)) and not isinstance(v, bool))


def _largest(dim: Dimension) -> Any:
    if dim.kind == "categorical":
        values = _numbers(dim)
        return values[-1] if values else dim.values[-1]
    bounds = dim.value_bounds()
    if bounds is None:
        return None
    return int(bounds[1]) if dim.kind == "int" else bounds[1]


def _middle(dim: Dimension) -> Any:
    """The centre of the range as the search sees it: geometric for log scales."""
    if dim.kind == "categorical":
        values = _numbers(dim)
        return values[(len(values) - 1) // 2] if values else dim.values[0]
    bounds = dim.value_bounds()
    if bounds is None:  # normal families: their mean
        centre = dim.mu if dim.mu is not None else 0.0
        return math.exp(centre) if dim.is_log else centre
    lo, hi = bounds
    mid = math.sqrt(lo * hi) if dim.is_log and lo > 0 else (lo + hi) / 2
    return int(round(mid)) if dim.kind == "int" else float(f"{mid:.3g}")


def _allowed(dim: Dimension, value: Any) -> bool:
    try:
        return dim.contains(value)
    except (TypeError, ValueError):
        return False


def _keys(name: str) -> list[str]:
    """Where a trainer's defaults may name a parameter: its full name, its leaf, and for a nested
    block's `name` leaf the block itself ({"optimizer": {"name": ...}} is the optimizer)."""
    parts = name.lower().split(".")
    return [name, parts[-1]] + ([parts[-2]] if parts[-1] == "name" and len(parts) > 1 else [])


def _default_or_middle(dim: Dimension, defaults: Mapping[str, Any]) -> Any:
    for key in _keys(dim.name):
        if key in defaults and _allowed(dim, defaults[key]):
            return defaults[key]
    return _middle(dim)


def _off(dim: Dimension) -> Any:
    values = list(dim.values) if dim.kind == "categorical" else [dim.value] if dim.kind == "constant" else []
    if values and all(isinstance(v, bool) for v in values):
        return False
    if values and all(isinstance(v, str) for v in values):
        for v in values:
            if v.lower() in ("none", "off", "false", "no"):
                return v
        return values[0]
    return 0 if dim.kind == "int" or (values and isinstance(values[0], int)) else 0.0


def default_lr(space: SearchSpace, defaults: Mapping[str, Any] | None = None) -> tuple[str, float] | None:
    """(name, value) of the space's default learning rate: the trainer's default when the range
    holds it (the built-in's defaults are practitioners' defaults), else the range's geometric
    middle (0.01 for 1e-4..1). None when the space has no lr."""
    defaults = defaults or {}
    for dim in space.dimensions:
        if _leaf(dim.name) in LR_NAMES and dim.kind != "constant":
            value = _default_or_middle(dim, defaults)
            return dim.name, float(value)
        if _leaf(dim.name) in LR_NAMES:
            return dim.name, float(dim.value)
    return None


def sanity_lrs(space: SearchSpace, defaults: Mapping[str, Any] | None = None, sweep: bool = True) -> list[float]:
    """The learning rates a sanity run tries in order: the default, then (sweep) 10x lower and
    10x higher, kept inside the range; one value for a constant lr."""
    found = default_lr(space, defaults)
    if found is None:
        return []
    name, lr = found
    if not sweep:
        return [lr]
    dim = space.dimension(name)
    bounds = dim.value_bounds()
    out = [lr]
    for candidate in (lr / 10, lr * 10):
        if bounds is not None:
            candidate = min(max(candidate, bounds[0]), bounds[1])
        elif dim.kind == "categorical":
            values = _numbers(dim)
            candidate = min(values, key=lambda v: abs(math.log(v / candidate))) if values and candidate > 0 else lr
        candidate = float(f"{candidate:.3g}")
        if all(abs(candidate - seen) > 1e-12 * max(1.0, seen) for seen in out):
            out.append(candidate)
    return out


def sanity_params(space: SearchSpace, defaults: Mapping[str, Any] | None = None,
                  max_epochs: int | None = None) -> dict[str, Any]:
    """Flat params for the sanity run: the largest model the space allows (widest, deepest),
    regularisation and augmentation off, the whole data (the run takes its own samples), the default
    learning rate, and every other parameter at the trainer's default when the space holds it, else
    at the middle of its range. Values for "off" may lie outside the space on purpose: a sanity run
    is not a trial of the study."""
    defaults = defaults or {}
    lr = default_lr(space, defaults)
    params: dict[str, Any] = {}
    for dim in space.dimensions:
        leaf = _leaf(dim.name)
        if leaf in OFF_NAMES or "dropout" in leaf:  # even when the space fixes them
            params[dim.name] = _off(dim)
        elif leaf in FULL_NAMES:
            params[dim.name] = 1.0
        elif leaf in EPOCH_NAMES and max_epochs is not None:
            params[dim.name] = max_epochs
        elif dim.kind == "constant":
            params[dim.name] = dim.value if not isinstance(dim.value, tuple) else list(dim.value)
        elif leaf in WIDTH_NAMES or leaf in DEPTH_NAMES:
            params[dim.name] = _largest(dim)
        elif lr is not None and dim.name == lr[0]:
            params[dim.name] = lr[1]
        else:
            params[dim.name] = _default_or_middle(dim, defaults)
    return params


# ---- figures and verdict -----------------------------------------------------------------------

def figures_from_reports(reports: Iterable[Any], done: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The sanity figures from a run's per-epoch reports, overridden by what the objective passed
    to `sanity_done` (`done`). Keys: initial_loss, num_classes, first_loss, final_loss, best_loss,
    final_acc, best_acc, epochs, lr, update_ratio, grad_norm, diverged (1 when a loss went
    non-finite), input_std when given."""
    curve = Curve.from_reports(reports)
    figures: dict[str, float] = {}
    train = curve.values("train_loss")
    acc = curve.values("train_acc")
    for name in ("initial_loss", "num_classes", "lr", "grad_norm"):
        value = curve.first(name)
        if value is not None:
            figures[name] = value
    if train:
        figures.update(first_loss=train[0], final_loss=train[-1], best_loss=min(train))
    if acc:
        figures.update(final_acc=acc[-1], best_acc=max(acc))
    ratios = curve.values("update_ratio")
    if ratios:
        figures["update_ratio"] = statistics.median(ratios)
    if len(curve):
        figures["epochs"] = float(len(curve.series("train_loss")) or len(curve))
    bad = curve.first_non_finite()
    if bad is not None:
        figures["diverged"], figures["diverged_step"] = 1.0, float(bad[0])
    for name, value in (done or {}).items():
        number = to_float(value)
        if number is not None:
            figures[name] = number
    return figures


@dataclass(frozen=True)
class SanityResult:
    state: SanityState
    verdict: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        return self.state == SanityState.PASSED

    def to_json(self) -> dict[str, Any]:
        return {"state": str(self.state), "verdict": self.verdict, "figures": finite_json(self.figures),
                "checks": [finite_json(c) for c in self.checks]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SanityResult":
        return cls(SanityState(data["state"]), str(data.get("verdict", "")), dict(data.get("figures") or {}),
                   tuple(dict(c) for c in data.get("checks") or ()))

    @classmethod
    def pending(cls) -> "SanityResult":
        return cls(SanityState.PENDING, "waiting for a worker to run the sanity check")

    @classmethod
    def skipped(cls, reason: str) -> "SanityResult":
        """The objective cannot take part: the gate is skipped, never silently passed."""
        return cls(SanityState.SKIPPED, f"sanity check skipped: {reason}; the study runs without it")

    @classmethod
    def run_failed(cls, kind: str, reason: str) -> "SanityResult":
        """The sanity run itself raised (an error, out of memory): the pipeline does not even run."""
        last = reason.strip().splitlines()[-1] if reason.strip() else kind
        return cls(SanityState.FAILED, f"the sanity run failed ({kind}) before it could judge the pipeline: "
                   f"{last[:300]}; fix the objective and run the check again", {"fail_kind": kind})


def _json_figures(figures: Mapping[str, float]) -> dict[str, Any]:
    return {k: num(v) for k, v in figures.items()}


def sanity_verdict(figures: Mapping[str, Any], samples: int, max_epochs: int, num_classes: int | None = None,
                   thresholds: Thresholds = THRESHOLDS) -> SanityResult:
    """Passed or failed, the checks behind it, and one sentence saying what was seen and what to
    check. Failing checks, most telling first: NaN before any update, constant inputs, lr 0, weights
    that never changed, a loss that did not follow the weights, divergence, the initial loss far
    from ln(C), and finally "cannot fit a tiny subset"."""
    t = thresholds
    f = {k: v for k, v in ((k, to_float(v)) for k, v in figures.items()) if v is not None}
    classes = num_classes or (int(f["num_classes"]) if f.get("num_classes") else None)
    chance = math.log(classes) if classes and classes >= 2 else None
    init = f.get("initial_loss")
    start = init if init is not None and math.isfinite(init) else f.get("first_loss")
    final, best = f.get("final_loss"), f.get("best_loss", f.get("final_loss"))
    acc, best_acc = f.get("final_acc"), f.get("best_acc", f.get("final_acc"))
    epochs = int(f.get("epochs", 0))
    lr, ratio, spread = f.get("lr"), f.get("update_ratio"), f.get("input_std")
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> bool:
        checks.append({"name": name, "ok": ok, "detail": detail})
        return ok

    diverged_at = int(f.get("diverged_step", epochs + 1)) if f.get("diverged") else None
    if diverged_at is not None:
        seen = f"on {samples} samples the training loss diverged at epoch {diverged_at}" + (
            f" (initial loss {fmt(init)})" if init is not None else "")
    else:
        seen = (f"after {epochs} epoch{'s' if epochs != 1 else ''} on {samples} samples the training loss went "
                f"from {fmt(start)} to {fmt(final)}" + (f", accuracy {acc:.0%}" if acc is not None else ""))
    finite_start = start is not None and math.isfinite(start)
    fitted = bool(finite_start and ((best_acc is not None and best_acc >= t.sanity_acc)
                                    or (best is not None and math.isfinite(best) and best <= t.sanity_loss_share * start)))
    check("fit", fitted, seen)
    problems: list[str] = []

    bad_inputs = f.get("input_nonfinite")
    if bad_inputs is not None and not check("inputs_finite", bad_inputs == 0, f"non-finite input share {fmt(bad_inputs)}"):
        problems.append("every input value is NaN or inf: a bad value in the data went through the "
                        "normalisation statistics into every input; clean the data first" if bad_inputs >= 0.99 else
                        f"{bad_inputs:.2g} of the input values are NaN or inf: clean the data (drop or impute them)")
    if init is not None and not math.isfinite(init):
        check("initial_loss", False, f"initial loss {fmt(init)}")
        if not problems:
            problems.append("the loss was NaN before the first update: the inputs or labels hold NaN or inf; check "
                            "the data (torch.isfinite(x).all()) and any division or log in the loss")
    elif init is not None and chance is not None:
        ratio_c = init / chance
        if ratio_c > t.bad_scale_factor:
            check("initial_loss", False, f"initial loss {fmt(init)} is {ratio_c:.3g}x ln({classes})")
            problems.append(f"the loss before any update is {fmt(init)}, {ratio_c:.0f}x ln({classes}) = "
                            f"{fmt(chance)}: the inputs or initial weights are far too large; normalise the inputs "
                            f"(zero mean, unit variance) and check the weight init")
        elif ratio_c < t.leak_factor:
            check("initial_loss", False, f"initial loss {fmt(init)} is {ratio_c:.3g}x ln({classes})")
            problems.append(f"the loss before any update is {fmt(init)}, far below ln({classes}) = {fmt(chance)}: "
                            f"an untrained model cannot do that, so labels leak into the inputs or the loss is "
                            f"not the cross-entropy over {classes} classes")
        else:
            check("initial_loss", True, f"initial loss {fmt(init)} is about ln({classes}) = {fmt(chance)}")
    if spread is not None:
        if not check("inputs_vary", spread > t.constant_inputs, f"input spread across samples {fmt(spread)}"):
            problems.insert(1 if bad_inputs else 0, "the inputs do not vary (their spread across the samples is "
                            "0): every example looks the same to the model; check the data loading and any "
                            "preprocessing")
    if not fitted and finite_start and final is not None and math.isfinite(final):
        still = abs(start - final) <= t.sanity_still * abs(start)
        if lr is not None and lr == 0:
            check("weights_move", False, "learning rate 0")
            problems.append("the learning rate is 0, so the weights never change; give it a positive value")
        elif ratio is not None and ratio <= 1e-12:
            check("weights_move", False, f"update ratio {fmt(ratio)} at lr {fmt(lr)}")
            problems.append(f"the weights never changed (update ratio 0) although the learning rate is {fmt(lr)}: "
                            f"the weights are frozen or the optimizer does not hold the model's parameters")
        elif still and ratio is not None and spread is not None and spread > t.constant_inputs:
            check("loss_follows", False, f"update ratio {fmt(ratio)}, loss {fmt(start)} -> {fmt(final)}")
            problems.append(f"the weights changed (update ratio {fmt(ratio)}) but the loss did not follow: it is not "
                            f"computed on the model's output (detached, or the wrong tensor)")
        elif still and ratio is not None and spread is None:
            check("loss_follows", False, f"update ratio {fmt(ratio)}, loss {fmt(start)} -> {fmt(final)}")
            problems.append(f"the weights changed (update ratio {fmt(ratio)}) but the loss did not follow: the loss "
                            f"does not see the model's output (detached, or the wrong tensor), or the inputs do "
                            f"not vary")
    if diverged_at is not None and not problems:
        check("finite", False, f"diverged at epoch {diverged_at}")
        problems.append(f"with a sound start it blew up at lr {fmt(lr)}: lower the learning rate or clip the "
                        f"gradient norm")
    if not fitted and not problems:
        problems.append("the model cannot fit even a tiny subset; check that inputs vary, labels match inputs, "
                        "and the loss is computed on the model's output")

    shown = _json_figures({**f, "samples": samples, "max_epochs": max_epochs})
    if not problems:
        return SanityResult(SanityState.PASSED, f"{seen}: the pipeline can fit a tiny subset"
                            + (f", and the initial loss {fmt(init)} is about ln({classes}) = {fmt(chance)}"
                               if init is not None and chance is not None else ""), shown, tuple(checks))
    lead = seen if not fitted else f"{seen} (it fitted)"
    return SanityResult(SanityState.FAILED, f"{lead}: {problems[0]}"
                        + (f"; also {problems[1]}" if len(problems) > 1 else ""), shown, tuple(checks))
