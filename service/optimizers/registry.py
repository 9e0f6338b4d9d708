"""Optimizer names -> instances, with the heavy engines (hyperopt, bayes_opt, scipy) imported only when used."""
from __future__ import annotations

import importlib

from service.optimizers.base import Optimizer
from service.optimizers.grid import check_finite
from service.schemas.enums import Method
from service.space import SearchSpace

METHODS = tuple(m.value for m in Method)

# module, class: imported on first use so a server that never runs TPE needs no hyperopt.
_FACTORIES = {
    "random": ("service.optimizers.random", "RandomOptimizer"),
    "grid": ("service.optimizers.grid", "GridOptimizer"),
    "tpe": ("service.optimizers.tpe", "TPEOptimizer"),
    "tpe_hyperopt": ("service.optimizers.tpe_hyperopt", "HyperoptTPEOptimizer"),
    "gp": ("service.optimizers.gp", "GPOptimizer"),
}


class UnknownMethod(ValueError):
    """A method name that is not in METHODS."""

    def __init__(self, name: str, valid: tuple[str, ...] = METHODS):
        super().__init__(f"unknown method {name!r} (valid: {', '.join(valid)})")
        self.name = name
        self.valid = valid


def get_optimizer(name: str) -> Optimizer:
    """A fresh optimizer for `name`; raises UnknownMethod for a name not in METHODS."""
    if name not in _FACTORIES:
        raise UnknownMethod(name, METHODS)
    module_name, class_name = _FACTORIES[name]
    return getattr(importlib.import_module(module_name), class_name)()


def validate_method(method: str, space: SearchSpace) -> None:
    """Check at study creation that `method` can search `space`: raises UnknownMethod, or
    SpaceError (path = the dimension) for grid over a dimension with infinitely many values."""
    if method not in METHODS:
        raise UnknownMethod(method, METHODS)
    if method == "grid":
        check_finite(space)


def grid_size(space: SearchSpace) -> int | None:
    """How many points a grid study has (it is finished when all are used), or None if infinite."""
    return space.grid_size()
