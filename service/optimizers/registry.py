"""Optimizer names -> instances, with the heavy engines (hyperopt, bayes_opt, scipy, botorch) imported only when used."""
from __future__ import annotations

import importlib

from tuneserve_service.optimizers._history import model_dimensions
from tuneserve_service.optimizers.base import Optimizer
from tuneserve_service.optimizers.grid import check_finite
from tuneserve.schemas.enums import Method, StudyMethod
from tuneserve_service.space import SearchSpace

# The engines: what draws a trial's params.
METHODS = tuple(m.value for m in Method)
# What a study may ask for: the engines and W&B's "bayes" (resolved to an engine per space).
STUDY_METHODS = tuple(m.value for m in StudyMethod)

# W&B's "bayes" runs on gp while the space is small enough for a GP to model well, else tpe (see
# resolve_engine and the README's "W&B sweeps" section for the measurements behind the numbers).
GP_MAX_DIMENSIONS = 10
GP_MAX_COORDINATES = 20

# module, class: imported on first use so a server that never runs TPE needs no hyperopt.
_FACTORIES = {
    "random": ("tuneserve_service.optimizers.random", "RandomOptimizer"),
    "grid": ("tuneserve_service.optimizers.grid", "GridOptimizer"),
    "tpe": ("tuneserve_service.optimizers.tpe", "TPEOptimizer"),
    "tpe_hyperopt": ("tuneserve_service.optimizers.tpe_hyperopt", "HyperoptTPEOptimizer"),
    "gp": ("tuneserve_service.optimizers.gp", "GPOptimizer"),
    "botorch": ("tuneserve_service.optimizers.botorch_engine", "BoTorchOptimizer"),
}


class MissingExtra(ValueError):
    """A method whose library is an optional extra that this server was installed without."""

    def __init__(self, name: str, extra: str):
        super().__init__(f"method {name!r} needs the server extra [{extra}], which is not installed on this "
                         f"server (pip install \"tuneserve[server,{extra}]\"); every other method works without it")
        self.name = name
        self.extra = extra


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


def gp_coordinates(space: SearchSpace) -> int:
    """How many coordinates the gp engine's box has for `space`: one per searched dimension, one
    per value of a categorical with 3 or more values (gp one-hot encodes those)."""
    return sum(len(d.values) if d.distribution == "categorical" and len(d.values) > 2 else 1
               for d in model_dimensions(space))


def resolve_engine(method: str, space: SearchSpace) -> str:
    """The engine that runs a study asking for `method`: the method itself, except W&B's "bayes",
    which is gp for spaces of at most GP_MAX_DIMENSIONS searched dimensions and
    GP_MAX_COORDINATES gp coordinates, and tpe beyond (or when nothing is searched)."""
    if method != StudyMethod.BAYES:
        if method not in METHODS:
            raise UnknownMethod(method, STUDY_METHODS)
        return method
    n = len(model_dimensions(space))
    if 0 < n <= GP_MAX_DIMENSIONS and gp_coordinates(space) <= GP_MAX_COORDINATES:
        return Method.GP.value
    return Method.TPE.value


def validate_method(method: str, space: SearchSpace) -> None:
    """Check at study creation that `method` can search `space`: raises UnknownMethod, MissingExtra
    (botorch on a server without BoTorch), or SpaceError (path = the dimension) for grid over a
    dimension with infinitely many values."""
    if method not in METHODS:
        raise UnknownMethod(method, METHODS)
    if method == "botorch":
        from tuneserve_service.optimizers import botorch_engine

        if not botorch_engine.available():
            raise MissingExtra(method, botorch_engine.EXTRA)
        botorch_engine.warm_up()
    if method == "grid":
        check_finite(space)


def grid_size(space: SearchSpace) -> int | None:
    """How many points a grid study has (it is finished when all are used), or None if infinite."""
    return space.grid_size()
