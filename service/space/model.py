"""Search-space value objects and the operations every optimizer needs on them.

A space is a flat tuple of Dimensions; nested W&B `parameters` blocks become dotted names
("optimizer.lr"). Params travel flat inside the service and are unflattened only at the API edge.

Internal coordinates ("warped" space) are what model-based optimizers and distance checks use:
  - uniform, q_uniform, int_uniform, normal, q_normal: the value itself
  - log_uniform_values, q_log_uniform_values, log_uniform, log_normal, q_log_normal: ln(value)
  - inv_log_uniform_values, inv_log_uniform: ln(value) as well (see parse.py for the W&B meaning)
  - categorical: the index into `values`; constant: not a coordinate at all
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LOG_DISTRIBUTIONS = frozenset({
    "log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values",
    "log_uniform", "inv_log_uniform", "log_normal", "q_log_normal",
})
NORMAL_DISTRIBUTIONS = frozenset({"normal", "q_normal", "log_normal", "q_log_normal"})
QUANTIZED_DISTRIBUTIONS = frozenset({"q_uniform", "q_log_uniform_values", "q_normal", "q_log_normal"})
DISTRIBUTIONS = frozenset({
    "constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform_values",
    "q_log_uniform_values", "inv_log_uniform_values", "log_uniform", "inv_log_uniform",
    "normal", "q_normal", "log_normal", "q_log_normal",
})


@dataclass(frozen=True)
class Dimension:
    name: str                                  # dotted path, e.g. "optimizer.lr"
    distribution: str                          # one of DISTRIBUTIONS
    value: Any = None                          # constant
    values: tuple = ()                         # categorical
    probabilities: tuple[float, ...] | None = None
    min: float | None = None                   # value bounds; for log_uniform / inv_log_uniform the W&B exponents
    max: float | None = None
    q: float | None = None                     # quantization step for q_* families
    mu: float | None = None                    # normal families
    sigma: float | None = None

    @property
    def kind(self) -> str:
        """"constant", "categorical", "int" (int_uniform) or "float"."""
        raise NotImplementedError

    @property
    def is_log(self) -> bool:
        return self.distribution in LOG_DISTRIBUTIONS

    def internal_bounds(self) -> tuple[float, float]:
        """Bounds of the internal coordinate; for normal families mu +- 3 sigma (in log space for
        log_normal). Categorical: (0, len(values) - 1)."""
        raise NotImplementedError

    def to_internal(self, value: Any) -> float:
        raise NotImplementedError

    def from_internal(self, x: float) -> Any:
        """Map an internal coordinate back to a legal value: clipped to bounds, quantized (q),
        rounded for int_uniform, nearest index for categorical; ints stay Python ints."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> Any:
        """One draw from the prior the W&B distribution defines (probabilities for categorical)."""
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A flat dict drawn from every dimension's prior (constants included)."""
        raise NotImplementedError

    def to_unit(self, params: dict[str, Any]) -> np.ndarray:
        """Non-constant dimensions mapped to [0, 1] through internal coordinates (categoricals by
        index / (n - 1)). Used for nearest-neighbour distances and duplicate checks."""
        raise NotImplementedError

    def grid(self) -> list[dict[str, Any]] | None:
        """Every grid point in a deterministic order, or None when the space is not finite
        (grid search needs categorical, constant, int_uniform and q_* bounded dimensions)."""
        raise NotImplementedError

    def contains(self, params: dict[str, Any]) -> bool:
        raise NotImplementedError

    def to_json(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> "SearchSpace":
        raise NotImplementedError


def flatten_params(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    raise NotImplementedError


def unflatten_params(flat: dict[str, Any]) -> dict[str, Any]:
    raise NotImplementedError
