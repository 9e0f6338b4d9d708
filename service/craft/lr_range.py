"""From a learning-rate range test's curve to a suggested lr and range, and the narrowing of a study's
lr parameter to that range.

The curve is what the trainer measured (workers/training/lr_range.py): one (lr, loss) pair per
mini-batch while the lr grew geometrically. The rule, stated once:

  1. Cut the curve where it blew up: at the first point whose exponential moving average (beta 0.98,
     bias-corrected; the trainer's stop rule) exceeds `blowup` (4) times its minimum so far, or the
     first non-finite loss.
  2. Smooth the raw losses with a *centred* moving mean over +-0.4 decades of lr. The trainer's EMA
     lags about beta / (1 - beta) = 49 batches, which on a 1e-7..10 ramp of 200 batches is a factor
     of ~90 in lr: read off the EMA, every feature of the curve sits far to the right of the lr
     that caused it. A centred window has no lag.
  3. The suggested lr is the point of steepest descent of the smoothed loss against log10(lr),
     searched up to the smoothed minimum: where the loss falls fastest per decade, i.e. the largest
     lr at which training is still clearly stable and fast.
  4. The suggested range is [lr / 10, lr at the smoothed minimum], the upper end at least 3 x lr:
     one decade of safety below, and up to where higher lrs stopped helping.

Why this rule (benchmarks/lr_range_test.py, 3 seeds per task, 40-trial tpe over lr alone as the
reference): the steepest point of the centred curve lay within 1.04-1.54x of tpe's best lr on
digits and 1.22-2.89x on shapes. The same point read off the lagging EMA (fastai's "steep") was
1.7-4.2x off, failing the 3x target on 3 of 6 runs. "A tenth of the EMA's minimum" also met the
target (1.2-2.3x): it works because the EMA's lag and the factor of ten roughly cancel, which
holds only for one ramp speed and one beta; the centred rule has no such coincidence to rely on.
Both alternatives stay available as `rule=`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tuneserve_service.craft.errors import CraftError
from tuneserve_service.craft.refine import bounded_spec
from tuneserve_service.space import Dimension, SearchSpace
from tuneserve_service.space.parse import SpaceError, parse_spec

BETA = 0.98
BLOWUP = 4.0
MIN_STEPS = 10            # the trainer never calls a blow-up before this many batches
WINDOW_DECADES = 0.4      # half-width of the centred smoothing window, in decades of lr
MIN_POINTS = 10           # fewer usable points than this is not a curve
RANGE_BELOW = 10.0        # the range starts a decade below the suggestion
RANGE_ABOVE_MIN = 3.0     # and ends at the smoothed minimum, at least this many times the suggestion
RULES = ("steepest", "steepest_ema", "min_ema_tenth")
DEFAULT_RULE = "steepest"
LR_NAMES = ("lr", "learning_rate")


class LrRangeError(CraftError):
    """A curve or space the range test cannot use: `path` names the field, `rule` the rule broken."""


@dataclass(frozen=True)
class LrSuggestion:
    lr: float                 # the suggested learning rate
    low: float                # the suggested range
    high: float
    rule: str                 # which rule picked `lr` (see RULES)
    steepest_lr: float        # steepest descent of the centred curve
    min_loss_lr: float        # minimum of the centred curve
    blowup_lr: float | None   # first lr of the blown-up part, None when the curve never blew up
    points: int               # points before the blow-up, the ones the rule read
    smoothed: tuple[float, ...] = field(repr=False, default=())  # centred curve over those points

    def to_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "low": self.low, "high": self.high, "rule": self.rule,
                "steepest_lr": self.steepest_lr, "min_loss_lr": self.min_loss_lr,
                "blowup_lr": self.blowup_lr, "points": self.points}


def ema(losses: Sequence[float], beta: float = BETA) -> list[float]:
    """Bias-corrected exponential moving average (the trainer's smoothing)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** i))
    return out


def blowup_index(losses: Sequence[float], beta: float = BETA, factor: float = BLOWUP,
                 min_steps: int = MIN_STEPS) -> int | None:
    """Index of the first point of the blown-up part: a non-finite loss, or (from the min_steps-th
    point on) an EMA above `factor` times the EMA's minimum so far. None if it never blew up."""
    avg, best = 0.0, math.inf
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            return i
        avg = beta * avg + (1 - beta) * loss
        smoothed = avg / (1 - beta ** (i + 1))
        best = min(best, smoothed)
        if i + 1 >= min_steps and smoothed > factor * best:
            return i
    return None


def centred_mean(log_lrs: Sequence[float], losses: Sequence[float],
                 half_width: float = WINDOW_DECADES) -> list[float]:
    """Mean of the losses whose log10(lr) lies within +-half_width of each point's (no lag)."""
    x = np.asarray(log_lrs, dtype=float)
    y = np.asarray(losses, dtype=float)
    csum = np.concatenate([[0.0], np.cumsum(y)])
    lo = np.searchsorted(x, x - half_width - 1e-12, side="left")
    hi = np.searchsorted(x, x + half_width + 1e-12, side="right")
    return [float(v) for v in (csum[hi] - csum[lo]) / (hi - lo)]


def check_curve(lrs: Sequence[float], losses: Sequence[float]) -> None:
    if len(lrs) != len(losses):
        raise LrRangeError("curve", f"lr and loss must have the same length, got {len(lrs)} and {len(losses)}")
    for i, lr in enumerate(lrs):
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise LrRangeError(f"curve.lr[{i}]", f"must be a positive finite number, got {lr!r}")
        if i and lr <= lrs[i - 1]:
            raise LrRangeError(f"curve.lr[{i}]", "learning rates must increase strictly")
    for i, loss in enumerate(losses):
        if isinstance(loss, bool) or not isinstance(loss, (int, float)):
            raise LrRangeError(f"curve.loss[{i}]", f"must be a number, got {loss!r}")


def suggest_lr(lrs: Sequence[float], losses: Sequence[float], rule: str = DEFAULT_RULE, *,
               beta: float = BETA, blowup: float = BLOWUP) -> LrSuggestion:
    """The suggested lr and range from a range test's raw curve (one lr and loss per mini-batch)."""
    if rule not in RULES:
        raise LrRangeError("rule", f"must be one of {', '.join(RULES)}, got {rule!r}")
    check_curve(lrs, losses)
    cut = blowup_index(losses, beta, blowup)
    n = len(losses) if cut is None else cut
    if n < MIN_POINTS:
        raise LrRangeError("curve", f"only {n} points before the loss blew up (at least {MIN_POINTS} are "
                                    f"needed): start the test at a lower lr")
    log_lr = np.log10(np.asarray(lrs[:n], dtype=float))
    smooth = np.asarray(centred_mean(log_lr, losses[:n]))
    i_min = int(np.argmin(smooth))
    if i_min == 0:
        raise LrRangeError("curve", "the loss never fell below its value at the first lr: the test "
                                    "learned nothing (start lower, run more batches, or check the data)")
    slope = np.gradient(smooth, log_lr)
    i_steep = int(np.argmin(slope[: i_min + 1]))
    steepest, min_loss = float(lrs[i_steep]), float(lrs[i_min])
    if rule == "steepest":
        lr = steepest
    else:
        averaged = np.asarray(ema(losses[:n], beta))
        i_ema_min = int(np.argmin(averaged))
        if rule == "min_ema_tenth":
            lr = float(lrs[i_ema_min]) / 10
        else:
            ema_slope = np.gradient(averaged, log_lr)
            lr = float(lrs[int(np.argmin(ema_slope[: i_ema_min + 1]))])
    return LrSuggestion(lr=lr, low=lr / RANGE_BELOW, high=max(min_loss, RANGE_ABOVE_MIN * lr), rule=rule,
                        steepest_lr=steepest, min_loss_lr=min_loss,
                        blowup_lr=None if cut is None else float(lrs[cut]), points=n,
                        smoothed=tuple(float(v) for v in smooth))


# --- narrowing a study's lr parameter ------------------------------------------------------------

@dataclass(frozen=True)
class Narrowing:
    """A recorded change of one parameter's spec: `parameters` is the whole narrowed block,
    `original` the block before (restoring it undoes the change), `before`/`after` the one spec."""

    path: str
    before: dict[str, Any]
    after: dict[str, Any]
    parameters: dict[str, Any]
    original: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """What the study records: enough to show the change and to undo it."""
        return {"path": self.path, "before": self.before, "after": self.after}


def find_lr_parameter(parameters: dict[str, Any]) -> str | None:
    """The dotted path of the learning rate in a W&B parameters block: a leaf named `lr` or
    `learning_rate` (the trainer's names), the shallowest first; None when there is none."""
    found: list[tuple[int, str]] = []

    def walk(block: dict[str, Any], prefix: str) -> None:
        for name, spec in block.items():
            path = f"{prefix}{name}"
            if isinstance(spec, dict) and isinstance(spec.get("parameters"), dict):
                walk(spec["parameters"], f"{path}.")
            elif name in LR_NAMES:
                found.append((path.count("."), path))

    if isinstance(parameters, dict):
        walk(parameters, "")
    return min(found)[1] if found else None


def get_spec(parameters: dict[str, Any], path: str) -> dict[str, Any]:
    """The spec at a dotted path of a nested W&B block (KeyError naming the missing part)."""
    node: Any = {"parameters": parameters}
    for part in path.split("."):
        inner = node.get("parameters") if isinstance(node, dict) else None
        if not isinstance(inner, dict) or part not in inner:
            raise KeyError(path)
        node = inner[part]
    return node


def set_spec(parameters: dict[str, Any], path: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `parameters` with the spec at `path` replaced (the path must exist)."""
    out = copy.deepcopy(parameters)
    node: Any = {"parameters": out}
    parts = path.split(".")
    for part in parts[:-1]:
        node = node["parameters"][part]
    node["parameters"][parts[-1]] = copy.deepcopy(spec)
    return out


def narrow_space(parameters: dict[str, Any], lr_param: str, low: float, high: float,
                 clip: bool = True) -> Narrowing:
    """Narrow the lr parameter at `lr_param` (dotted path) to [low, high].

    Bounded families keep their family and get the new bounds, intersected with the old ones when
    `clip` (the user's bounds are a statement too); an intersection that is empty is an error, and
    clip=False takes [low, high] as they are. Exponent-bounded families (log_uniform, inv_log_uniform)
    get exponents, quantized ones keep `q` with bounds on its lattice. A categorical keeps the values
    inside [low, high] (an error when none is). Unbounded families (normal, log_normal, ...) become
    log_uniform_values over [low, high]. A constant, or a kind this module does not know, is refused.
    """
    path = f"parameters.{lr_param}"
    for key, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise LrRangeError(key, f"must be a positive finite number, got {v!r}")
    if not low < high:
        raise LrRangeError("low", f"must be < high, got low={low!r} and high={high!r}")
    try:
        before = get_spec(parameters, lr_param)
    except KeyError:
        raise LrRangeError(path, "no such parameter in the study's space") from None
    try:
        dim = parse_spec(lr_param, before)
    except SpaceError as e:
        raise LrRangeError(path, f"cannot narrow this spec: {e.rule}") from None
    d = dim.distribution
    if d == "constant":
        raise LrRangeError(path, "is a constant; nothing to narrow (give it a range first)")
    if d == "categorical":
        values = [v for v in dim.values if _positive(v) and low <= v <= high]
        if not values:
            raise LrRangeError(path, f"none of its values {list(dim.values)} lies in [{low:.3g}, {high:.3g}]")
        after = {k: v for k, v in before.items() if k not in ("values", "probabilities")}
        after["values"] = [v for v in before["values"] if v in values]
        if dim.probabilities is not None:
            kept = [p for v, p in zip(dim.values, dim.probabilities) if v in values]
            after["probabilities"] = [p / sum(kept) for p in kept] if sum(kept) > 0 else None
            if after["probabilities"] is None:
                del after["probabilities"]
        return _record(parameters, lr_param, before, after)
    bounds = dim.value_bounds()
    if bounds is None:  # normal families: no bounds to intersect, a range replaces them
        return _record(parameters, lr_param, before,
                       {"distribution": "log_uniform_values", "min": float(low), "max": float(high)})
    if d == "int_uniform":
        raise LrRangeError(path, "is an integer range; a learning rate is a real number")
    lo, hi = float(low), float(high)
    if clip:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        if not lo < hi:
            raise LrRangeError(path, f"the suggested range [{low:.3g}, {high:.3g}] does not overlap the "
                                     f"parameter's [{bounds[0]:.3g}, {bounds[1]:.3g}]; narrow with clip=false "
                                     f"to replace the range")
        return _record(parameters, lr_param, before, bounded_spec(dim, dim.to_internal(lo), dim.to_internal(hi)))
    # Replacing the range: the family stays, its bounds are the suggestion's.
    wider = parse_spec(lr_param, {**before, **_bounds_for(dim, lo, hi)})
    return _record(parameters, lr_param, before,
                   bounded_spec(wider, wider.to_internal(lo), wider.to_internal(hi)))


def _bounds_for(dim: Dimension, lo: float, hi: float) -> dict[str, Any]:
    """The raw min/max keys of `dim`'s family for the value range [lo, hi]."""
    if dim.distribution == "log_uniform":
        return {"distribution": "log_uniform", "min": math.log(lo), "max": math.log(hi)}
    if dim.distribution == "inv_log_uniform":
        return {"distribution": "inv_log_uniform", "min": -math.log(hi), "max": -math.log(lo)}
    return {"distribution": dim.distribution, "min": lo, "max": hi}


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _record(parameters: dict[str, Any], path: str, before: dict[str, Any], after: dict[str, Any]) -> Narrowing:
    # The narrowed spec must itself be a valid spec: the study stores and re-parses it.
    parse_spec(path, after)
    return Narrowing(path=path, before=copy.deepcopy(before), after=after,
                     parameters=set_spec(parameters, path, after), original=copy.deepcopy(parameters))


def restore_space(parameters: dict[str, Any], narrowing: dict[str, Any]) -> dict[str, Any]:
    """Undo a recorded narrowing (its to_dict()) on the study's current block: the spec at its path
    goes back to `before`. Refused when the spec there is no longer the narrowed one."""
    path = narrowing.get("path") if isinstance(narrowing, dict) else None
    if not isinstance(path, str):
        raise LrRangeError("narrowing.path", "missing: not a recorded narrowing")
    try:
        current = get_spec(parameters, path)
    except KeyError:
        raise LrRangeError(f"parameters.{path}", "no such parameter in the study's space") from None
    if current != narrowing.get("after"):
        raise LrRangeError(f"parameters.{path}", "was changed after the narrowing; not restoring over that change")
    return set_spec(parameters, path, narrowing["before"])


def default_configuration(space: SearchSpace) -> dict[str, Any]:
    """The configuration a range test trains (flat params): constants' values, categoricals' first
    value, numeric parameters at the midpoint of their internal range (the geometric mean for log
    ones, mu for normal families), on their lattice. The lr in it is replaced by the ramp anyway."""
    out = {}
    for dim in space.dimensions:
        if dim.distribution == "categorical":
            out[dim.name] = dim.from_internal(0.0)
        else:
            lo, hi = dim.internal_bounds()
            out[dim.name] = dim.from_internal((lo + hi) / 2)
    return out
