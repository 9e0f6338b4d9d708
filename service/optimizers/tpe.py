"""The "tpe" method: a multivariate Tree-structured Parzen Estimator, rebuilt from the stored history.

The TPE algorithm (Bergstra et al. 2011) with hyperopt's adaptive Parzen bandwidths, but with
one joint kernel per observation (parzen.py) instead of hyperopt's one density per coordinate.
hyperopt's own TPE is univariate, and no configuration of it reached Optuna's (multivariate)
TPESampler on Hartmann-6 or Rosenbrock-5 (3x behind at 60 evaluations, 20 seeds); this one is
ahead of Optuna's on Branin, Hartmann-6 and Rosenbrock-5 over 50 seeds and level on the MLP
over 40 (benchmarks/README.md; 10 seeds cannot tell the two apart on Hartmann-6 and the MLP).
hyperopt's engine remains available as the "tpe_hyperopt" method (tpe_hyperopt.py).

Each suggestion:
  1. the history becomes internal coordinates and losses (_history.build_history: minimisation
     form, failed and diverged trials at a penalty worse than the worst result; a bounded
     history of the 25 best plus the 300 latest trials);
  2. the "good" group is the ceil(gamma * n) lowest losses (at most 25), the rest is "bad";
  3. `n_ei_candidates` points are drawn from the good density l(x), snapped onto their
     lattices (integers, q steps, categories), and the one with the largest l(x) / g(x) wins.

Start-up: prior draws until `n_startup` trials exist, counting pending ones, as soon as 3
results are in (_history.model_ready): 8 workers would otherwise draw 17 prior points before the
model's first use.

Pending trials: constant liar. Each pending trial, and each point already chosen in this call,
joins the history with the failure penalty, so it lands in the bad density g(x) and pushes
candidates away from it; a DuplicateGuard re-draws (another sub-seed) any candidate still
within a small radius of a pending or chosen point. Leaving pending trials out of the model
(the guard alone) was measured too: no better on two of three problems, and with 128
candidates from one good density the guard alone could not keep 8 points of one call apart.

Several objectives and constraints (multi.py): Optuna's MOTPE and constrained TPE split: the
history ordered by non-domination rank (hypervolume contribution breaking ties), infeasible trials
after the feasible ones by violation; the good group is the first ceil(gamma * n) of that order.

Configuration (benchmarks/optimizer_quality.py, 50 seeds chosen on seeds 0-49 and checked on
seeds 100-149; see benchmarks/README.md): n_startup=10, n_ei_candidates=128, gamma=0.15,
prior_weight=1.0. Optuna's defaults (24 candidates, gamma 0.1) did as well as Optuna here;
more candidates and a slightly larger good group did better on all three synthetic problems.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tuneserve_service.optimizers._history import (
    DuplicateGuard,
    History,
    before_the_model,
    build_history,
    derive_seed,
    first_apart,
    fixed_params,
    internal_row,
    model_dimensions,
    ordered,
)
from tuneserve_service.optimizers.base import Observation, Suggestion
from tuneserve_service.optimizers.multi import is_multi, tpe_observations
from tuneserve_service.optimizers.parzen import ParzenEstimator, tpe_split
from tuneserve_service.space import Dimension, SearchSpace

# A candidate the guard keeps rejecting is re-drawn at most this many times.
MAX_REDRAWS = 8
# The good group never holds more than this many trials (hyperopt's and Optuna's cap), so a
# bounded history keeps this many best trials whole.
GOOD_CAP = 25


class TPEOptimizer:
    name = "tpe"
    # Whether pending trials fill the start-up design (see the module docstring).
    pending_fill_startup = True

    def __init__(
        self,
        n_startup: int = 10,
        n_ei_candidates: int = 128,
        gamma: float = 0.15,
        prior_weight: float = 1.0,
        max_history: int = 300,
    ):
        self.n_startup = n_startup
        self.n_ei_candidates = n_ei_candidates
        self.gamma = gamma
        self.prior_weight = prior_weight
        self.max_history = max_history

    def suggest(
        self,
        space: SearchSpace,
        completed: list[Observation],
        pending: list[dict[str, Any]],
        count: int,
        seed: int,
        goal: str = "minimize",
        goals: Sequence[str] | None = None,
    ) -> list[Suggestion]:
        dims = model_dimensions(space)
        fixed = fixed_params(space)
        if is_multi(completed, goals):   # several objectives, constraints: MOTPE's split (multi.py)
            completed, goal = tpe_observations(completed, goals or (goal,)), "minimize"
        history = build_history(space, completed, goal, n_best=GOOD_CAP, n_recent=self.max_history)
        guard = DuplicateGuard(space, pending)
        early = before_the_model(space, dims, fixed, guard, history.n_completed, self.n_startup, count,
                                 seed, self.name, n_pending=len(pending) if self.pending_fill_startup else 0)
        if early is not None:
            return early
        return self._suggest_model(space, dims, fixed, history, guard, pending, count, seed)

    def _suggest_model(
        self, space: SearchSpace, dims: list[Dimension], fixed: dict[str, Any], history: History,
        guard: DuplicateGuard, pending: list[dict[str, Any]], count: int, seed: int,
    ) -> list[Suggestion]:
        X, losses = history.X, history.losses
        rows = [r for r in (internal_row(dims, p) for p in pending) if r is not None]
        if rows:   # a pending trial from an older space is left to the guard
            X = np.vstack([X, *rows])
            losses = np.append(losses, np.full(len(rows), history.penalty))

        out: list[Suggestion] = []
        for i in range(count):
            good = np.zeros(len(X), dtype=bool)
            good[tpe_split(losses, self.gamma, GOOD_CAP, n_real=len(history))] = True
            below = ParzenEstimator(dims, X[good], self.prior_weight)
            above = ParzenEstimator(dims, X[~good], self.prior_weight)
            call_seed = derive_seed(seed, i)

            def draw(attempt: int) -> dict[str, Any]:
                rng = np.random.default_rng(derive_seed(call_seed, attempt))
                cands = snap(dims, below.sample(rng, self.n_ei_candidates))
                best = cands[int(np.argmax(below.log_pdf(cands) - above.log_pdf(cands)))]
                return {d.name: d.from_internal(x) for d, x in zip(dims, best)}

            chosen, redraws = first_apart(guard, draw, MAX_REDRAWS)
            params = ordered(space, {**fixed, **chosen})
            out.append(Suggestion(params=params, method=self.name,
                                  info={"n_history": len(history), "n_pending": len(pending),
                                        "redraws": redraws}))
            guard.add(params)
            X = np.vstack([X, internal_row(dims, params)])
            losses = np.append(losses, history.penalty)
        return out


def snap(dims: Sequence[Dimension], X: np.ndarray) -> np.ndarray:
    """Candidates moved onto their dimensions' lattices (integers, q steps, category indexes),
    so they are scored where the trial will actually run."""
    out = X.copy()
    for j, d in enumerate(dims):
        if d.distribution in ("categorical", "int_uniform") or d.is_quantized:
            out[:, j] = [d.to_internal(d.from_internal(x)) for x in X[:, j]]
    return out
