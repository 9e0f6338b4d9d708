"""Pareto ranks, hypervolume and the orders the engines learn from, over objective vectors.

Pure numpy in and out; the non-dominated sorting and the hypervolume come from `moocore` (the
maintained C library behind the R/Python `moocore` packages: exact WFG/HV3D hypervolume,
non-dominated sorting in O(n log n) for 2-3 objectives), not from hand-written loops.

Everything here is in minimisation form: `to_min` negates the maximised objectives.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# The reference point of normalised objectives (each scaled to [0, 1] over the points given).
REFERENCE = 1.1


def to_min(values: np.ndarray, goals: Sequence[str]) -> np.ndarray:
    """Objective vectors (rows) in minimisation form: maximised columns negated."""
    sign = np.array([-1.0 if g == "maximize" else 1.0 for g in goals])
    return np.asarray(values, dtype=float).reshape(-1, len(goals)) * sign


def ranks(Y: np.ndarray) -> np.ndarray:
    """Non-domination rank of each row (1: the front, 2: the front once it is removed, ...)."""
    import moocore

    Y = np.asarray(Y, dtype=float)
    if len(Y) == 0:
        return np.zeros(0, dtype=int)
    if len(Y) == 1:
        return np.ones(1, dtype=int)
    return np.asarray(moocore.pareto_rank(Y), dtype=int) + 1


def normalise(Y: np.ndarray, bounds: np.ndarray | None = None) -> np.ndarray:
    """Each column mapped to [0, 1] over `bounds` ((2, k): min row, max row; default: Y's own)."""
    Y = np.asarray(Y, dtype=float)
    lo, hi = (Y.min(axis=0), Y.max(axis=0)) if bounds is None else (bounds[0], bounds[1])
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return (Y - lo) / span


def hypervolume(Y: np.ndarray, ref: np.ndarray | float = REFERENCE) -> float:
    """The volume dominated by the rows of Y (minimisation) and bounded by `ref`; rows that do not
    dominate `ref` add nothing."""
    import moocore

    Y = np.asarray(Y, dtype=float)
    ref = np.broadcast_to(np.asarray(ref, dtype=float), (Y.shape[1],)) if Y.ndim == 2 else ref
    if len(Y) == 0:
        return 0.0
    Y = Y[np.all(Y < ref, axis=1)]
    return float(moocore.hypervolume(Y, ref=ref)) if len(Y) else 0.0


def contributions(Y: np.ndarray, ref: np.ndarray | float = REFERENCE) -> np.ndarray:
    """Each row's exclusive hypervolume contribution (0 for a dominated or duplicated row)."""
    import moocore

    Y = np.asarray(Y, dtype=float)
    if len(Y) == 0:
        return np.zeros(0)
    ref = np.broadcast_to(np.asarray(ref, dtype=float), (Y.shape[1],))
    inside = np.all(Y < ref, axis=1)
    out = np.zeros(len(Y))
    if inside.any():
        out[inside] = moocore.hv_contributions(Y[inside], ref=ref)
    return out


def hypervolume_history(Y: np.ndarray, ref: np.ndarray | float = REFERENCE) -> list[float]:
    """The hypervolume of the first i rows, for i = 1..n (rows in trial order)."""
    return [hypervolume(Y[: i + 1], ref) for i in range(len(Y))]


def order(Y: np.ndarray | None, violation: np.ndarray | None = None) -> np.ndarray:
    """A total order of observations for a TPE split, best first, as Optuna's (constrained) MOTPE
    splits its history: feasible rows (violation <= 0 or no constraints) by non-domination rank,
    ties inside a rank by the larger hypervolume contribution (normalised objectives: the rank's
    most useful points join the good group first); then infeasible rows by smaller violation
    (NaN: a constrained metric not reported, last). Returns each row's position (0 = best)."""
    n = len(Y) if Y is not None else len(violation)
    feasible = np.ones(n, dtype=bool) if violation is None else np.nan_to_num(violation, nan=np.inf) <= 0
    key_rank = np.zeros(n)
    key_tie = np.zeros(n)
    if Y is not None and feasible.any():
        Yf = normalise(Y[feasible])
        r = ranks(Yf) if Yf.shape[1] > 1 else _scalar_ranks(Yf[:, 0])
        tie = np.zeros(len(Yf))
        if Yf.shape[1] > 1:
            for level in np.unique(r):
                sel = r == level
                tie[sel] = -contributions(Yf[sel])
        key_rank[feasible], key_tie[feasible] = r, tie
    infeasible = ~feasible
    if infeasible.any():
        key_rank[infeasible] = np.inf
        key_tie[infeasible] = np.nan_to_num(violation[infeasible], nan=np.finfo(float).max)
    perm = np.lexsort((np.arange(n), key_tie, key_rank))
    pos = np.empty(n, dtype=int)
    pos[perm] = np.arange(n)
    return pos


def _scalar_ranks(y: np.ndarray) -> np.ndarray:
    """One objective: the value itself orders (a dense rank keeps lexsort's keys comparable)."""
    return np.unique(y, return_inverse=True)[1].astype(float) + 1
