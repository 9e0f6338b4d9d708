"""Advice for a whole study, from many trials' params, values, states and diagnoses together.

What a practitioner reads off a table of runs, each rule one kind of `Advice`:

  pipeline          trials whose loss was NaN before any update, or started far above ln(C): the
                    data or its scale is broken, and no hyperparameter will fix it
  range_diverges    the diverged (or lr_too_high) trials all sit beyond one value of a numeric
                    parameter, and almost every trial beyond it failed: move that bound
  range_too_low     the same for trials that barely learnt (lr_too_low), on the low side
  value_diverges    the diverged trials all share one categorical value that mostly fails
  edge_of_range     the best trials all sit in the top or bottom 10% of a numeric range: widen it
  common_label      most trials share a diagnosis (overfitting, underfitting, plateau, noisy,
                    lr_too_low, lr_too_high): change what all of them have in common
  trial_faults      any other confident fault, one line per label: which trials, and that each
                    carries a variant to try. Without it a study whose confident faults are a
                    minority (4 of 20 trials lr_too_low.slow in the demo) said "No advice yet"
                    while its trial pages each named a fault and a change

Every rule counts a trial's diagnosis only when it is confident (>= CONFIDENT): a guess (a label
under 0.6, which the curves corpus measured right on under 85% of runs) makes no line.

Parameters are the flat dotted names the server stores; the space supplies kinds, bounds and log
scales (only a dimension's name, kind, bounds, values and is_log are used).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from tuneserve_service.diagnosis.thresholds import THRESHOLDS, Thresholds
from tuneserve_service.diagnosis.trial import CONFIDENT, Diagnosis, finite_json, fmt, num
from tuneserve.schemas.enums import AdviceKind, DiagnosisCause, DiagnosisLabel, TrialState
from tuneserve_service.space import Dimension, SearchSpace
from tuneserve_service.space.model import value_key


@dataclass(frozen=True)
class TrialSummary:
    """What study advice needs of one trial."""

    number: int
    state: str
    params: Mapping[str, Any]
    value: float | None = None
    diagnosis: Diagnosis | None = None


@dataclass(frozen=True)
class Advice:
    kind: AdviceKind
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    param: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "evidence": finite_json(self.evidence), "param": self.param}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Advice":
        return cls(str(data["kind"]), str(data["message"]), dict(data.get("evidence") or {}), data.get("param"))


def study_advice(trials: Iterable[TrialSummary], space: SearchSpace, goal: str = "minimize",
                 thresholds: Thresholds = THRESHOLDS) -> list[Advice]:
    """Advice from the ended trials (running and waiting ones are ignored), most urgent first."""
    ended = [t for t in trials if t.state not in (TrialState.WAITING, TrialState.RUNNING)]
    if not ended:
        return []
    out: list[Advice] = []
    out += _pipeline(ended)
    diverging = [t for t in ended if _label(t) == DiagnosisLabel.DIVERGED and _cause(t) in (None, DiagnosisCause.LR_TOO_HIGH)
                 or _label(t) == DiagnosisLabel.LR_TOO_HIGH]
    slow = [t for t in ended if _label(t) == DiagnosisLabel.LR_TOO_LOW]
    ranged: set[str] = set()
    covered: set[str] = set()  # fault labels a line above already speaks for (trial_faults skips them)
    for bad, side, kind, verb, labels in (
            (diverging, "high", AdviceKind.RANGE_DIVERGES, _verb_diverged, (DiagnosisLabel.DIVERGED, DiagnosisLabel.LR_TOO_HIGH)),
            (slow, "low", AdviceKind.RANGE_TOO_LOW, _verb_slow, (DiagnosisLabel.LR_TOO_LOW,))):
        found = _range_rule(bad, ended, space, side, kind, verb, thresholds)
        if found is not None:
            out.append(found)
            ranged.add(str(found.evidence.get("label")))
            covered |= {str(label) for label in labels}
        elif bad:
            categorical = _categorical_rule(bad, ended, space, verb, thresholds)
            out += categorical
            if categorical:
                covered |= {str(label) for label in labels}
    out += _edge_rule(ended, space, goal, thresholds)
    common = _common_label(ended, ranged, thresholds)
    out += common
    covered |= {str(a.evidence.get("label")) for a in common}
    out += _trial_faults(ended, covered)
    return out


def _judged(t: TrialSummary) -> Diagnosis | None:
    """The trial's diagnosis when it counts: only confident ones (confidence >= CONFIDENT, 0.6)
    feed study advice, so a handful of short or ambiguous curves cannot make a pattern."""
    d = t.diagnosis
    return d if d is not None and d.confidence >= CONFIDENT else None


def _label(t: TrialSummary) -> str | None:
    d = _judged(t)
    return None if d is None else str(d.label)


def _cause(t: TrialSummary) -> str | None:
    d = _judged(t)
    return None if d is None or d.cause is None else str(d.cause)


def _verb_diverged(bad: list[TrialSummary], total: int) -> str:
    diverged = sum(_label(t) == DiagnosisLabel.DIVERGED for t in bad)
    what = ("diverged" if diverged == len(bad) else "ran with too high a learning rate" if not diverged
            else "diverged or ran with too high a learning rate")
    return f"{len(bad)} of {total} trials {what}"


def _verb_slow(bad: list[TrialSummary], total: int) -> str:
    return f"{len(bad)} of {total} trials barely learnt"


# ---- broken pipelines --------------------------------------------------------------------------

def _pipeline(ended: list[TrialSummary]) -> list[Advice]:
    out = []
    data = [t.number for t in ended if _cause(t) == DiagnosisCause.BAD_DATA]
    if data:
        out.append(Advice(AdviceKind.PIPELINE, f"{len(data)} trial(s) had a NaN loss before any update: the data holds NaN "
                          f"or inf, and no hyperparameter will fix that; clean the data first.",
                          {"cause": "bad_data", "trials": data[:20], "count": len(data)}))
    scale = [t.number for t in ended if _cause(t) == DiagnosisCause.BAD_SCALE]
    if scale:
        out.append(Advice(AdviceKind.PIPELINE, f"{len(scale)} trial(s) started at a loss far above ln(C) and diverged: "
                          f"normalise the inputs (zero mean, unit variance) and check the weight init.",
                          {"cause": "bad_scale", "trials": scale[:20], "count": len(scale)}))
    return out


# ---- numeric ranges ----------------------------------------------------------------------------

def _numeric(space: SearchSpace) -> list[Dimension]:
    return [d for d in space.dimensions if d.kind in ("int", "float") and d.value_bounds() is not None]


def _x(t: TrialSummary, dim: Dimension) -> float | None:
    v = t.params.get(dim.name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _nice(x: float, side: str, is_log: bool) -> float:
    """A round bound near x: one significant digit, rounded towards the safe side (down for an
    upper bound, up for a lower bound)."""
    if x <= 0 or not is_log and abs(x) >= 1 and float(x).is_integer():
        return x
    exp = math.floor(math.log10(abs(x)))
    unit = 10.0 ** exp
    digit = (math.floor if side == "high" else math.ceil)(x / unit + (1e-9 if side == "high" else -1e-9))
    return float(f"{digit * unit:.6g}")


def _range_rule(bad: list[TrialSummary], ended: list[TrialSummary], space: SearchSpace, side: str,
                kind: str, verb, t: Thresholds) -> Advice | None:
    """One numeric parameter beyond which (nearly) every trial went bad, and that holds all of them."""
    if len(bad) < t.min_trials_for_range:
        return None
    bad_ids = {b.number for b in bad}
    best: tuple[float, Advice] | None = None
    for dim in _numeric(space):
        xs_bad = [x for x in (_x(b, dim) for b in bad) if x is not None]
        if len(xs_bad) < len(bad):
            continue
        edge = min(xs_bad) if side == "high" else max(xs_bad)
        beyond = [tr for tr in ended if (x := _x(tr, dim)) is not None and (x >= edge if side == "high" else x <= edge)]
        purity = sum(tr.number in bad_ids for tr in beyond) / len(beyond)
        good = [x for tr in ended if tr.number not in bad_ids and (x := _x(tr, dim)) is not None
                and (x < edge if side == "high" else x > edge)]
        if purity < t.range_purity or not good:
            continue  # mixed beyond the edge, or no good trial on the other side to keep
        lo, hi = dim.value_bounds()
        nearest_good = max(good) if side == "high" else min(good)
        bound = _nice(edge, side, dim.is_log)
        if (side == "high" and bound < nearest_good) or (side == "low" and bound > nearest_good):
            bound = float(f"{nearest_good:.2g}")
        if not lo < bound < hi:
            continue
        if dim.kind == "int":
            bound = int(math.floor(bound) if side == "high" else math.ceil(bound))
        sign, which, act = (">=", "upper", "lower") if side == "high" else ("<=", "lower", "raise")
        message = (f"{verb(bad, len(ended))}, all with {dim.name} {sign} {fmt(edge)}: {act} {dim.name}'s "
                   f"{which} bound to {fmt(bound)}.")
        label = "diverged" if side == "high" else "lr_too_low"
        advice = Advice(kind, message, {"label": label, "count": len(bad), "total": len(ended), "threshold": num(edge),
                                        "suggested_bound": num(bound), "purity": num(purity, 3),
                                        "trials": sorted(bad_ids)[:20]}, dim.name)
        score = purity + len(good) / len(ended)  # clean and keeping most of the trials
        if best is None or score > best[0]:
            best = (score, advice)
    return None if best is None else best[1]


def _categorical_rule(bad: list[TrialSummary], ended: list[TrialSummary], space: SearchSpace, verb,
                      t: Thresholds) -> list[Advice]:
    if len(bad) < t.min_trials_for_range:
        return []
    bad_ids = {b.number for b in bad}
    for dim in space.dimensions:
        if dim.kind != "categorical" or len(dim.values) < 2:
            continue
        keys = {value_key(b.params.get(dim.name)) for b in bad}
        if len(keys) != 1:
            continue
        value = bad[0].params.get(dim.name)
        same = [tr for tr in ended if value_key(tr.params.get(dim.name)) in keys]
        purity = sum(tr.number in bad_ids for tr in same) / len(same)
        if purity >= t.range_purity and len(same) < len(ended):
            return [Advice(AdviceKind.VALUE_DIVERGES, f"{verb(bad, len(ended))}, all with {dim.name} = {value!r} "
                           f"({sum(tr.number in bad_ids for tr in same)} of its {len(same)} trials): drop that value "
                           f"or give it its own, lower learning-rate range.",
                           {"value": value, "count": len(bad), "purity": num(purity, 3)}, dim.name)]
    return []


def _unit(x: float, lo: float, hi: float, is_log: bool) -> float:
    """Where x sits in [lo, hi] as the search sees it (in log space for log parameters)."""
    if is_log and lo > 0:
        return (math.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (x - lo) / (hi - lo)


def _edge_rule(ended: list[TrialSummary], space: SearchSpace, goal: str, t: Thresholds) -> list[Advice]:
    done = [tr for tr in ended if tr.state == TrialState.COMPLETED and tr.value is not None and math.isfinite(tr.value)]
    if len(done) < t.min_completed_for_edge:
        return []
    k = min(t.top_k, len(done) // 2)
    top = sorted(done, key=lambda tr: tr.value if goal == "minimize" else -tr.value)[:k]
    out = []
    for dim in _numeric(space):
        lo, hi = dim.value_bounds()
        xs = [_x(tr, dim) for tr in top]
        if hi <= lo or any(x is None or (dim.is_log and x <= 0) for x in xs):
            continue
        units = [_unit(x, lo, hi, dim.is_log) for x in xs]
        if min(units) >= 1 - t.edge:
            where, act = "top", "raise its upper bound"
        elif max(units) <= t.edge and not (lo <= 0 and not dim.is_log):
            where, act = "bottom", "lower its lower bound"  # a floor of 0 (dropout) cannot move
        else:
            continue
        out.append(Advice(AdviceKind.EDGE_OF_RANGE, f"The best {k} trials all sit at the {where} of {dim.name}'s range "
                          f"({fmt(min(xs))}-{fmt(max(xs))} of {fmt(lo)}-{fmt(hi)}): widen it ({act}).",
                          {"side": where, "values": [num(x) for x in xs], "low": num(lo), "high": num(hi),
                           "trials": [tr.number for tr in top]}, dim.name))
    return out


# ---- what most trials share --------------------------------------------------------------------

_COMMON = {
    DiagnosisLabel.OVERFITTING: "add regularisation (dropout, weight decay, augmentation) or stop earlier",
    DiagnosisLabel.UNDERFITTING: "give the model more capacity (widen width/depth ranges) or less regularisation",
    DiagnosisLabel.PLATEAU: "add an lr decay (a step or plateau schedule) or search lower learning rates",
    DiagnosisLabel.NOISY: "use larger batches or lower learning rates, and repeat the top configurations before trusting the best",
    DiagnosisLabel.LR_TOO_LOW: "move the learning-rate range up",
    DiagnosisLabel.LR_TOO_HIGH: "move the learning-rate range down",
}


def _common_label(ended: list[TrialSummary], ranged: set[str], t: Thresholds) -> list[Advice]:
    judged = [tr for tr in ended if tr.diagnosis is not None]
    if len(judged) < 3:
        return []
    out = []
    for label, act in _COMMON.items():
        hits = [tr for tr in judged if _label(tr) == label]  # confident ones; the share is of all judged
        if len(hits) < 3 or len(hits) < t.common_share * len(judged):
            continue
        if label in (DiagnosisLabel.LR_TOO_LOW, DiagnosisLabel.LR_TOO_HIGH) and (
                {"lr_too_low", "diverged"} & ranged):
            continue  # a range rule already said where
        who = "every trial" if len(hits) == len(judged) else f"{len(hits)} of {len(judged)} trials"
        evidence: dict[str, Any] = {"label": str(label), "count": len(hits), "total": len(judged),
                                    "trials": [tr.number for tr in hits][:20]}
        what = {DiagnosisLabel.OVERFITTING: "overfit", DiagnosisLabel.UNDERFITTING: "underfit",
                DiagnosisLabel.PLATEAU: "plateau", DiagnosisLabel.NOISY: "have noisy validation curves",
                DiagnosisLabel.LR_TOO_LOW: "barely learn", DiagnosisLabel.LR_TOO_HIGH: "run with too high a learning rate"}[label]
        if who == "every trial":
            what = {"overfit": "overfits", "underfit": "underfits", "plateau": "plateaus",
                    "have noisy validation curves": "has a noisy validation curve", "barely learn": "barely learns",
                    "run with too high a learning rate": "runs with too high a learning rate"}[what]
        if label == DiagnosisLabel.OVERFITTING:
            steps = [tr.diagnosis.evidence.get("best_step") for tr in hits]
            steps = [s for s in steps if isinstance(s, (int, float))]
            if steps:
                median = statistics.median(steps)
                evidence["median_best_step"] = num(median)
                what += f" after epoch {median:g}" + (" (median)" if len(set(steps)) > 1 else "")
        out.append(Advice(AdviceKind.COMMON_LABEL, f"{who[0].upper()}{who[1:]} {what}: {act}.", evidence))
    return out


_FAULT_WHAT = {
    DiagnosisLabel.DIVERGED: "diverged",
    DiagnosisLabel.LR_TOO_HIGH: "ran with too high a learning rate",
    DiagnosisLabel.LR_TOO_LOW: "learnt too slowly for their learning rate",
    DiagnosisLabel.OVERFITTING: "overfit",
    DiagnosisLabel.UNDERFITTING: "underfit",
    DiagnosisLabel.PLATEAU: "plateaued",
    DiagnosisLabel.NOISY: "had noisy validation curves",
}


def _trial_faults(ended: list[TrialSummary], covered: set[str]) -> list[Advice]:
    """One line per confident fault label that no other line covers: how many trials, which, and
    that each trial's diagnosis carries the change to try (trial page, `tuneserve trial try-advice`).
    Data faults (bad_data, bad_scale) are the pipeline line's."""
    out = []
    judged = [tr for tr in ended if tr.diagnosis is not None]
    for label, what in _FAULT_WHAT.items():
        if str(label) in covered:
            continue
        hits = [tr for tr in judged if _label(tr) == label
                and _cause(tr) not in (DiagnosisCause.BAD_DATA, DiagnosisCause.BAD_SCALE)]
        if not hits:
            continue
        numbers = [tr.number for tr in hits]
        # "#n": the trials' numbers in the study, as the dashboard lists them (not their ids)
        shown = ", ".join(f"#{n}" for n in numbers[:8]) + (", ..." if len(numbers) > 8 else "")
        with_variant = sum(tr.diagnosis.variant is not None for tr in hits)
        one = len(hits) == 1
        try_it = (f"{'its' if one else 'each'} diagnosis proposes a variant to try (its trial page, or "
                  f"`tuneserve trial try-advice` with the trial's id)" if with_variant == len(hits) else
                  f"{with_variant} of them propose a variant to try (trial page, or `tuneserve trial try-advice` with the "
                  f"trial's id)"
                  if with_variant else "see each trial's diagnosis")
        rules = sorted({tr.diagnosis.rule for tr in hits if tr.diagnosis.rule})
        out.append(Advice(AdviceKind.TRIAL_FAULTS,
                          f"{len(hits)} of {len(judged)} trial{'' if len(judged) == 1 else 's'} {what} "
                          f"(trial{'' if one else 's'} {shown}): {try_it}.",
                          {"label": str(label), "count": len(hits), "total": len(judged), "trials": numbers[:20],
                           "rules": rules, "with_variant": with_variant,
                           "confidence_min": num(min(tr.diagnosis.confidence for tr in hits), 3)}))
    return out
