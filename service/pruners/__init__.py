"""Pruners: decide from reported learning curves whether a running trial should stop early."""
from service.pruners.asha import ASHAPruner
from service.pruners.base import Curve, Decision, NoPruner, Pruner, PrunerConfig
from service.pruners.hyperband import HyperbandPruner
from service.pruners.median import MedianPruner
from service.pruners.registry import PRUNER_TYPES, build_pruner, parse_pruner, pruner_from_wandb
from service.pruners.wandb_hyperband import WandbHyperbandPruner

__all__ = [
    "Curve", "Decision", "Pruner", "PrunerConfig", "NoPruner", "MedianPruner", "ASHAPruner",
    "HyperbandPruner", "WandbHyperbandPruner", "PRUNER_TYPES", "build_pruner", "parse_pruner", "pruner_from_wandb",
]
