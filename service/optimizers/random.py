"""Random search: independent draws from the space's priors, steered away from points already tried."""
from __future__ import annotations

from typing import Any

import numpy as np

from tuneserve_service.optimizers.base import Observation, Suggestion
from tuneserve_service.space import SearchSpace, params_key

# Rejection sampling gives up after this many draws per suggestion; a space where that many draws
# all hit tried points is small, so it is enumerated instead (see _fresh_point).
MAX_TRIES = 100
# Beyond this many points enumeration costs more than a repeated suggestion is worth.
MAX_ENUMERATION = 100_000


class RandomOptimizer:
    name = "random"

    def suggest(
        self,
        space: SearchSpace,
        completed: list[Observation],
        pending: list[dict[str, Any]],
        count: int,
        seed: int,
        goal: str = "minimize",
    ) -> list[Suggestion]:
        rng = np.random.default_rng(seed)
        seen = {params_key(o.params) for o in completed} | {params_key(p) for p in pending}
        out: list[Suggestion] = []
        for _ in range(count):
            params = _draw_unseen(space, rng, seen)
            info: dict[str, Any] = {}
            if params is None:
                params = _fresh_point(space, rng, seen)
            if params is None:
                # Every point is taken: random search may repeat one rather than stop, as W&B's does.
                params = space.sample(rng)
                info["repeat"] = True
            seen.add(params_key(params))
            out.append(Suggestion(params=params, method=self.name, info=info))
        return out


def _draw_unseen(space: SearchSpace, rng: np.random.Generator, seen: set) -> dict[str, Any] | None:
    for _ in range(MAX_TRIES):
        params = space.sample(rng)
        if params_key(params) not in seen:
            return params
    return None


def _fresh_point(space: SearchSpace, rng: np.random.Generator, seen: set) -> dict[str, Any] | None:
    """A uniformly chosen untried point of a small finite space that the prior can produce."""
    size = space.grid_size()
    if size is None or size > MAX_ENUMERATION:
        return None
    # Categorical values with probability 0 are never drawn by the prior; keep it that way.
    excluded = {
        d.name: {i for i, p in enumerate(d.probabilities) if p == 0}
        for d in space.dimensions if d.probabilities is not None
    }
    candidates = []
    for point in space.iter_grid():
        if params_key(point) in seen:
            continue
        if any(space.dimension(n).to_internal(point[n]) in idx for n, idx in excluded.items() if idx):
            continue
        candidates.append(point)
    if not candidates:
        return None
    return candidates[int(rng.integers(len(candidates)))]
