"""Optimizers: suggest new trial parameters from a search space and the stored history."""
from tuneserve_service.optimizers.base import Observation, Optimizer, SpaceExhausted, Suggestion
from tuneserve_service.optimizers.registry import (
    METHODS,
    STUDY_METHODS,
    UnknownMethod,
    get_optimizer,
    grid_size,
    resolve_engine,
    validate_method,
)

__all__ = [
    "Observation", "Optimizer", "SpaceExhausted", "Suggestion",
    "METHODS", "STUDY_METHODS", "UnknownMethod", "get_optimizer", "grid_size", "resolve_engine", "validate_method",
]
