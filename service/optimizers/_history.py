"""Turn the stored history into what model-based optimizers learn from: one loss per trial.

Shared by tpe.py and gp.py so both read the history the same way:
  - losses are always "smaller is better" (the study's value negated when the goal is maximize);
  - failed and diverged trials (value None or not finite), and pruned trials without a value, get
    a penalty loss strictly worse than the worst completed loss, so the model learns to avoid
    their region instead of forgetting it;
  - pruned trials that carry a value keep it: it is the last intermediate result, which is
    already a pessimistic estimate of where the trial was heading;
  - observations whose params do not fit the current space (a study's space edited, or a
    warm start from another study) are dropped, since they cannot be placed in it.

It also holds the duplicate guard that keeps parallel suggestions apart, and per-call seed
derivation, so both engines behave the same way for `count > 1`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from tuneserve.schemas.enums import Goal
from tuneserve_service.space import Dimension, SearchSpace

GOALS = tuple(g.value for g in Goal)

# Failed/diverged trials land this fraction of the completed losses' spread above the worst one:
# enough to rank strictly last, small enough not to squash a GP's normalised targets.
PENALTY_SPREAD = 0.1


@dataclass(frozen=True)
class History:
    params: list[dict[str, Any]]   # flat params of usable observations, in the order given
    X: np.ndarray                  # their internal coordinates, one row each (model_dimensions order)
    losses: np.ndarray             # minimisation form, penalties filled in
    n_completed: int               # observations that had a real value (not penalised)
    penalty: float                 # the loss a failed trial gets (also the constant liar for TPE)

    n_total: int                   # observations in the full history (before any cap)
    kept: tuple[int, ...] = ()     # the index in the history given of each usable observation

    def __len__(self) -> int:
        return len(self.params)


def is_minimize(goal: str) -> bool:
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {', '.join(map(repr, GOALS))}, not {goal!r}")
    return goal == Goal.MINIMIZE


def model_dimensions(space: SearchSpace) -> list[Dimension]:
    """The dimensions a model searches: constants are not coordinates, nor is a 1-value choice."""
    return [
        d for d in space.dimensions
        if d.distribution != "constant" and not (d.distribution == "categorical" and len(d.values) < 2)
    ]


def fixed_params(space: SearchSpace) -> dict[str, Any]:
    """Values of the dimensions that model_dimensions leaves out (every suggestion carries them)."""
    out: dict[str, Any] = {}
    for d in space.dimensions:
        if d.distribution != "constant" and not (d.distribution == "categorical" and len(d.values) < 2):
            continue
        out[d.name] = d.from_internal(0.0)
    return out


def internal_row(dims: Sequence[Dimension], params: dict[str, Any]) -> np.ndarray | None:
    """Internal coordinates of `params`, or None when they do not fit these dimensions."""
    row = np.empty(len(dims))
    for j, d in enumerate(dims):
        try:
            row[j] = d.to_internal(params[d.name])
        except (ValueError, TypeError, KeyError):
            return None
    return row if np.all(np.isfinite(row)) else None


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def build_history(
    space: SearchSpace,
    completed: Sequence[Any],
    goal: str,
    n_best: int | None = None,
    n_recent: int | None = None,
) -> History:
    """The history in model form. With `n_best` and `n_recent`, a bounded history: the
    `n_best` lowest losses plus the `n_recent` latest others (in history order), which keeps a
    model's cost flat as a study grows; only those rows are converted, since converting every
    parameter of every trial is itself a large share of a suggestion's time at N = 1000."""
    dims = model_dimensions(space)
    sign = 1.0 if is_minimize(goal) else -1.0
    raw = np.full(len(completed), np.nan)
    for i, obs in enumerate(completed):
        value = obs.value if obs.state in ("completed", "pruned") else None
        if _is_finite_number(value):
            raw[i] = sign * float(value)
    real = raw[np.isfinite(raw)]
    penalty = penalty_for(real.tolist())
    losses_all = np.where(np.isfinite(raw), raw, penalty)

    n = len(completed)
    rows: dict[int, np.ndarray] = {}

    def take(order, limit: int) -> None:
        taken = 0
        for i in order:
            if taken >= limit:
                return
            if i in rows:
                continue
            row = internal_row(dims, completed[i].params)
            if row is not None:
                rows[i] = row
                taken += 1

    if n_best is None or n_recent is None or n <= n_best + n_recent:
        take(range(n), n)
    else:
        take(np.argsort(losses_all, kind="stable").tolist(), n_best)
        take(range(n - 1, -1, -1), n_recent)
    keep = sorted(rows)
    X = np.vstack([rows[i] for i in keep]) if keep else np.empty((0, len(dims)))
    return History(
        params=[completed[i].params for i in keep],
        X=X,
        losses=losses_all[keep] if keep else np.empty(0),
        n_completed=int(np.isfinite(raw[keep]).sum()) if keep else 0,
        penalty=penalty,
        n_total=n,
        kept=tuple(keep),
    )


def penalty_for(real_losses: Sequence[float]) -> float:
    """A loss strictly worse than every real loss (1.0 when there is none: ranks are all that
    matter then, every observation being equally bad)."""
    if not real_losses:
        return 1.0
    worst, best = max(real_losses), min(real_losses)
    spread = worst - best
    if spread <= 0:
        spread = max(abs(worst), 1.0)
    return worst + PENALTY_SPREAD * spread


def derive_seed(seed: int, *stream: int) -> int:
    """An independent 32-bit seed for sub-stream `stream` of `seed` (deterministic)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *stream]).generate_state(1)[0])


class DuplicateGuard:
    """Rejects a candidate lying within `radius` (Euclidean, unit-cube coordinates of
    SearchSpace.to_unit) of a pending trial or of a point already chosen in this call.

    The radius scales with sqrt(dimensions) so that it is the same per-coordinate tolerance in
    every space; two points closer than that are the same experiment for a worker.
    """

    PER_COORDINATE = 0.02

    def __init__(self, space: SearchSpace, taken: Sequence[dict[str, Any]]):
        self.space = space
        # A candidate holds the model's dimensions only: a one-value categorical (what a refine
        # makes of a choice its top trials agreed on) is filled in before measuring.
        self._fixed = fixed_params(space)
        self._sqrt_n = math.sqrt(max(len(model_dimensions(space)), 1))
        self.radius = self.PER_COORDINATE * self._sqrt_n
        self._points: list[np.ndarray] = []
        for p in taken:
            try:
                self._points.append(np.asarray(space.to_unit(p), dtype=float))
            except (ValueError, TypeError, KeyError):
                continue   # a pending trial from an older space: nothing to keep away from

    def distance(self, params: dict[str, Any]) -> float:
        if not self._points:
            return math.inf
        u = np.asarray(self.space.to_unit({**self._fixed, **params}), dtype=float)
        return float(np.min(np.linalg.norm(np.vstack(self._points) - u, axis=1)))

    def narrow(self, per_coordinate: float) -> None:
        """Keep only what lies within `per_coordinate` (instead of PER_COORDINATE) away."""
        self.radius = per_coordinate * self._sqrt_n

    def accepts(self, params: dict[str, Any]) -> bool:
        return self.distance(params) >= self.radius

    def add(self, params: dict[str, Any]) -> None:
        self._points.append(np.asarray(self.space.to_unit({**self._fixed, **params}), dtype=float))


def first_apart(guard: DuplicateGuard, draw: Callable[[int], dict[str, Any]], tries: int) -> tuple[dict[str, Any], int]:
    """Call `draw(attempt)` until a candidate lies at least the guard's radius from every taken
    point; after `tries` draws the farthest one wins (a small finite space that is full).
    Returns the candidate and how many draws were rejected."""
    best, best_d = None, -1.0
    for attempt in range(tries):
        cand = draw(attempt)
        dist = guard.distance(cand)
        if dist >= guard.radius:
            return cand, attempt
        if dist > best_d:
            best, best_d = cand, dist
    return best, tries


def prior_sample(space: SearchSpace, guard: DuplicateGuard, seed: int, tries: int = 16) -> dict[str, Any]:
    """A draw from the space's prior, redrawn (up to `tries`) while it duplicates a taken point."""
    return first_apart(guard, lambda attempt: space.sample(np.random.default_rng(derive_seed(seed, attempt))), tries)[0]


def ordered(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """Params in the space's dimension order (what the optimizers return)."""
    return {name: params[name] for name in space.names}


# The fewest results a model is built from when pending trials fill up the start-up design.
MIN_MODEL_POINTS = 3


def model_ready(n_completed: int, n_pending: int, n_startup: int) -> bool:
    """Whether the start-up design is done: `n_startup` points drawn from the prior, counting the
    ones still running. Without the pending ones, 8 workers would draw 17 prior points before
    the first 10 results are in; the model still waits for MIN_MODEL_POINTS results. Measured
    for tpe only (benchmarks/README.md); gp passes no pending count, since it did worse."""
    if n_completed >= n_startup:
        return True
    return n_completed >= MIN_MODEL_POINTS and n_completed + n_pending >= n_startup


def before_the_model(
    space: SearchSpace, dims: Sequence[Dimension], fixed: dict[str, Any], guard: DuplicateGuard,
    n_completed: int, n_startup: int, count: int, seed: int, method: str, n_pending: int = 0,
) -> list[Any] | None:
    """What a model-based engine suggests before it has a model: the constants alone when nothing
    is searched, prior draws (kept apart by the guard) during start-up; None once the model runs."""
    from tuneserve_service.optimizers.base import Suggestion

    if not dims:
        return [Suggestion(params=ordered(space, fixed), method=method, info={"phase": "fixed"})
                for _ in range(count)]
    if model_ready(n_completed, n_pending, n_startup):
        return None
    out = []
    for i in range(count):
        params = ordered(space, prior_sample(space, guard, derive_seed(seed, i)))
        out.append(Suggestion(params=params, method="random",
                              info={"phase": "startup", "n_completed": n_completed}))
        guard.add(params)
    return out
