"""Stages: a study document's `stages` list as value objects, and the rule that moves a study from one
stage to the next.

    stages:
      - {trials: 40, epochs: 2, data_fraction: 0.1}                  # wide and cheap
      - {refine: {top_k: 5}, trials: 20, epochs: 10, repeat_top: {top_k: 3, seeds: 3}}

Each stage is a study of its own (stage 0 is the study the document creates; each later stage a child
linked to it), so every existing part (budget, optimizers, pruners, views) works per stage unchanged.
A stage is finished when its `trials` trials and its repeats have all ended (none waiting or
running). Then, in order: if it asks for `repeat_top` and they have not been enqueued yet, they are
(the stage is not finished until they end); otherwise the next stage's document is built from
the finished stage's document and trials (`next_stage_document`): its parameters refined around
the top trials when it has `refine` (else the same space), its fidelity the knobs it names (not
inherited: unnamed knobs are all the data and the objective's epochs), its budget its own `trials`,
warm-started from its parent. After the last stage
the study is finished.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tuneserve_service.craft.errors import CraftError
from tuneserve_service.craft.fidelity import Fidelity, FidelityError, check_fraction, check_int
from tuneserve_service.craft.refine import MARGIN, MIN_FRACTION, RefineError, RefinePlan, refine
from tuneserve_service.craft.trials import TrialResult

MAX_STAGES = 10
STAGE_KEYS = ("trials", "epochs", "data_fraction", "classes", "refine", "repeat_top", "method")
REFINE_KEYS = ("top_k", "margin", "min_fraction", "rerun_top")
REPEAT_KEYS = ("top_k", "seeds")
# Keys of a stage's own document that a later stage does not inherit from the first one.
_NOT_INHERITED = ("stages", "name", "max_trials", "run_cap", "warm_start_from", "lr_range_test")


class StageError(CraftError):
    """An invalid `stages` list: `path` names the field ("stages[1].refine.top_k"), `rule` the rule."""


@dataclass(frozen=True)
class RefineSpec:
    top_k: int = 5
    margin: float = MARGIN
    min_fraction: float = MIN_FRACTION
    rerun_top: bool = True           # the top k run first in the next stage, at its fidelity


@dataclass(frozen=True)
class RepeatSpec:
    top_k: int = 3
    seeds: int = 3


@dataclass(frozen=True)
class Stage:
    index: int
    trials: int
    overrides: dict[str, Any]        # the fidelity knobs this stage sets (the rest carry over)
    refine: RefineSpec | None = None
    repeat_top: RepeatSpec | None = None
    method: str | None = None        # None: the study's method

    @property
    def repeats(self) -> int:
        return 0 if self.repeat_top is None else self.repeat_top.top_k * self.repeat_top.seeds

    @property
    def budget(self) -> int:
        """Trials the stage runs in all: its own and its repeats."""
        return self.trials + self.repeats

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trials": self.trials, **self.overrides}
        if self.refine is not None:
            out["refine"] = {"top_k": self.refine.top_k, "margin": self.refine.margin,
                             "min_fraction": self.refine.min_fraction, "rerun_top": self.refine.rerun_top}
        if self.repeat_top is not None:
            out["repeat_top"] = {"top_k": self.repeat_top.top_k, "seeds": self.repeat_top.seeds}
        if self.method is not None:
            out["method"] = self.method
        return out


def parse_stages(raw: Any, path: str = "stages", methods: Sequence[str] | None = None) -> tuple[Stage, ...]:
    """Validate a `stages` list. `methods`, when given, are the method names a stage may name."""
    if not isinstance(raw, list):
        raise StageError(path, f"must be a list of stages, got {_type_name(raw)}")
    if not 1 <= len(raw) <= MAX_STAGES:
        raise StageError(path, f"must hold 1 to {MAX_STAGES} stages, got {len(raw)}")
    stages: list[Stage] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise StageError(where, f"must be a mapping, got {_type_name(item)}")
        unknown = sorted((k for k in item if k not in STAGE_KEYS), key=str)
        if unknown:
            raise StageError(f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(STAGE_KEYS)})")
        if "trials" not in item:
            raise StageError(f"{where}.trials", "required: the number of trials this stage runs")
        trials = _int(item["trials"], f"{where}.trials", 1)
        overrides = {}
        if "epochs" in item:
            overrides["epochs"] = _int(item["epochs"], f"{where}.epochs", 1)
        if "data_fraction" in item:
            try:
                overrides["data_fraction"] = check_fraction(item["data_fraction"], f"{where}.data_fraction")
            except FidelityError as e:
                raise StageError(e.path, e.rule) from None
        if "classes" in item:
            overrides["classes"] = _int(item["classes"], f"{where}.classes", 2)
        refine_spec = None
        if "refine" in item:
            if i == 0:
                raise StageError(f"{where}.refine", "the first stage has no earlier stage to refine from")
            refine_spec = _refine(item["refine"], f"{where}.refine")
            previous = stages[-1].trials
            if refine_spec.top_k > previous:
                raise StageError(f"{where}.refine.top_k", f"must be <= the previous stage's trials ({previous}), "
                                                          f"got {refine_spec.top_k}")
        repeat = _repeat(item["repeat_top"], f"{where}.repeat_top", trials) if "repeat_top" in item else None
        method = item.get("method")
        if method is not None:
            if not isinstance(method, str) or (methods is not None and method not in methods):
                valid = f" (valid: {', '.join(methods)})" if methods is not None else ""
                raise StageError(f"{where}.method", f"unknown method {method!r}{valid}")
        stages.append(Stage(i, trials, overrides, refine_spec, repeat, method))
    return tuple(stages)


def _refine(raw: Any, where: str) -> RefineSpec:
    if raw is True or raw == {}:
        return RefineSpec()
    if not isinstance(raw, dict):
        raise StageError(where, f"must be a mapping with {', '.join(REFINE_KEYS)}, got {_type_name(raw)}")
    unknown = sorted((k for k in raw if k not in REFINE_KEYS), key=str)
    if unknown:
        raise StageError(f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(REFINE_KEYS)})")
    top_k = _int(raw.get("top_k", RefineSpec.top_k), f"{where}.top_k", 1)
    margin = _number(raw.get("margin", MARGIN), f"{where}.margin", 0.0, math.inf)
    min_fraction = _number(raw.get("min_fraction", MIN_FRACTION), f"{where}.min_fraction", 0.0, 1.0)
    if min_fraction == 0:
        raise StageError(f"{where}.min_fraction", "must be > 0: a range of zero width is no range")
    rerun = raw.get("rerun_top", True)
    if not isinstance(rerun, bool):
        raise StageError(f"{where}.rerun_top", f"must be true or false, got {rerun!r}")
    return RefineSpec(top_k, margin, min_fraction, rerun)


def _repeat(raw: Any, where: str, trials: int) -> RepeatSpec:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = {"top_k": raw}
    if not isinstance(raw, dict):
        raise StageError(where, f"must be an integer (top_k) or a mapping with {', '.join(REPEAT_KEYS)}, "
                                f"got {_type_name(raw)}")
    unknown = sorted((k for k in raw if k not in REPEAT_KEYS), key=str)
    if unknown:
        raise StageError(f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(REPEAT_KEYS)})")
    top_k = _int(raw.get("top_k", RepeatSpec.top_k), f"{where}.top_k", 1)
    if top_k > trials:
        raise StageError(f"{where}.top_k", f"must be <= the stage's trials ({trials}), got {top_k}")
    return RepeatSpec(top_k, _int(raw.get("seeds", RepeatSpec.seeds), f"{where}.seeds", 1))


def _int(value: Any, path: str, minimum: int) -> int:
    try:
        return check_int(value, path, minimum=minimum)
    except FidelityError as e:
        raise StageError(e.path, e.rule) from None


def _number(value: Any, path: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        upper = "" if hi == math.inf else f" and <= {hi:g}"
        raise StageError(path, f"must be a number >= {lo:g}{upper}, got {value!r}")
    return float(value)


def _type_name(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}.get(type(v), type(v).__name__)


def stage_fidelity(stages: Sequence[Stage], index: int, base: Fidelity | None = None) -> Fidelity:
    """The fidelity stage `index` runs at: `base` (the document's `fidelity`, default all the data
    and the objective's epochs) with the knobs this stage names. Knobs are not inherited from the
    stage before: `{refine: .., epochs: 10}` after `{epochs: 2, data_fraction: 0.1}` means 10 epochs
    on all the data, as a practitioner reads it."""
    return (base or Fidelity()).with_overrides(stages[index].overrides)


# --- the transition rule ------------------------------------------------------------------------

@dataclass(frozen=True)
class StageCounts:
    """A stage study's trials, as the store counts them. `budget` is its max_trials when that was
    capped (a grid that ran out), else None (the stage's `trials`); `repeats` is how many repeat
    trials were enqueued, None until they are."""

    ended: int = 0            # completed, pruned, failed, diverged
    active: int = 0           # waiting or running
    budget: int | None = None
    repeats: int | None = None


@dataclass(frozen=True)
class Transition:
    """What to do now: "wait" (trials still to run or running), "repeat" (enqueue the stage's
    repeats), "next" (create stage `next_index`) or "finish" (the last stage is done)."""

    action: str
    stage: int
    next_index: int | None = None
    reason: str = ""


def transition(stages: Sequence[Stage], index: int, counts: StageCounts) -> Transition:
    """The rule, checked when a trial of stage `index` ends (and on any read)."""
    stage = stages[index]
    target = (stage.trials if counts.budget is None else counts.budget) + (counts.repeats or 0)
    if counts.active or counts.ended < target:
        return Transition("wait", index, reason=f"{counts.ended} of {target} trials ended, {counts.active} active")
    if stage.repeat_top is not None and counts.repeats is None:
        return Transition("repeat", index, reason=f"re-run the top {stage.repeat_top.top_k} configurations "
                                                  f"with {stage.repeat_top.seeds} seeds each")
    if index + 1 < len(stages):
        return Transition("next", index, index + 1, reason=f"stage {index} ended: start stage {index + 1}")
    return Transition("finish", index, reason="the last stage ended")


def child_seed(parent_seed: int, index: int) -> int:
    """The seed of stage `index`'s study, from the first study's seed through a SeedSequence."""
    return int(np.random.SeedSequence([parent_seed, index]).generate_state(1)[0] % 2**31)


def first_stage_document(document: dict[str, Any], stages: Sequence[Stage],
                         base: Fidelity | None = None) -> dict[str, Any]:
    """The study a staged document creates first: stage 0's budget, method and fidelity."""
    doc = copy.deepcopy(document)
    doc.pop("run_cap", None)
    doc.update(max_trials=stages[0].trials, fidelity=stage_fidelity(stages, 0, base).to_dict(), stage_index=0)
    if stages[0].method is not None:
        doc["method"] = stages[0].method
    return doc


def next_stage_document(document: dict[str, Any], stages: Sequence[Stage], index: int,
                        trials: Sequence[TrialResult], *, parent_name: str, child_name: str,
                        seed: int, goal: str = "minimize",
                        base: Fidelity | None = None) -> tuple[dict[str, Any], RefinePlan | None]:
    """The study document of stage `index` (>= 1), built from the previous stage's document and trials.

    Returns (document, plan): the plan is None when the stage does not refine. The document keeps
    every key of the previous one except the stage-specific ones, and gets `parameters` (refined or
    the same), `max_trials` (the stage's trials), `method` (the stage's, if it names one), `seed`
    (child_seed(seed, index)), `warm_start_from` (the parent), `fidelity`, `parent` and `stage_index`.
    """
    if not 1 <= index < len(stages):
        raise StageError("stage", f"must be between 1 and {len(stages) - 1}, got {index}")
    stage = stages[index]
    fidelity = stage_fidelity(stages, index, base)
    doc = {k: copy.deepcopy(v) for k, v in document.items() if k not in _NOT_INHERITED}
    plan = None
    if stage.refine is not None:
        try:
            plan = refine(document["parameters"], trials, stage.refine.top_k, goal,
                          margin=stage.refine.margin, min_fraction=stage.refine.min_fraction, fidelity=fidelity)
        except RefineError as e:
            raise StageError(f"stages[{index}].refine", f"stage {index - 1} cannot be refined: {e}") from None
        doc["parameters"] = plan.parameters
    doc.update(name=child_name, max_trials=stage.trials, seed=child_seed(seed, index),
               warm_start_from=parent_name, fidelity=fidelity.to_dict(), parent=parent_name, stage_index=index)
    if stage.method is not None:
        doc["method"] = stage.method
    return doc, plan
