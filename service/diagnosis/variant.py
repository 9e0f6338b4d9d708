"""What to try next: a concrete change to a diagnosed trial's own params, as a pure function.

    propose_variant(diagnosis, params, space_info) -> Variant(params_change, why) | None

Each fault label maps to one "notch" of one knob (the change table of issue 17):

  diverged / lr_too_high   lr / 3                                   (notch `lr_down`); a divergence
                           at an lr still 10x+ above the optimizer's usual rate after that cut
                           (USUAL_LR: 0.05 for sgd, 1e-3 for adam) gets lr / 10 (`lr_down_far`)
  lr_too_low               lr x 3                                   (`lr_up`)
  overfitting              dropout + 0.2 (weight decay x 10 once dropout is 0.7+)   (`regularise`)
  underfitting             epochs x 2 when validation was still at its best at the last report,
                           else width x 2                           (`longer` / `wider`)
  plateau                  an lr decay: constant -> plateau schedule, plateau/step -> cosine,
                           cosine -> step; lr / 3 when the objective has no schedule knob (`decay`)
  noisy                    lr / 3 (`lr_down`): see benchmarks/advice.py for why not a bigger batch
  healthy / insufficient   no variant

`notches(params, space_info)` lists every notch of one step, in both directions (`lr_down_far`, two
steps, only with far=True: the random baseline draws from one-step notches), so the curves corpus
(benchmarks/curves_corpus.py) runs exactly the changes this module proposes, and the benchmark can
compare a proposed variant with a random notch of the same size. Changing a notch's definition
invalidates the corpus's counterfactuals: regenerate it.

`space_info` is a mapping, every key optional:
  defaults   the objective's own defaults for params the trial does not carry (for `builtin:cnn`,
             BUILTIN_CNN_DEFAULTS below, which mirrors workers/training/config.py)
  bounds     {name: [low, high]}: a change is clipped into them; a notch clipped to no change is
             unavailable
  schedules  the lr schedules the objective knows (default: the built-in trainer's)
A param the trial neither carries nor has a default for cannot be changed: that notch is unavailable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from tuneserve.schemas.enums import DiagnosisCause, DiagnosisLabel

# The built-in trainer's defaults for the knobs a notch moves (workers/training/config.py; a test
# keeps them equal). The service never imports the worker, so they are repeated here.
BUILTIN_CNN_DEFAULTS: dict[str, Any] = {
    "lr": 0.05, "dropout": 0.2, "weight_decay": 5e-4, "width": 32, "depth": 2, "epochs": 10,
    "batch_size": 128, "lr_schedule": "plateau", "optimizer": "sgd",
}
# An lr's meaning depends on the optimizer: the usual starting rate of each (the built-in trainer's
# default for sgd; Adam's paper default for the adaptive ones). A divergence at lr / 3 >= 10x this
# is far above any usable rate: one 3x notch would still diverge (the curves corpus: lr 6.1 and 6.2
# on sgd), so `diverged` proposes lr / 10 there.
USUAL_LR: dict[str, float] = {"sgd": 0.05, "nesterov": 0.05, "momentum": 0.05, "adam": 1e-3, "adamw": 1e-3}
FAR_ABOVE_USUAL = 10.0
SGD_FAMILY = frozenset({"sgd", "nesterov", "momentum"})  # one global rate, no per-weight scaling
BUILTIN_SCHEDULES = ("constant", "step", "cosine", "plateau")
ALIASES = {"learning_rate": "lr", "filters": "width", "blocks": "depth", "lr_scheduler": "lr_schedule",
           "schedule": "lr_schedule"}
MAX_BATCH = 1024
MAX_DROPOUT = 0.9


@dataclass(frozen=True)
class Variant:
    params_change: dict[str, Any]
    why: str
    notch: str = ""                      # the stable id of the change (lr_down, regularise, ...)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"params_change": _json_safe(self.params_change), "why": self.why, "notch": self.notch}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Variant":
        return cls(dict(data.get("params_change") or {}), str(data.get("why", "")), str(data.get("notch", "")))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sig(x: float, digits: int = 4) -> float:
    """x to `digits` significant digits (params stay readable: lr 0.01667, not 0.016666666)."""
    return float(f"{x:.{digits}g}") if x and math.isfinite(x) else x


# ---- reading and writing params ----------------------------------------------------------------

def _find(params: Mapping[str, Any], name: str) -> tuple[list[str], Any] | None:
    """The path and value of knob `name` in (possibly nested, W&B-style) params: a leaf named
    `name` or one of its aliases; a nested block's `name` leaf is the block's own value."""
    for key, value in params.items():
        canonical = ALIASES.get(key, key)
        if isinstance(value, Mapping):
            if canonical == name and "name" in value:
                return [key, "name"], value["name"]
            inner = _find(value, name)
            if inner is not None:
                return [key, *inner[0]], inner[1]
        elif canonical == name:
            return [key], value
    return None


class _Params:
    def __init__(self, params: Mapping[str, Any], space_info: Mapping[str, Any] | None):
        info = space_info or {}
        self.params = params
        self.defaults = dict(info.get("defaults") or {})
        self.bounds = {ALIASES.get(k, k): v for k, v in (info.get("bounds") or {}).items()}
        self.schedules = tuple(info.get("schedules") or BUILTIN_SCHEDULES)

    def get(self, name: str) -> Any:
        found = _find(self.params, name)
        if found is not None:
            return found[1]
        return self.defaults.get(name)

    def number(self, name: str) -> float | None:
        value = self.get(name)
        if isinstance(value, bool) or value is None:
            return None
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    def change(self, name: str, value: Any) -> dict[str, Any] | None:
        """{path: value} for knob `name`, clipped into its bounds; None when that is no change."""
        if name in self.bounds and isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = self.bounds[name]
            if low is not None:
                value = max(value, type(value)(low))
            if high is not None:
                value = min(value, type(value)(high))
        current = self.get(name)
        if current is not None and _same(current, value):
            return None
        found = _find(self.params, name)
        path = found[0] if found is not None else [name]
        out: dict[str, Any] = value
        for key in reversed(path):
            out = {key: out}
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a).lower() == str(b).lower()


# ---- the notches -------------------------------------------------------------------------------

def notches(params: Mapping[str, Any], space_info: Mapping[str, Any] | None = None, *,
            far: bool = False) -> dict[str, dict[str, Any]]:
    """Every available one-knob, one-notch change of these params, by stable id: the changes the
    advice proposes (lr_down, lr_up, regularise, wider, longer, decay, batch_up) and their opposites
    (narrower, shorter, unregularise, batch_down), which only the random baseline uses. With
    far=True also `lr_down_far` (lr / 10, two notches: not in the random baseline's menu)."""
    p = _Params(params, space_info)
    out: dict[str, dict[str, Any] | None] = {}
    lr = p.number("lr")
    if lr is not None and lr > 0:
        out["lr_down"] = p.change("lr", sig(lr / 3))
        out["lr_up"] = p.change("lr", sig(lr * 3))
        if far:
            out["lr_down_far"] = p.change("lr", sig(lr / 10))
    dropout, wd = p.number("dropout"), p.number("weight_decay")
    if dropout is not None and dropout < 0.7:
        out["regularise"] = p.change("dropout", round(min(MAX_DROPOUT, dropout + 0.2), 2))
    elif wd is not None:
        out["regularise"] = p.change("weight_decay", sig(wd * 10) if wd > 0 else 5e-4)
    if dropout is not None and dropout >= 0.2:
        out["unregularise"] = p.change("dropout", round(dropout - 0.2, 2))
    elif wd is not None and wd > 0:
        out["unregularise"] = p.change("weight_decay", sig(wd / 10))
    width = p.number("width")
    if width is not None and width >= 1:
        out["wider"] = p.change("width", int(width) * 2)
        out["narrower"] = p.change("width", max(1, int(width) // 2))
    epochs = p.number("epochs")
    if epochs is not None and epochs >= 1:
        out["longer"] = p.change("epochs", int(epochs) * 2)
        out["shorter"] = p.change("epochs", max(1, int(epochs) // 2))
    schedule = p.get("lr_schedule")
    if schedule is not None and str(schedule).lower() in p.schedules:
        following = {"constant": "plateau", "plateau": "cosine", "step": "cosine", "cosine": "step"}
        target = following.get(str(schedule).lower())
        out["decay"] = p.change("lr_schedule", target) if target in p.schedules else None
    if out.get("decay") is None and lr is not None and lr > 0:
        out["decay"] = out.get("lr_down")  # no schedule to switch: start 3x lower instead
    batch = p.number("batch_size")
    if batch is not None and batch >= 1:
        out["batch_up"] = p.change("batch_size", min(MAX_BATCH, int(batch) * 4)) if batch < MAX_BATCH else None
        out["batch_down"] = p.change("batch_size", max(1, int(batch) // 4))
    return {k: v for k, v in out.items() if v}


# Which notch each label proposes, in order of preference (the first available wins).
LABEL_NOTCHES: dict[str, tuple[str, ...]] = {
    DiagnosisLabel.DIVERGED: ("lr_down",),
    DiagnosisLabel.LR_TOO_HIGH: ("lr_down",),
    DiagnosisLabel.LR_TOO_LOW: ("lr_up",),
    DiagnosisLabel.OVERFITTING: ("regularise",),
    DiagnosisLabel.UNDERFITTING: ("wider", "longer"),
    DiagnosisLabel.PLATEAU: ("decay",),
    DiagnosisLabel.NOISY: ("lr_down", "batch_up"),
}

_WHY = {
    "lr_down": "{label}: the same run with the learning rate 3x lower ({old} -> {new})",
    "lr_up": "{label}: the same run with the learning rate 3x higher ({old} -> {new})",
    "lr_down_far": "{label}: the same run with the learning rate 10x lower ({old} -> {new}); a 3x cut would "
                   "still be 10x+ above {optimizer}'s usual rate ({usual})",
    "regularise": "{label}: the same run with more regularisation ({what} {old} -> {new})",
    "wider": "{label}: the same run with a model twice as wide (width {old} -> {new})",
    "longer": "{label}: the same run trained twice as long (epochs {old} -> {new}); the validation "
              "loss was still at its best at the last report",
    "decay": "{label}: the same run with the learning rate decayed when it stalls ({what} {old} -> {new})",
    "batch_up": "{label}: the same run with a 4x bigger batch ({old} -> {new})",
}


def _leaf(change: Mapping[str, Any]) -> tuple[str, Any]:
    key, value = next(iter(change.items()))
    while isinstance(value, Mapping):
        key, value = next(iter(value.items())) if "name" not in value else (key, value["name"])
    return key, value


def propose_variant(diagnosis: Any, params: Mapping[str, Any],
                    space_info: Mapping[str, Any] | None = None) -> Variant | None:
    """The variant to try for this diagnosis (a Diagnosis or its JSON), or None for healthy and
    insufficient, for a divergence the data causes (no param fixes NaN in the inputs), and when
    the knob is not among the params and has no default."""
    if isinstance(diagnosis, Mapping):
        label, cause = diagnosis.get("label"), diagnosis.get("cause")
        evidence = diagnosis.get("evidence") or {}
    else:
        label, cause, evidence = diagnosis.label, diagnosis.cause, diagnosis.evidence or {}
    label = str(label) if label is not None else None
    if label == DiagnosisLabel.DIVERGED and cause in (DiagnosisCause.BAD_DATA, DiagnosisCause.BAD_SCALE):
        return None
    order = LABEL_NOTCHES.get(label or "")
    if not order:
        return None
    if label == DiagnosisLabel.UNDERFITTING and evidence.get("still_improving"):
        order = ("longer", "wider")
    p = _Params(params, space_info)
    usual = usual_lr(params, space_info)
    lr = p.number("lr")
    if label == DiagnosisLabel.DIVERGED and usual and lr and lr / 3 >= FAR_ABOVE_USUAL * usual:
        order = ("lr_down_far",) + order
    available = notches(params, space_info, far=True)
    for name in order:
        change = available.get(name)
        if not change:
            continue
        knob, new = _leaf(change)
        canonical = ALIASES.get(knob, knob)
        old = p.get(canonical)
        why = _WHY[name].format(label=label.replace("_", " "), old=_show(old), new=_show(new),
                                what=canonical.replace("_", " "), optimizer=p.get("optimizer"), usual=_show(usual))
        return Variant(change, why[0].upper() + why[1:] + ".", name)
    return None


def optimizer_of(params: Mapping[str, Any], space_info: Mapping[str, Any] | None = None) -> str | None:
    """The trial's optimizer name, lower case (params first, then the objective's defaults), or None."""
    name = _Params(params, space_info).get("optimizer")
    return str(name).lower() if isinstance(name, str) else None


def lr_of(params: Mapping[str, Any], space_info: Mapping[str, Any] | None = None) -> float | None:
    """The trial's configured lr (params first, then defaults), when it is a finite number."""
    return _Params(params, space_info).number("lr")


def usual_lr(params: Mapping[str, Any], space_info: Mapping[str, Any] | None = None) -> float | None:
    """The usual starting lr of the trial's optimizer (USUAL_LR), or None when the optimizer is not
    among the params or defaults, or is one the table does not know."""
    name = optimizer_of(params, space_info)
    return USUAL_LR.get(name) if name is not None else None


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
