"""Pruners: decide from reported learning curves whether a running trial should stop early."""
from tuneserve_service.pruners.asha import ASHAPruner
from tuneserve_service.pruners.base import Curve, PruneVerdict, NoPruner, Pruner, PrunerConfig
from tuneserve_service.pruners.hyperband import HyperbandPruner
from tuneserve_service.pruners.median import MedianPruner
from tuneserve_service.pruners.registry import PRUNER_TYPES, build_pruner, parse_pruner, pruner_from_wandb
from tuneserve_service.pruners.wandb_hyperband import WandbHyperbandPruner

__all__ = [
    "Curve", "PruneVerdict", "Pruner", "PrunerConfig", "NoPruner", "MedianPruner", "ASHAPruner",
    "HyperbandPruner", "WandbHyperbandPruner", "PRUNER_TYPES", "build_pruner", "parse_pruner", "pruner_from_wandb",
]
