"""Grid search: walk SearchSpace.grid() in its fixed order, handing out each untried point once."""
from __future__ import annotations

from typing import Any

from tuneserve_service.optimizers.base import Observation, SpaceExhausted, Suggestion
from tuneserve_service.space import SearchSpace, SpaceError, params_key


class GridOptimizer:
    name = "grid"

    def suggest(
        self,
        space: SearchSpace,
        completed: list[Observation],
        pending: list[dict[str, Any]],
        count: int,
        seed: int,
        goal: str = "minimize",
    ) -> list[Suggestion]:
        """The next `count` untried grid points (fewer near the end). `seed` and `goal` are unused:
        the order is the grid's own, so every replica hands out the same sequence. Failed and
        diverged points count as tried: re-running them is the lease/retry machinery's job."""
        check_finite(space)
        size = space.grid_size()
        seen = {params_key(o.params) for o in completed} | {params_key(p) for p in pending}
        out: list[Suggestion] = []
        # Lazily, so a long grid with a short history costs only the prefix it walks.
        for index, point in enumerate(space.iter_grid()):
            if params_key(point) in seen:
                continue
            seen.add(params_key(point))
            out.append(Suggestion(params=point, method=self.name, info={"grid_index": index, "grid_size": size}))
            if len(out) == count:
                break
        if not out and count > 0:
            raise SpaceExhausted(f"all {size} grid points are completed or pending")
        return out


def check_finite(space: SearchSpace) -> None:
    """Raise SpaceError (a ValueError) naming the first dimension grid search cannot enumerate."""
    for dim in space.infinite_dimensions():
        why = "unbounded" if dim.distribution in ("normal", "q_normal", "log_normal", "q_log_normal") else "continuous"
        raise SpaceError(dim.name, f"grid search needs finitely many values, but distribution "
                                   f"'{dim.distribution}' is {why}; use `values`, int_uniform, q_uniform "
                                   f"or q_log_uniform_values")
