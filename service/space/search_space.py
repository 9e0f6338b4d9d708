"""The search space: a tuple of Dimensions (model.py) with what optimizers ask of the whole space
(sampling, the grid, unit coordinates), its stored JSON form, and `parse_parameters`, which turns a
W&B `parameters` block into one. Reading a stored space re-validates every entry with the parser's
rules (parse.parse_dimension), so this module sits above both: model <- parse <- search_space.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from tuneserve_service.space.model import Dimension, _thaw
from tuneserve_service.space.parse import SpaceError, parse_dimension, parse_dimensions


def parse_parameters(block: Any) -> "SearchSpace":
    """A W&B `parameters` block -> SearchSpace; raises SpaceError naming the path and the rule."""
    return SearchSpace(parse_dimensions(block))


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "dimensions", tuple(self.dimensions))
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate dimension names: {', '.join(dup)}")

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def dimension(self, name: str) -> Dimension:
        for d in self.dimensions:
            if d.name == name:
                return d
        raise KeyError(name)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A flat dict drawn from every dimension's prior (constants included)."""
        return {d.name: d.sample(rng) for d in self.dimensions}

    def to_unit(self, params: dict[str, Any]) -> np.ndarray:
        """Non-constant dimensions mapped to [0, 1] through internal coordinates (categoricals by
        index / (n - 1)). Used for nearest-neighbour distances and duplicate checks."""
        out = []
        for d in self.dimensions:
            if d.distribution == "constant":
                continue
            lo, hi = d.internal_bounds()
            x = d.to_internal(params[d.name])
            out.append(0.0 if hi == lo else min(max((x - lo) / (hi - lo), 0.0), 1.0))
        return np.asarray(out, dtype=float)

    def iter_grid(self) -> Iterator[dict[str, Any]]:
        """The grid lazily, in grid() order; raises ValueError naming the first dimension that is
        not finite. Lets a grid optimizer walk a long grid without building it."""
        axes = []
        for d in self.dimensions:
            values = d.grid_values()
            if values is None:
                raise ValueError(f"{d.name}: distribution '{d.distribution}' has infinitely many values")
            axes.append(values)
        names = self.names
        for combo in itertools.product(*axes):
            # Fresh containers per point: callers may mutate what they get.
            yield {n: _thaw(v) for n, v in zip(names, combo)}

    def grid(self) -> list[dict[str, Any]] | None:
        """Every grid point in a deterministic order, or None when the space is not finite
        (grid search needs categorical, constant, int_uniform and q_* bounded dimensions).
        Order: dimensions in space order, the last one varying fastest."""
        if not all(d.is_finite for d in self.dimensions):
            return None
        return list(self.iter_grid())

    def grid_size(self) -> int | None:
        """Number of grid points, or None when the space is not finite."""
        size = 1
        for d in self.dimensions:
            n = d.grid_size()
            if n is None:
                return None
            size *= n
        return size

    def infinite_dimensions(self) -> list[Dimension]:
        """The dimensions that keep the space from being finite (grid search cannot use them)."""
        return [d for d in self.dimensions if not d.is_finite]

    def contains(self, params: dict[str, Any]) -> bool:
        if set(params) != set(self.names):
            return False
        return all(d.contains(params[d.name]) for d in self.dimensions)

    def to_json(self) -> list[dict[str, Any]]:
        return [d.to_json() for d in self.dimensions]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> "SearchSpace":
        """Rebuild a space from to_json() output, re-validating every entry: stored JSON is input
        too (a hand-edited row, an older version)."""
        if not isinstance(data, list):
            raise SpaceError("", f"a stored search space must be a list, got {type(data).__name__}")
        dims = []
        for i, entry in enumerate(data):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise SpaceError("", f"stored dimension #{i} must be an object with a string `name`")
            spec = {k: v for k, v in entry.items() if k != "name"}
            dims.append(parse_dimension(entry["name"], spec))
        return cls(tuple(dims))
