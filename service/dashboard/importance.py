"""Parameter importance: scikit-learn's RandomForestRegressor and its permutation importance.

Why this evaluator: a random forest fits the mixed, non-linear, interacting response of a tuning
study without assumptions; permutation importance (sklearn.inspection.permutation_importance)
measures how much the forest's held-out score drops when one parameter's column is shuffled, which,
unlike the forest's impurity importance, is not biased toward continuous parameters with many
distinct values over categoricals with few. It is the estimator optuna-dashboard users know from
fANOVA in spirit (both read a random forest), but needs only scikit-learn (optuna's fANOVA also
builds on scikit-learn's forest, and would add optuna to the server for no gain). The server
needs no torch for it.

The target is the rank of each trial's value (direction does not matter for importance, and ranks
keep one exploded loss from dominating the fit). Categorical parameters are ordinal codes, so each
parameter is one column and one importance. Pure: arrays in, numbers out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

METHOD = "scikit-learn RandomForestRegressor + permutation importance on held-out trials"
MIN_TRIALS = 8
TREES = 32
REPEATS = 4
HOLDOUT_FROM = 40  # below this many trials every trial is both fitted and scored


@dataclass(frozen=True)
class Importance:
    names: list[str]
    mean: list[float]  # share of the total (negatives clipped to 0), sums to 1 when any is > 0
    std: list[float]
    raw: list[float]  # drop in R^2 when the column is shuffled
    r2: float | None  # the forest's R^2 on the scored trials: how far to trust the ranking
    trials: int


def encode(meta: list[dict[str, Any]], columns: dict[str, list[Any]]) -> np.ndarray:
    """A numeric matrix, one column per parameter: numbers (log10 for log-scaled ones), or the index
    of a categorical label. Missing values become the column's median (or 0)."""
    cols = []
    for m in meta:
        raw = columns[m["name"]]
        if m["kind"] == "categorical":
            labels = {label: i for i, label in enumerate(sorted({v for v in raw if v is not None}))}
            col = np.array([labels.get(v, np.nan) if v is not None else np.nan for v in raw], dtype=float)
        else:
            col = np.array([np.nan if v is None else v for v in raw], dtype=float)
            if m.get("log"):
                with np.errstate(divide="ignore", invalid="ignore"):
                    col = np.where(col > 0, np.log10(np.where(col > 0, col, 1.0)), np.nan)
        fill = np.nanmedian(col) if np.isfinite(col).any() else 0.0
        cols.append(np.where(np.isfinite(col), col, fill))
    return np.column_stack(cols) if cols else np.zeros((len(next(iter(columns.values()), [])), 0))


def _ranks(y: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return (rankdata(y) - 1) / max(1, len(y) - 1)


def compute(meta: list[dict[str, Any]], columns: dict[str, list[Any]], values: list[float], seed: int) -> Importance | None:
    """Importance of each parameter for the given completed trials; None below MIN_TRIALS trials
    or when every value is the same."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    names = [m["name"] for m in meta]
    y = np.asarray(values, dtype=float)
    if len(y) < MIN_TRIALS or not names or np.ptp(y) == 0:
        return None
    x = encode(meta, columns)
    y = _ranks(y)
    rng = np.random.default_rng(np.random.SeedSequence([seed, len(y)]))
    order = rng.permutation(len(y))
    if len(y) >= HOLDOUT_FROM:
        cut = int(len(y) * 0.75)
        fit, score = order[:cut], order[cut:]
    else:
        fit = score = order
    forest = RandomForestRegressor(
        n_estimators=TREES, min_samples_leaf=2, max_features=0.7, n_jobs=1,
        random_state=int(rng.integers(2**31 - 1)),
    )
    forest.fit(x[fit], y[fit])
    perm = permutation_importance(forest, x[score], y[score], n_repeats=REPEATS, n_jobs=1,
                                  random_state=int(rng.integers(2**31 - 1)))
    raw = perm.importances_mean
    clipped = np.clip(raw, 0, None)
    total = clipped.sum()
    share = clipped / total if total > 0 else clipped
    std = perm.importances_std / total if total > 0 else perm.importances_std
    return Importance(
        names=names, mean=[float(v) for v in share], std=[float(v) for v in std], raw=[float(v) for v in raw],
        r2=float(forest.score(x[score], y[score])), trials=len(y),
    )


def warm_up() -> None:
    """Import scikit-learn ahead of the first request that needs it (about a second)."""
    import sklearn.ensemble  # noqa: F401
    import sklearn.inspection  # noqa: F401
