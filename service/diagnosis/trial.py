"""Diagnose one trial from its curves: what went wrong, the numbers that show it, what to change.

The rules read the per-step reports the server stores (train_loss, val_loss, train_acc, val_acc,
lr, grad_norm, update_ratio, and `initial_loss` / `num_classes` when reported; any may be missing),
the trial's state and its fail reason. They are tried in order, first match wins:

  diverged      a loss went NaN/inf or exploded (100 ln C); the cause is bad_data when the loss was
                already NaN before any update, bad_scale when it started far above ln(C), else
                lr_too_high
  lr_too_high   the loss never got 10% below its start and rose 1.5x in the first epochs (or the
                update ratio is far above 1e-3), or the training loss climbed back up late and
                stayed up for the last two reports (both guesses, 0.5)
  (too short)   fewer than 3 reports and none of the above: insufficient while running, else
                healthy at confidence 0.2
  lr_too_low    nothing learnt, tiny updates (far too low; confidence 0.5), or nothing learnt at a
                normal update pace (a guess: 0.45); or learning slowly: the raw validation loss at a
                new low at the last report, 0.5..15% below 3 reports before, still above 0.6 ln C, with
                updates under 1e-2 and the training loss no lower than 0.95x the validation loss
                (`lr_too_low.slow`, 0.7: lr x 3 is the change that helps); on SGD/Nesterov only
                below a third of the usual rate 0.05. With the optimizer known (the trial's params),
                nothing learnt at 3x+ its usual rate is `lr_too_high.nothing_learnt` (0.4) instead
  overfitting   on raw reports, never while the validation loss sets a new minimum at the last
                report: it rose after its best epoch (2+ reports later, by more than the curve's
                jitter) while training kept falling, or it sat 3x above a low training loss at
                both of the last two reports (a guess, 0.5)
  underfitting  both losses high (training above half of ln C) and stalled (a guess, 0.5)
  plateau       fell by 30%+, then stalled for 3 epochs at a constant lr, not yet fitted (a guess, 0.5)
  noisy         the validation curve spikes away from its neighbours twice or more (a guess, 0.5)
  healthy       none of the above: learnt (best validation loss under 0.3 ln C) and settled (0.5:
                on the corpus a change still helped 3 of 7 such runs),
                settled higher up (0.5, `healthy.settled_high`), or still improving (0.5: not a
                fault, but training longer or faster often helps)

Every diagnosis names the rule that fired (`rule`, a stable id such as "overfitting.val_rise") and a
`confidence` in 0..1; study advice and the benchmark count a label only at CONFIDENT (0.6) or more.
The confidences were set on the seed-even half of the curves corpus (benchmarks/advice.py): a rule
that fired on 3+ runs there and whose change beat the seed spread on under 85% of them is a guess
under 0.6, whatever the curve's shape says (see SLOW_CONFIDENCE and LEARNT_CURVE_CONFIDENCE).
Figures it cites are raw reports ("last" is the last report, with `last_step`), never smoothed.
Every number in to_json() is finite or None (PostgreSQL's json refuses NaN and Infinity); the
names of non-finite figures are in evidence["non_finite"]. With the trial's params a fault also
carries the `variant` to try (variant.py).
`insufficient` is a running trial with fewer than 3 reports; an ended one that short is healthy at
confidence 0.2 (no divergence seen, and a pruned 2-epoch trial keeps its label); its text cites the
curves and says they are too few to judge.

Thresholds live in thresholds.py. A running trial gets the same rules, marked provisional.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from tuneserve_service.diagnosis.curve import Curve, is_loss, reason_figures, to_float
from tuneserve_service.diagnosis.thresholds import THRESHOLDS, Thresholds
from tuneserve_service.diagnosis.variant import (FAR_ABOVE_USUAL, SGD_FAMILY, Variant, lr_of, optimizer_of, propose_variant,
                                                   usual_lr)
from tuneserve.schemas.enums import DiagnosisCause, DiagnosisLabel, TrialState

Label, Cause = DiagnosisLabel, DiagnosisCause


def num(x: float | int | None, digits: int = 4) -> float | int | None:
    """A figure for evidence: 4 significant digits, finite or None. NaN, infinities and values
    whose rounding overflows (1.7977e308 -> inf) are None: PostgreSQL's json refuses them, and a
    figure that is not a number says nothing a reader can compare (`non_finite` names them)."""
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x if abs(x) < 2**63 else None
    try:
        x = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(x):
        return None
    rounded = float(f"{x:.{digits}g}")
    return rounded if math.isfinite(rounded) else x


def finite_json(value: Any) -> Any:
    """`value` with every number finite or None, recursively (dicts, lists, tuples): what every
    to_json of the diagnosis returns, so a stored diagnosis never holds NaN or Infinity."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return num(value, 17) if isinstance(value, float) else (value if abs(value) < 2**63 else None)
    if isinstance(value, Mapping):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    try:
        return finite_json(float(value))  # numpy scalars
    except (TypeError, ValueError, OverflowError):
        return str(value)


def _kind(x: float | None) -> str | None:
    if x is None or math.isfinite(x):
        return None
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _ratio(a: float, b: float) -> float | None:
    try:
        r = a / b
    except (ZeroDivisionError, OverflowError):
        return None
    return r if math.isfinite(r) else None


def fmt(x: float | None) -> str:
    """A figure for a sentence: 3 significant digits."""
    if x is None:
        return "?"
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.3g}"


# Study advice (study.py) and the benchmark count a label only at this confidence or above.
CONFIDENT = 0.6
# Set on the seed-even half of the curves corpus (benchmarks/advice.py): a rule that fired on 3+
# runs there and whose change beat the seed spread on fewer than 85% of them is a guess under
# CONFIDENT, which study advice does not count; one that fired on fewer keeps its designed
# confidence (the benchmark reports it as too few to judge). `diverged` is a fact, not a guess.
SLOW_CONFIDENCE = 0.7
# The fault rules that read the shape of a curve that learnt (overfitting.val_rise, plateau,
# noisy, lr_too_high.climbs_back) are each too rare there to measure alone, and together their
# changes never beat the seed spread (0 of 7 on the seed-even half: on runs that learnt, seeds
# move the best validation loss by 30%+): guesses, until a corpus shows otherwise.
LEARNT_CURVE_CONFIDENCE = 0.5
# healthy.learnt ("nothing to change"), by the same measure: right on 4 of 7 tune-half runs.
LEARNT_HEALTHY_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Diagnosis:
    """`rule` is the stable id of the rule that fired (e.g. "overfitting.val_rise"); `confidence`
    (0..1) how sure it is; `variant` the change to try (variant.py), when params were given."""

    label: DiagnosisLabel
    advice: str
    evidence: dict[str, Any] = field(default_factory=dict)
    cause: DiagnosisCause | None = None
    provisional: bool = False
    confidence: float = 1.0
    rule: str = ""
    variant: Variant | None = None

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT

    def to_json(self) -> dict[str, Any]:
        confidence = num(self.confidence, 3)
        return {"label": str(self.label), "cause": None if self.cause is None else str(self.cause),
                "evidence": finite_json(self.evidence), "advice": self.advice, "provisional": self.provisional,
                "confidence": None if confidence is None else min(1.0, max(0.0, float(confidence))),
                "rule": self.rule, "variant": None if self.variant is None else finite_json(self.variant.to_json())}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Diagnosis":
        """Rebuild from to_json(); stored JSON is input too, so unknown labels are an error.
        Diagnoses stored before confidence and rule existed read as confidence 1, rule ""."""
        cause = data.get("cause")
        confidence = to_float(data.get("confidence"))
        variant = data.get("variant")
        return cls(label=DiagnosisLabel(data["label"]), advice=str(data.get("advice", "")),
                   evidence=dict(data.get("evidence") or {}),
                   cause=None if cause is None else DiagnosisCause(cause),
                   provisional=bool(data.get("provisional", False)),
                   confidence=1.0 if confidence is None or not math.isfinite(confidence) else confidence,
                   rule=str(data.get("rule") or ""),
                   variant=Variant.from_json(variant) if isinstance(variant, Mapping) else None)


@dataclass
class _Facts:
    curve: Curve
    extra: dict[str, float]          # final metrics and the fail reason's figures
    num_classes: int | None
    initial: float | None            # the loss before any update (may be NaN)
    provisional: bool
    t: Thresholds
    optimizer: str | None = None     # from the trial's params (or the objective's defaults), lower case
    usual_lr: float | None = None    # that optimizer's usual starting rate (variant.USUAL_LR)
    lr_param: float | None = None    # the lr the trial was configured with

    @property
    def chance(self) -> float | None:
        return math.log(self.num_classes) if self.num_classes and self.num_classes >= 2 else None

    def last(self, name: str) -> float | None:
        values = self.curve.values(name)
        if values:
            return values[-1]
        value = self.extra.get(name)
        return value if value is not None and math.isfinite(value) else None

    def done(self, label: Label, advice: str, evidence: dict[str, Any], cause: Cause | None = None, *,
             rule: str, confidence: float = 1.0) -> "Diagnosis":
        evidence = {k: v for k, v in evidence.items() if v is not None}
        confidence = round(min(1.0, max(0.0, confidence)), 3) if math.isfinite(confidence) else 0.0
        return Diagnosis(label, advice, evidence, cause, self.provisional, confidence, rule)


def diagnose_trial(
    reports: Iterable[Any] = (),
    *,
    state: str = TrialState.COMPLETED,
    fail_kind: str | None = None,
    fail_reason: str | None = None,
    final_metrics: Mapping[str, Any] | None = None,
    metric: str = "val_loss",
    num_classes: int | None = None,
    initial_loss: float | None = None,
    thresholds: Thresholds = THRESHOLDS,
    params: Mapping[str, Any] | None = None,
    space_info: Mapping[str, Any] | None = None,
) -> Diagnosis | None:
    """The trial's diagnosis, or None when there is nothing to judge: a waiting trial, or one that
    failed (not diverged) or reported no loss at all. `final_metrics` are figures known at the end
    that never became a stored report (a Diverged exception's metrics); `num_classes` and
    `initial_loss` default to the reported metrics of those names. With the trial's `params` (and
    `space_info`, see variant.py) a fault carries the variant to try."""
    found = _diagnose(reports, state, fail_kind, fail_reason, final_metrics, metric, num_classes, initial_loss,
                      thresholds, params, space_info)
    if found is None or params is None:
        return found
    variant = propose_variant(found, params, space_info)
    return dataclasses.replace(found, variant=variant) if variant is not None else found


def _diagnose(reports, state, fail_kind, fail_reason, final_metrics, metric, num_classes, initial_loss,
              thresholds, params=None, space_info=None) -> Diagnosis | None:
    if state == TrialState.WAITING:
        return None
    curve = Curve.from_reports(reports)
    extra = reason_figures(fail_reason)
    for name, value in (final_metrics or {}).items():
        number = to_float(value)
        if number is not None:
            extra[name] = number
    classes = num_classes or curve.first("num_classes") or extra.get("num_classes")
    initial = initial_loss if initial_loss is not None else curve.first("initial_loss")
    if initial is None:
        initial = extra.get("initial_loss")
    classes = to_float(classes)
    # A class count must be a plausible whole number; anything else (NaN, 1e308) is ignored.
    classes = int(classes) if classes is not None and math.isfinite(classes) and 2 <= classes <= 1e9 else None
    f = _Facts(curve, extra, classes, initial, state == TrialState.RUNNING, thresholds)
    if params is not None:
        f.optimizer = optimizer_of(params, space_info)
        f.usual_lr = usual_lr(params, space_info)
        lr = lr_of(params, space_info)
        f.lr_param = lr if lr is not None and lr > 0 else None

    diverged = _diverged(f, state == TrialState.DIVERGED or fail_kind == "diverged")
    if diverged is not None:
        return diverged
    train = curve.series("train_loss")
    val = curve.series("val_loss") or (curve.series(metric) if is_loss(metric) else [])
    main = train or val
    if not main:
        return None
    found = _lr_too_high(f, main, train, val)
    if found is not None:
        return found
    if len(main) < MIN_STEPS:
        return _too_short(f, main, train, val)
    for rule in (_lr_too_low, _slow, _overfitting, _underfitting, _plateau, _noisy):
        found = rule(f, main, train, val)
        if found is not None:
            return found
    return _healthy(f, main, train, val)


MIN_STEPS = 3  # fewer reports than this: only a divergence or an early explosion is named


# ---- diverged ----------------------------------------------------------------------------------

def _diverged(f: _Facts, ended_diverged: bool) -> Diagnosis | None:
    t, chance = f.t, f.chance
    bad = f.curve.first_non_finite()
    if bad is None:
        for name in sorted(f.extra):
            if is_loss(name) and not math.isfinite(f.extra[name]):
                step = f.extra.get("epoch", f.extra.get("step"))
                bad = (int(step) if step is not None else None, name, f.extra[name])
                break
    exploded = None
    if chance is not None:
        for step, row in zip(f.curve.steps, f.curve.rows):
            over = [n for n in sorted(row) if is_loss(n) and math.isfinite(row[n])
                    and row[n] > t.exploded_factor * chance and n != "initial_loss"]
            if over:
                exploded = (step, over[0], row[over[0]])
                break
    if not (ended_diverged or bad or exploded):
        return None
    where = bad or exploded
    if where is None:  # ended diverged, no figure says where: the reason's or the last loss
        losses = {n: v for n, v in f.extra.items() if is_loss(n) and n != "initial_loss"}
        name = next(iter(sorted(losses)), None)
        step = f.extra.get("epoch", f.extra.get("step"))
        where = (int(step) if step is not None else None, name, losses.get(name))
    step, name, value = where
    what = "went non-finite" if value is not None and not math.isfinite(value) else "exploded"
    evidence: dict[str, Any] = {"step": step, "metric": name, "value": num(value),
                                "initial_loss": num(f.initial), "chance_loss": num(chance)}
    non_finite = {k: _kind(v) for k, v in (("value", value), ("initial_loss", f.initial)) if _kind(v)}
    if non_finite:  # the figures JSON cannot hold, by name: "nan", "inf" or "-inf"
        evidence["non_finite"] = non_finite
    init = f.initial

    if (init is not None and not math.isfinite(init)) or (init is None and f.extra.get("before_update")):
        return f.done(Label.DIVERGED, "The loss was already NaN before the first update, so no learning "
                      "rate caused it: the inputs (or labels) hold NaN or inf; check the data "
                      "(torch.isfinite(x).all()) before tuning anything.", evidence, Cause.BAD_DATA,
                      rule="diverged.nan_before_update")
    if init is not None and chance is not None and init > t.bad_scale_factor * chance:
        evidence["initial_over_chance"] = num(_ratio(init, chance), 3)
        return f.done(Label.DIVERGED, f"The loss started at {fmt(init)} before any update, "
                      f"{init / chance:.0f}x ln({f.num_classes}) = {fmt(chance)}: the inputs or initial "
                      f"weights are far too large; normalise the inputs to zero mean and unit variance "
                      f"and check the weight init.", evidence, Cause.BAD_SCALE, rule="diverged.bad_scale")

    lr = f.last("lr")
    grads = f.curve.values("grad_norm")
    if "grad_norm" in f.extra and math.isfinite(f.extra["grad_norm"]) and (not grads or f.extra["grad_norm"] != grads[-1]):
        grads = grads + [f.extra["grad_norm"]]
    losses = f.curve.values("train_loss") or f.curve.values("val_loss")
    growing = len(grads) >= 2 and grads[-1] > 2 * grads[0]
    rising = bool(losses) and init is not None and max(losses) > t.rise_factor * init
    evidence.update({"lr": num(lr), "grad_norm_first": num(grads[0]) if grads else None,
                     "grad_norm_last": num(grads[-1]) if grads else None,
                     "grad_norm_growing": growing or None, "loss_rising": rising or None})
    at = f" at epoch {step}" if step is not None else ""
    # A sound first loss rules out the data and the scale; what is left is the step size.
    if init is not None or growing or rising or lr is not None:
        grad_text = f", gradient norm {fmt(grads[0])} -> {fmt(grads[-1])}" if len(grads) >= 2 else ""
        # the cut variant.py proposes: lr / 10 far above the optimizer's usual rate, else lr / 3
        base = f.lr_param or lr
        far = bool(base and f.usual_lr and base / 3 >= FAR_ABOVE_USUAL * f.usual_lr)
        try_lr = f" (try {fmt(base / (10 if far else 3))})" if base else ""
        return f.done(Label.DIVERGED, f"The loss {what}{at} (lr {fmt(lr)}{grad_text}) after a sound "
                      f"start: lower the learning rate{try_lr} or clip the gradient norm at 5-15.",
                      evidence, Cause.LR_TOO_HIGH, rule="diverged.after_sound_start")
    return f.done(Label.DIVERGED, f"The loss {what}{at} with nothing reported before it: lower the "
                  f"learning rate first; if it persists, check the inputs for NaN/inf and that they are "
                  f"normalised (report initial_loss and num_classes to tell these apart).", evidence,
                  rule="diverged.unknown_cause")


# ---- is it learning ----------------------------------------------------------------------------

def _has_initial(f: _Facts) -> bool:
    """A finite loss before the first update was reported: the run's start, ahead of epoch 1."""
    return f.initial is not None and math.isfinite(f.initial)


def _start(f: _Facts, main: list[tuple[int, float]]) -> float:
    return f.initial if _has_initial(f) else main[0][1]


def _start_text(f: _Facts, main: list[tuple[int, float]]) -> str:
    """The start a text quotes: the loss before the first update names itself, since the plotted
    curve begins at the first epoch's report (the demo: "2.29 -> 0.219" beside a chart from 1.22)."""
    return f"{fmt(f.initial)} before training" if _has_initial(f) else fmt(main[0][1])


def _progress(start: float, best: float) -> float:
    return (start - best) / abs(start) if start else 0.0


def _rose(f: _Facts, main: list[tuple[int, float]]) -> float | None:
    """The highest early loss when it went rise_factor above the start, else None."""
    start = _start(f, main)
    early = [v for _, v in main[:f.t.early_steps]]
    if not _has_initial(f):
        early = early[1:]  # the first report is the start itself
    peak = max(early, default=None)
    return peak if peak is not None and peak >= f.t.rise_factor * start else None


def _update_ratio(f: _Facts) -> float | None:
    values = f.curve.values("update_ratio")
    return statistics.median(values) if values else None


def _the_lr(lr: float | None) -> str:
    return f"the learning rate {fmt(lr)}" if lr is not None else "the learning rate"


def _configured_lr(f: _Facts) -> float | None:
    """The lr the trial started with (schedules only lower it afterwards), the one to change."""
    first = f.curve.first("lr")
    return first if first is not None and math.isfinite(first) else f.extra.get("lr")


def _lr_too_high(f, main, train, val) -> Diagnosis | None:
    t = f.t
    values = [v for _, v in main]
    start, best = _start(f, main), min(values)
    enough = len(main) >= 2 or (len(main) >= 1 and f.initial is not None)
    peak, ratio, lr = _rose(f, main), _update_ratio(f), _configured_lr(f)
    evidence = {"start": num(start), "best": num(best), "last": num(values[-1]), "last_step": main[-1][0],
                "early_peak": num(peak), "update_ratio": num(ratio), "lr": num(lr)}
    lower = f" (try {fmt(lr / 3)})" if lr else ""
    if enough and _progress(start, best) < t.no_progress and (peak is not None or (ratio or 0) >= t.update_ratio_high):
        why = (f"jumped to {fmt(peak)} in the first epochs" if peak is not None
               else f"the update ratio is {fmt(ratio)}, far above ~1e-3")
        return f.done(Label.LR_TOO_HIGH, f"The loss never got below its start ({_start_text(f, main)}, "
                      f"best {fmt(best)}) and {why}: {_the_lr(lr)} is too high; lower it{lower}.", evidence,
                      rule="lr_too_high.never_learnt",
                      # 10x above the start: so far too high that one lr / 3 notch seldom shows (corpus)
                      # the corpus (seed-even half): an early spike that then settled near chance was
                      # saved by one lr / 3 notch in only 2 of 5 runs: a guess
                      # and a large update ratio alone was right in 2 of 6: a guess too
                      confidence=0.5)
    if train and len(train) >= 4:
        tv = [v for _, v in train]
        best_i = min(range(len(tv)), key=tv.__getitem__)
        # A rise that lasts: the last two raw reports both well above the best, not one bad epoch.
        held = min(tv[-2:])
        if (best_i <= len(tv) - 3 and held >= t.rise_factor * tv[best_i]
                and held - tv[best_i] >= 0.1 * abs(start)):
            evidence.update({"best_step": train[best_i][0], "best": num(tv[best_i]), "last": num(tv[-1]),
                             "last_step": train[-1][0]})
            return f.done(Label.LR_TOO_HIGH, f"The training loss climbed back from {fmt(tv[best_i])} at epoch "
                          f"{train[best_i][0]} to {fmt(tv[-1])} at epoch {train[-1][0]}, the last report: the "
                          f"steps are too large to settle; lower the learning rate{lower} or decay it.", evidence,
                          rule="lr_too_high.climbs_back",
                          confidence=LEARNT_CURVE_CONFIDENCE)
    return None


def _lr_too_low(f, main, train, val) -> Diagnosis | None:
    """Nothing learnt (the loss never got 10% below its start) and no early rise.

    Tuned on the curves corpus (benchmarks/advice.py, seed-even half): with tiny updates (ratio
    under 1e-4) the lr is far too low, so far that one x3 notch rarely shows within the run
    (confidence 0.5); with updates at a normal pace (see _underfitting), lr x 3 saved only about
    half of the short runs that learnt nothing (a guess: 0.45, in _underfitting; wider or longer
    saved others, and some nothing did); a run still falling at the end is `_slow`'s."""
    t = f.t
    if len(main) < 3:
        return None
    values = [v for _, v in main]
    start, best = _start(f, main), min(values)
    ratio, lr = _update_ratio(f), _configured_lr(f)
    if _progress(start, best) >= t.no_progress or _rose(f, main) is not None:
        return None
    evidence = {"start": num(start), "best": num(best), "last": num(values[-1]), "last_step": main[-1][0],
                "steps": len(main), "update_ratio": num(ratio), "lr": num(lr)}
    if ratio is None or ratio <= t.update_ratio_low:
        moved = f", update ratio {fmt(ratio)} against ~1e-3" if ratio is not None else ""
        return f.done(Label.LR_TOO_LOW, f"The loss barely moved ({_start_text(f, main)} -> {fmt(values[-1])} "
                      f"in {len(main)} epochs{moved}): {_the_lr(lr)} is far too low; raise it 10x or more.", evidence,
                      rule="lr_too_low.barely_moved", confidence=0.5 if ratio is not None else 0.6)
    return None


def _too_short(f, main, train, val) -> Diagnosis:
    # A running trial is `insufficient` (more reports are coming); an ended one is healthy at a low
    # confidence: no sign of trouble was seen, and pruners end trials after 2 epochs by the hundred.
    if f.provisional:
        return f.done(Label.INSUFFICIENT, f"Only {len(main)} epoch(s) reported so far: too few to judge anything "
                      f"but a divergence or an early explosion.",
                      {"steps": len(main), "last": num(main[-1][1]), "last_step": main[-1][0]},
                      rule="insufficient.too_short", confidence=1.0)
    # The text cites the curves and claims nothing but the absence of a divergence: two epochs at
    # chance level are not "no sign of trouble", they are too few to tell.
    seen = ", ".join(f"{name} {' -> '.join(fmt(v) for _, v in series)}"
                     for name, series in (("training loss", train), ("validation loss", val)) if series)
    return f.done(Label.HEALTHY, f"Only {len(main)} epoch(s) reported ({seen}): too few to judge anything "
                  f"but a divergence, and none was seen.",
                  {"steps": len(main), "last": num(main[-1][1]), "last_step": main[-1][0]},
                  rule="healthy.too_short", confidence=0.2)


# ---- the shape of the curves -------------------------------------------------------------------

def _median3(values: list[float], i: int) -> float:
    window = values[max(0, i - 1): i + 2]
    return statistics.median(window)


def _scale(f: _Facts, main) -> float:
    return f.chance if f.chance is not None else abs(_start(f, main))


def _at_its_best_last(series: list[tuple[int, float]]) -> bool:
    """The raw last report is a new minimum of the series: it is still improving. (A tie with an
    earlier report is a flat curve, not an improvement.)"""
    return len(series) >= 2 and series[-1][1] < min(v for _, v in series[:-1]) or len(series) == 1


def _jitter(values: list[float]) -> float:
    """A curve's epoch-to-epoch noise: the median absolute second difference (a smooth decay, fast or
    slow, has small second differences; a zig-zag has large ones)."""
    if len(values) < 3:
        return 0.0
    return statistics.median(abs(values[i + 1] - 2 * values[i] + values[i - 1]) for i in range(1, len(values) - 1))


def _overfitting(f, main, train, val) -> Diagnosis | None:
    """Judged on raw reports only: smoothing lags at the end of a curve, and on short steep curves
    that lag reads as a rise. No overfitting while the raw validation loss is at its minimum at
    the last report, whatever the gap to the training loss."""
    t = f.t
    if len(train) < 3 or len(val) < 4 or _at_its_best_last(val):
        return None
    vs, ts = [v for _, v in val], dict(train)
    k = min(range(len(vs)), key=vs.__getitem__)
    best_step, v_best, last_step, v_last = val[k][0], vs[k], val[-1][0], vs[-1]
    t_last = ts.get(last_step, train[-1][1])
    t_at_best = ts.get(best_step)
    scale = _scale(f, main)
    evidence = {"best_step": best_step, "val_best": num(v_best), "val_last": num(v_last), "last_step": last_step,
                "train_at_best": num(t_at_best), "train_last": num(t_last)}
    need = max(t.overfit_give_back * (vs[0] - v_best), t.overfit_min_rise * scale)
    after = vs[k + 1:]
    rise, held = v_last - v_best, min(after[-2:]) - v_best if len(after) >= 2 else 0.0
    noise = _jitter(vs)
    # Validation ending at twice both its first report and chance, after a training loss that itself
    # jumped 2x, is instability, not memorising (the corpus: lr 0.3, train 1.2, 9.8, 1.3, 1.2, 0.9
    # and val 11.8, 2.5, 5.7, 20, 34); with a training loss that fell smoothly it is overfitting.
    tv = [v for _, v in train]
    unstable = v_last > 2 * max(vs[0], f.chance or 0.0) and max(tv) > 2 * tv[0]
    if (not unstable and len(after) >= 2 and t_at_best is not None and t_last < t_at_best and rise >= need
            and held >= 0.5 * need and rise > 2 * noise):
        evidence.update({"rise": num(rise), "noise": num(noise)})
        confidence = LEARNT_CURVE_CONFIDENCE
        return f.done(Label.OVERFITTING, f"The validation loss bottomed at {fmt(v_best)} at epoch {best_step} "
                      f"and is {fmt(v_last)} at epoch {last_step}, the last report, while the training loss fell "
                      f"to {fmt(t_last)}: add regularisation (dropout, weight decay, augmentation) or data, or "
                      f"stop at epoch {best_step}.", evidence, rule="overfitting.val_rise", confidence=confidence)
    def gap(step: int, v: float) -> bool:
        tr = ts.get(step)
        return tr is not None and v >= t.gap_ratio * tr and v - tr >= t.gap_abs * scale

    if not unstable and gap(last_step, v_last) and gap(val[-2][0], vs[-2]):  # the gap held at the last two reports
        evidence["gap_ratio"] = num(_ratio(v_last, t_last) if t_last > 0 else None, 3)
        return f.done(Label.OVERFITTING, f"The training loss fell to {fmt(t_last)} but the validation loss "
                      f"is {fmt(v_last)} at epoch {last_step}, the last report, no lower than its best {fmt(v_best)}: "
                      f"the model memorises the training set; add regularisation (dropout, weight decay, "
                      f"augmentation) or more data.", evidence, rule="overfitting.gap",
                      # a guess: on the corpus (seed-even half) dropout + 0.2 never beat the seed spread
                      # on such runs, whose validation curves zig-zag (stopping at the best epoch, the
                      # other cure, cannot lower the best)
                      confidence=0.5)
    return None


def _stalled(f: _Facts, series: list[tuple[int, float]]) -> float | None:
    """The relative gain over the last stall_steps reports when under stall_gain, else None."""
    n = f.t.stall_steps
    if len(series) < n + 1:
        return None
    before = series[-n - 1][1]
    gain = (before - min(v for _, v in series[-n:])) / abs(before) if before else 0.0
    return gain if gain < f.t.stall_gain else None


def _high(f: _Facts, main) -> bool:
    last = main[-1][1]
    if f.chance is not None:
        return last >= f.t.underfit_loss * f.chance
    acc = f.last("train_acc")
    if acc is not None:
        return acc < f.t.underfit_acc
    return last >= f.t.underfit_loss * abs(_start(f, main))


def _slow(f, main, train, val) -> Diagnosis | None:
    """Learning, but slowly: the raw validation loss sets a new minimum at the last report after
    falling by slow_fall..slow_max_fall over the last 3 reports (a faster fall is learning well), and
    it is still above slow_high of ln C (a classifier that reports num_classes: the corpus has no
    other kind to measure it on), with updates no larger than slow_max_update_ratio (already large
    steps point to capacity instead: the planted width-4 20-class runs move at 1.2e-2, the corpus's
    slow runs at 5e-4..1e-2), and while the training loss is no lower than slow_min_train_share of
    the validation loss (a gap says generalisation is the limit: the corpus's tune half had two
    such runs that lr x 3 did not help). Not a curve too short to judge: it has slow_min_steps reports and
    says where it is heading. The
    counterfactuals of the curves corpus (seed-even half) say lr x 3 is the change that helps such
    runs most often (more than wider or longer), hence lr_too_low."""
    t = f.t
    series = val or main
    ratio = _update_ratio(f)
    if (f.chance is None or ratio is None or ratio > t.slow_max_update_ratio or len(series) < t.slow_min_steps
            or not _at_its_best_last(series)):
        return None
    vs = [v for _, v in series]
    before, last, scale = vs[-4], vs[-1], f.chance
    fell = (before - last) / before if before > 0 else 0.0
    if not (t.slow_fall <= fell <= t.slow_max_fall and last >= t.slow_high * scale):
        return None
    if train and val and train[-1][1] < t.slow_min_train_share * last:
        return None  # training already well below validation: not the step size (see thresholds)
    start, lr = _start(f, main), f.lr_param or _configured_lr(f)
    if (f.optimizer in SGD_FAMILY and f.usual_lr and lr is not None
            and lr > t.slow_sgd_max_lr_share * f.usual_lr * (1 + 1e-9)):
        return None  # SGD at or near its usual rate: a slow curve is not the step size (see thresholds)
    evidence = {"start": num(start), "val_last": num(last) if val else None, "last": num(main[-1][1]),
                "last_step": series[-1][0], "fell_over_last_3": num(fell, 3),
                "chance_loss": num(f.chance), "update_ratio": num(ratio), "lr": num(lr), "still_improving": True}
    name = "validation loss" if val else "loss"
    return f.done(Label.LR_TOO_LOW, f"Still learning at epoch {series[-1][0]}, but slowly: the {name} is "
                  f"{fmt(last)} at the last report (from {_start_text(f, main)}; chance is {fmt(f.chance)}), "
                  f"{100 * fell:.0f}% lower than 3 reports before: {_the_lr(lr)} is too low "
                  f"for this budget; raise it 3x (or train longer).", evidence,
                  rule="lr_too_low.slow", confidence=SLOW_CONFIDENCE)


def _underfitting(f, main, train, val) -> Diagnosis | None:
    t = f.t
    values = [v for _, v in main]
    start, ratio = _start(f, main), _update_ratio(f)
    evidence = {"train_last": num(train[-1][1]) if train else None, "val_last": num(val[-1][1]) if val else None,
                "last_step": main[-1][0], "chance_loss": num(f.chance), "train_acc": num(f.last("train_acc")),
                "val_acc": num(f.last("val_acc")), "update_ratio": num(ratio), "start": num(start),
                "still_improving": _at_its_best_last(val or main) or None}
    if len(main) >= 3 and _progress(start, min(values)) < t.no_progress and ratio is not None:
        lr = f.lr_param or _configured_lr(f)
        wobbles = any(b > a for a, b in zip(values, values[1:]))  # a monotone fall is no sign of large steps
        if f.usual_lr and lr is not None and lr >= t.nothing_learnt_high_lr * f.usual_lr * (1 - 1e-9) and wobbles:
            evidence.update({"lr": num(lr), "usual_lr": num(f.usual_lr)})
            return f.done(Label.LR_TOO_HIGH, f"Almost nothing was learnt in {len(main)} epochs "
                          f"({_start_text(f, main)} -> {fmt(values[-1])}) at lr {fmt(lr)}, "
                          f"{lr / f.usual_lr:.0f}x {f.optimizer}'s usual {fmt(f.usual_lr)}: steps this large "
                          f"can keep a run from settling; try it 3x lower (if that learns nothing either, run "
                          f"the sanity gate to rule out the data).", evidence,
                          rule="lr_too_high.nothing_learnt",
                          # a guess: on the corpus (old halves) lr / 3 helped 6 of 16 such runs, lr x 3 only 2
                          confidence=0.4)
        return f.done(Label.LR_TOO_LOW, f"Almost nothing was learnt in {len(main)} epochs "
                      f"({_start_text(f, main)} -> {fmt(values[-1])}) although the weights moved "
                      f"(update ratio {fmt(ratio)}): for a run this short {_the_lr(_configured_lr(f))} is too "
                      f"low; raise it 3x (if a longer run learns nothing either, run the sanity gate to rule "
                      f"out the data).", evidence,
                      rule="lr_too_low.nothing_learnt", confidence=0.45)
    gain = _stalled(f, main)
    if gain is None or not _high(f, main):
        return None
    if train and val and val[-1][1] > t.underfit_gap * train[-1][1]:
        return None
    evidence["recent_gain"] = num(gain, 3)
    both = (f"training and validation loss both stay high ({fmt(train[-1][1])} and {fmt(val[-1][1])}"
            if train and val else f"the loss stays high ({fmt(values[-1])}")
    chance = f", chance is {fmt(f.chance)})" if f.chance is not None else ")"
    return f.done(Label.UNDERFITTING, f"The {both}{chance} and stopped improving: the model lacks capacity or "
                  f"is over-regularised; make it wider or deeper, or lower dropout and weight decay.", evidence,
                  rule="underfitting.high_and_stalled",
                  # a guess: on the corpus (seed-even half) wider or longer beat the seed spread on
                  # under half of these (and lr x 3 on about as many)
                  confidence=0.5)


def _fitted(f: _Facts, main) -> bool:
    last, acc = main[-1][1], f.last("train_acc")
    if acc is not None and acc >= f.t.fitted_acc:
        return True
    scale = f.chance if f.chance is not None else abs(_start(f, main))
    return last <= f.t.fitted_loss * scale


def _plateau(f, main, train, val) -> Diagnosis | None:
    t = f.t
    values = [v for _, v in main]
    start = _start(f, main)
    gain = _stalled(f, main)
    if gain is None or _progress(start, min(values)) < t.learnt or _fitted(f, main):
        return None
    window = f.curve.series("lr")
    since = main[-t.stall_steps - 1][0]
    lrs = [v for s, v in window if s >= since]
    if lrs and lrs[-1] < 0.99 * lrs[0]:
        return None  # the lr was already cut during the stall: a schedule is doing its job
    lr = lrs[-1] if lrs else None
    at = f" at lr {fmt(lr)}" if lr is not None else ""
    return f.done(Label.PLATEAU, f"The loss fell from {_start_text(f, main)} to {fmt(values[-1])} and has "
                  f"stalled since epoch {since}{at}: lower the learning rate when it stalls (a step or plateau "
                  f"schedule), or start 3-10x lower.",
                  {"start": num(start), "last": num(values[-1]), "last_step": main[-1][0], "stalled_since": since,
                   "recent_gain": num(gain, 3), "lr": num(lr)}, rule="plateau.stalled",
                  confidence=LEARNT_CURVE_CONFIDENCE)


def _noisy(f, main, train, val) -> Diagnosis | None:
    t = f.t
    series = val or main
    if len(series) < 5:
        return None
    vs = [v for _, v in series]
    tail = vs[1:]  # the first report is before most learning and would dwarf the range
    span = max(tail) - min(tail)
    spikes = []
    # Nor is it a neighbour: the second report, still on the first descent, would sit far below
    # a median taken with it (val_loss 0.235, 0.049, 0.072, 0.039: one bump, not two spikes).
    for i in range(2, len(vs) - 1):
        mid = _median3(vs, i)
        dev = vs[i] - mid
        if span > 0 and abs(dev) >= t.spike_range * span and abs(dev) >= t.spike_level * abs(mid):
            spikes.append([series[i][0], num(vs[i])])
    if len(spikes) < t.noisy_spikes:
        return None
    name = "validation loss" if val else "loss"
    return f.done(Label.NOISY, f"The {name} jumps away from its neighbours at {len(spikes)} epochs "
                  f"({', '.join(str(s) for s, _ in spikes[:4])}): lower the learning rate or raise the batch "
                  f"size, and repeat the run before trusting its value.",
                  {"spikes": spikes, "range": num(span), ("val_last" if val else "last"): num(vs[-1]),
                   "last_step": series[-1][0]},
                  rule="noisy.spikes",
                  confidence=LEARNT_CURVE_CONFIDENCE)


def _healthy(f, main, train, val) -> Diagnosis:
    values = [v for _, v in main]
    start = _start(f, main)
    evidence = {"start": num(start), "last": num(values[-1]), "last_step": main[-1][0], "steps": len(main),
                "val_best": num(min(v for _, v in val)) if val else None,
                "val_last": num(val[-1][1]) if val else None, "train_acc": num(f.last("train_acc")),
                "val_acc": num(f.last("val_acc"))}
    gain = _stalled(f, main)
    # The validation loss still falling at the last report (a new low, more than stall_gain below 3
    # reports before) is "still improving" even when the training loss has fitted: "nothing to
    # change" would contradict the curve it cites (the corpus: a 5-epoch run, validation -83% in 3).
    val_falling = (bool(val) and val is not main and _at_its_best_last(val) and _stalled(f, val) is None
                   and len(val) > f.t.stall_steps)
    if (gain is None and not _fitted(f, main)) or val_falling:
        # Name each curve the figures come from: an unnamed training loss read beside the study's
        # validation metric looks like a contradiction (the demo: "2.3 -> 0.555" for a val_loss of 0.300).
        curves = (f"{'training loss' if val and val is not main else 'loss'} {_start_text(f, main)} -> "
                  f"{fmt(values[-1])}")
        if val and val is not main:
            curves += f", validation loss {fmt(val[0][1])} -> {fmt(val[-1][1])}"
        text = f"Still improving at epoch {main[-1][0]} ({curves}): more epochs would likely help."
        if val and val is not main and not _at_its_best_last(val):
            # The training loss still falls but the validation loss moved up at the end: say so rather
            # than "still improving", which its own last report contradicts.
            best_step, best = min(val, key=lambda sv: sv[1])
            text = (f"The training loss is still falling at epoch {main[-1][0]} ({_start_text(f, main)} -> "
                    f"{fmt(values[-1])}), but the validation loss at the last report ({fmt(val[-1][1])}) is above "
                    f"its best ({fmt(best)} at epoch {best_step}): too short a run to tell a wobble from "
                    f"overfitting; train longer or repeat it before trusting its value.")
        return f.done(Label.HEALTHY, text, evidence, rule="healthy.improving",
                      # not a fault, but not "nothing to change" either: on the curves corpus (seed-even
                      # half) a longer, wider or 3x faster run beat the seed spread on two thirds of them
                      confidence=0.5)
    best = min(v for _, v in (val or main))
    if f.chance is not None and best >= f.t.settled_learnt * f.chance:
        return f.done(Label.HEALTHY, f"Settled at {fmt(values[-1])} (from {_start_text(f, main)}; "
                      f"chance is {fmt(f.chance)}) with no sign of a fault the rules name: a wider model or "
                      f"another learning rate may still do better; repeat the run before trusting its value.", evidence,
                      rule="healthy.settled_high",
                      # a guess: it stopped well above what the task allows (best validation loss over
                      # 0.3 ln C); on the corpus's tune half a change often still helped such runs
                      confidence=0.5)
    return f.done(Label.HEALTHY, f"Learnt well ({_start_text(f, main)} -> {fmt(values[-1])}) with no sign of "
                  f"over- or underfitting: nothing to change in this configuration.", evidence, rule="healthy.learnt",
                  # a guess, by the measure above: on the corpus's tune half (2026-12-06, with the
                  # ordinary parents) no change beat the seed spread on 4 of its 7 runs; on the rest
                  # a longer, wider or 3x faster run still did (small nets on CPU budgets)
                  confidence=LEARNT_HEALTHY_CONFIDENCE)
