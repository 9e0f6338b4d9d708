"""Turn a study's early-termination settings into a validated PrunerConfig, and that into a Pruner.

Two spellings are accepted for the same block (StudyCreate `early_terminate` or `pruner`):

  - ours: {"type": "none"|"median"|"asha"|"hyperband", ...that pruner's options}, e.g.
    {"type": "asha", "grace_period": 2, "reduction_factor": 3, "max_resource": 20};
  - W&B's: {"type": "hyperband", "min_iter" | "max_iter" + "s", "eta", "strict"}.

W&B's "hyperband" judges every run at one shared ladder of "bands" (it has no brackets), so it maps
onto our Hyperband with a single bracket, i.e. ASHA on that ladder:
  - min_iter: rungs at min_iter * eta^k, k = 0, 1, ...  (bounded below max_iter if one is also
    given; W&B itself fails on max_iter without s);
  - max_iter with s: rungs at max_iter // eta^k for k = 1..s, dropping those below 1, exactly as
    W&B computes them (W&B gives this form precedence when min_iter is also present);
  - eta defaults to 3, as in W&B, but must be an integer >= 2 here (rungs are whole epochs);
  - strict (W&B's schema default: true) picks the trial's value at the rung (true) or its best so
    far (false) for the ranking.
Where we differ from W&B, on purpose: a band is read as a step number (epoch), which equals W&B's
count of reports when a worker reports every epoch from 1; a trial is judged once, at the report
that reaches the rung (W&B re-checks every running run on every poll); it continues when it is in
the top n // eta of the n trials at the rung, and always while fewer than eta trials are there
(W&B keeps those at or above sorted(values)[int(n / eta)], which stops one of two early runs).

Every result is normalised (all defaults filled in), so the stored JSON says exactly what runs.
"""
from __future__ import annotations

from typing import Any

from service.pruners.asha import ASHAPruner
from service.pruners.base import (
    NoPruner,
    Pruner,
    PrunerConfig,
    bool_option,
    int_option,
    reject_unknown,
)
from service.pruners.hyperband import HyperbandPruner
from service.pruners.median import MedianPruner

PRUNER_TYPES = ("none", "median", "asha", "hyperband")

_CLASSES: dict[str, Any] = {"median": MedianPruner, "asha": ASHAPruner, "hyperband": HyperbandPruner}
# Keys that mark a W&B hyperband block. Not "strict" or "eta": our own hyperband accepts those
# too, and a normalised config must parse back to itself.
_WANDB_KEYS = {"min_iter", "max_iter", "s"}


def parse_pruner(block: dict[str, Any] | None, where: str = "pruner") -> PrunerConfig:
    """Validate a user's block (either spelling) and return its normalised config.

    Raises ValueError with the offending option named as `where.option` and the rule it broke.
    """
    if block is None:
        return PrunerConfig("none", {})
    if not isinstance(block, dict):
        raise ValueError(f"{where}: must be a mapping with a 'type' ({', '.join(PRUNER_TYPES)})")
    kind = block.get("type")
    if kind is None:
        raise ValueError(f"{where}.type: required; valid types are {', '.join(PRUNER_TYPES)}")
    if kind not in PRUNER_TYPES:
        raise ValueError(f"{where}.type: unknown pruner {kind!r}; valid types are "
                         f"{', '.join(PRUNER_TYPES)}")
    options = {k: v for k, v in block.items() if k != "type"}
    if kind == "hyperband" and _WANDB_KEYS & set(options):
        options = _wandb_hyperband_options(options, where)
    return PrunerConfig(kind, _validated(kind, options, where))


def pruner_from_wandb(early_terminate: dict[str, Any] | None) -> PrunerConfig:
    """The config for a W&B sweep's `early_terminate` block (None: no early termination)."""
    return parse_pruner(early_terminate, "early_terminate")


def build_pruner(config: PrunerConfig) -> Pruner:
    """The pruner a stored config describes; validates again, since stored JSON can be edited."""
    if config.type not in PRUNER_TYPES:
        raise ValueError(f"pruner.type: unknown pruner {config.type!r}; valid types are "
                         f"{', '.join(PRUNER_TYPES)}")
    if config.type == "none":
        reject_unknown(config.options, set(), "pruner")
        return NoPruner()
    return _CLASSES[config.type].from_options(config.options, "pruner")


def _validated(kind: str, options: dict[str, Any], where: str) -> dict[str, Any]:
    if kind == "none":
        reject_unknown(options, set(), where)
        return {}
    return _CLASSES[kind].from_options(options, where).to_options()


def _wandb_hyperband_options(options: dict[str, Any], where: str) -> dict[str, Any]:
    reject_unknown(options, {"min_iter", "max_iter", "s", "eta", "strict"}, where)
    eta = int_option(options, "eta", where, minimum=2, default=3)
    strict = bool_option(options, "strict", where, default=True)
    min_iter = int_option(options, "min_iter", where, minimum=1)
    max_iter = int_option(options, "max_iter", where, minimum=1)
    s = int_option(options, "s", where, minimum=1)

    if max_iter is not None and s is not None:
        rungs = sorted({max_iter // eta ** k for k in range(1, s + 1)} - {0})
        if not rungs:
            raise ValueError(f"{where}.max_iter: must be at least eta ({eta}): the rungs are "
                             f"max_iter // eta^k for k = 1..s and none would be >= 1")
        return {"rungs": rungs, "reduction_factor": eta, "max_resource": max_iter,
                "brackets": 1, "strict": strict}
    if min_iter is not None:
        if max_iter is not None and max_iter <= min_iter:
            raise ValueError(f"{where}.max_iter: must be greater than min_iter ({min_iter})")
        return {"min_resource": min_iter, "reduction_factor": eta, "max_resource": max_iter,
                "brackets": 1, "strict": strict}
    if max_iter is not None:
        raise ValueError(f"{where}.s: required with max_iter (rungs at max_iter // eta^k for "
                         f"k = 1..s), or give min_iter instead")
    raise ValueError(f"{where}: hyperband needs min_iter, or max_iter with s")
