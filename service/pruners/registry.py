"""Turn a study's early-termination settings into a validated PrunerConfig, and that into a Pruner.

Two blocks of a study document:

  - `early_terminate`: W&B's, exactly as W&B's schema has it: {"type": "hyperband", "min_iter" |
    "max_iter" + "s", "eta", "strict"}; anything else is refused with the rule (tuneserve's own
    pruners go in `pruner`). It runs on WandbHyperbandPruner (wandb_hyperband.py), which stops
    what W&B's engine stops: W&B's band ladder (any eta > 1), its quantile, and its re-check of
    every running trial against the latest band it passed.
  - `pruner`: tuneserve's {"type": "none"|"median"|"asha"|"hyperband", ...that pruner's options},
    e.g. {"type": "asha", "grace_period": 2, "reduction_factor": 3, "max_resource": 20}; a
    hyperband block with W&B's keys (min_iter, max_iter, s) is W&B's hyperband here too.
    `resource: data` (median, asha, hyperband) makes a step count full-data epochs instead of
    epochs: see service/domain/core/pruning.py.

Every result is normalised (all defaults filled in), so the stored JSON says exactly what runs.
Studies stored before W&B's engine existed keep their configs: a hyperband config with `rungs` /
`min_resource` is tuneserve's bracketed Hyperband, as it was.
"""
from __future__ import annotations

from typing import Any

from tuneserve_service.pruners.asha import ASHAPruner
from tuneserve_service.pruners.base import NoPruner, Pruner, PrunerConfig, reject_unknown
from tuneserve_service.pruners.hyperband import HyperbandPruner
from tuneserve_service.pruners.median import MedianPruner
from tuneserve_service.pruners.wandb_hyperband import WANDB_OPTIONS, WandbHyperbandPruner

PRUNER_TYPES = ("none", "median", "asha", "hyperband")
RESOURCES = ("epochs", "data")
RESOURCE_KEYS = ("resource", "resource_unit")

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
    resource = _resource(options, kind, where)
    if is_wandb_hyperband(kind, options):
        return PrunerConfig("hyperband", WandbHyperbandPruner.from_options(options, where).to_options())
    return PrunerConfig(kind, {**_validated(kind, options, where), **resource})


def _resource(options: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    """Take `resource` (and the `resource_unit` a stored config carries) out of `options`: what a
    step counts. "epochs" (the default) as reported; "data": full-data epochs, each epoch counting
    the trial's data fraction (service/domain/core/pruning.py maps the steps; the pruners do not change)."""
    resource = options.pop("resource", None)
    unit = options.pop("resource_unit", None)
    if resource is None and unit is None:
        return {}
    if resource not in RESOURCES:
        raise ValueError(f"{where}.resource: must be one of {', '.join(RESOURCES)}, got {resource!r}")
    if kind == "none" or is_wandb_hyperband(kind, options):
        raise ValueError(f"{where}.resource: only tuneserve's median, asha and hyperband pruners take a resource "
                         f"(W&B's hyperband counts reports)")
    if unit is not None and (resource != "data" or isinstance(unit, bool) or not isinstance(unit, (int, float))
                             or not 0 < unit <= 1):
        raise ValueError(f"{where}.resource_unit: must be a number in (0, 1] with resource: data, got {unit!r}")
    if resource == "epochs":
        return {}
    return {"resource": "data", **({"resource_unit": float(unit)} if unit is not None else {})}


def is_wandb_hyperband(kind: str, options: dict[str, Any]) -> bool:
    return kind == "hyperband" and bool(_WANDB_KEYS & set(options))


def pruner_from_wandb(early_terminate: dict[str, Any] | None, where: str = "early_terminate") -> PrunerConfig:
    """The config for a W&B sweep's `early_terminate` block (None: no early termination). W&B's
    schema has one type, hyperband, with its own keys; the 422 says where tuneserve's go."""
    if early_terminate is None:
        return PrunerConfig("none", {})
    if not isinstance(early_terminate, dict):
        raise ValueError(f"{where}: must be a mapping, e.g. {{type: hyperband, min_iter: 3}}")
    kind = early_terminate.get("type")
    if kind != "hyperband":
        raise ValueError(f"{where}.type: must be 'hyperband' (the only type in W&B's schema), got {kind!r}; "
                         f"tuneserve's own pruners ({', '.join(PRUNER_TYPES[1:])}) go in `pruner`")
    options = {k: v for k, v in early_terminate.items() if k != "type"}
    unknown = sorted(set(options) - set(WANDB_OPTIONS))
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: not a W&B hyperband key (W&B's are type, "
                         f"{', '.join(WANDB_OPTIONS)}); tuneserve's own hyperband options go in `pruner`")
    return PrunerConfig("hyperband", WandbHyperbandPruner.from_options(options, where).to_options())


def build_pruner(config: PrunerConfig) -> Pruner:
    """The pruner a stored config describes; validates again, since stored JSON can be edited."""
    if config.type not in PRUNER_TYPES:
        raise ValueError(f"pruner.type: unknown pruner {config.type!r}; valid types are "
                         f"{', '.join(PRUNER_TYPES)}")
    if config.type == "none":
        reject_unknown(config.options, set(), "pruner")
        return NoPruner()
    options = {k: v for k, v in config.options.items() if k not in RESOURCE_KEYS}  # read by the domain
    if is_wandb_hyperband(config.type, options):
        return WandbHyperbandPruner.from_options(options, "pruner")
    return _CLASSES[config.type].from_options(options, "pruner")


def _validated(kind: str, options: dict[str, Any], where: str) -> dict[str, Any]:
    if kind == "none":
        reject_unknown(options, set(), where)
        return {}
    return _CLASSES[kind].from_options(options, where).to_options()
