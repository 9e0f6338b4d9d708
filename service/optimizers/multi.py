"""Several objectives and constraints for the model-based engines, as transforms of the history.

Both engines keep their single-objective machinery and learn from a history re-valued here:

  - tpe (`tpe_observations`): Optuna's MOTPE and constrained TPE split the history into a good and a
    bad group by a total order: feasible trials by non-domination rank, ties inside a rank broken
    by the larger hypervolume contribution; infeasible trials after every feasible one, by smaller
    violation (pareto.order). Each trial's value becomes its position in that order, so TPE's
    `ceil(gamma * n)` lowest are exactly that split. Failed trials stay failed (the bad group).
  - gp (`gp_observations`): ParEGO (Knowles 2006): objectives normalised to [0, 1] over the history,
    scalarised by the augmented Chebyshev function max_i(l_i y_i) + 0.05 sum_i(l_i y_i) with weights
    l drawn uniformly from the simplex for each suggestion (seeded), and optimised by the ordinary
    GP + EI. Constraints stay outside the scalar: one GP per constraint (bayes_opt's ConstraintModel)
    and EI times the probability of feasibility, over the best feasible target. While no trial is
    feasible the GP minimises the violation instead (there is no feasible incumbent for EI).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tuneserve_service.optimizers import pareto
from tuneserve_service.optimizers.base import Observation

# ParEGO's augmentation weight (Knowles 2006: 0.05).
RHO = 0.05


def is_multi(completed: Sequence[Observation], goals: Sequence[str] | None) -> bool:
    """Whether the history needs these transforms: several goals, or any constraint value."""
    return (goals is not None and len(goals) > 1) or any(o.constraints is not None for o in completed)


def _violations(completed: Sequence[Observation]) -> np.ndarray | None:
    """Each observation's violation (0: feasible), NaN when a constrained metric is missing; None for
    an unconstrained study."""
    if not any(o.constraints is not None for o in completed):
        return None
    out = np.full(len(completed), np.nan)
    for i, o in enumerate(completed):
        if o.constraints is not None and all(c is not None for c in o.constraints):
            out[i] = float(sum(max(c, 0.0) for c in o.constraints))
    return out


def _valued(completed: Sequence[Observation]) -> np.ndarray:
    return np.array([o.values is not None and o.state in ("completed", "pruned") for o in completed], dtype=bool)


def tpe_observations(completed: Sequence[Observation], goals: Sequence[str]) -> list[Observation]:
    """The history with each valued trial's value = its position in pareto.order (minimise)."""
    ok = _valued(completed)
    out = [Observation(params=o.params, value=None, state="failed") for o in completed]
    if not ok.any():
        return out
    idx = np.flatnonzero(ok)
    Y = pareto.to_min(np.array([completed[i].values for i in idx], dtype=float), goals)
    v = _violations(completed)
    pos = pareto.order(Y, None if v is None else v[idx])
    for i, p in zip(idx, pos):
        out[i] = Observation(params=completed[i].params, value=float(p), state="completed")
    return out


def parego_weights(k: int, seed: int) -> np.ndarray:
    """Weights drawn uniformly from the (k-1)-simplex."""
    return np.random.default_rng(seed).dirichlet(np.ones(k))


def gp_observations(completed: Sequence[Observation], goals: Sequence[str], seed: int
                    ) -> tuple[list[Observation], np.ndarray | None]:
    """(the history scalarised for a minimising GP, each observation's constraint values as a row
    (None: unconstrained, or no feasible trial yet: then the values are the violations))."""
    ok = _valued(completed)
    v = _violations(completed)
    out = [Observation(params=o.params, value=None, state="failed") for o in completed]
    if not ok.any():
        return out, None
    idx = np.flatnonzero(ok)
    Y = pareto.to_min(np.array([completed[i].values for i in idx], dtype=float), goals)
    if Y.shape[1] > 1:
        lam = parego_weights(Y.shape[1], seed)
        N = pareto.normalise(Y)
        s = np.max(N * lam, axis=1) + RHO * np.sum(N * lam, axis=1)
    else:
        s = Y[:, 0]
    if v is not None and not np.any(np.nan_to_num(v[idx], nan=np.inf) <= 0):
        # Nothing feasible yet: head for feasibility (smaller violation), no constraint model.
        for i in idx:
            if np.isfinite(v[i]):
                out[i] = Observation(params=completed[i].params, value=float(v[i]), state="completed")
        return out, None
    for i, si in zip(idx, s):
        out[i] = Observation(params=completed[i].params, value=float(si), state="completed")
    if v is None:
        return out, None
    k = max(len(o.constraints) for o in completed if o.constraints is not None)
    C = np.full((len(completed), k), np.nan)
    for i, o in enumerate(completed):
        if o.constraints is not None:
            C[i] = [np.nan if c is None else c for c in o.constraints]
    finite = C[np.isfinite(C)]
    worst = (finite.max() + max(np.ptp(finite), 1.0)) if finite.size else 1.0
    return out, np.where(np.isfinite(C), C, max(worst, 1e-6))
