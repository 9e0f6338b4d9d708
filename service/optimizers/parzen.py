"""A multivariate Parzen estimator: the density model inside the multivariate TPE.

One mixture component per observation (plus one for the prior), each a product over the model
dimensions of
  - a normal kernel truncated to the dimension's internal bounds (log space for log families,
    widened by half a step for integers and quantized families so the end values own a full
    bin), centred on the observation, or
  - a categorical kernel: the observed value gets weight 1 and every value
    `prior_weight / n_components` (Optuna's rule), normalised.
The prior component is the space's prior: the centre of the bounds with the whole range as
sigma for bounded families, (mu, sigma) for normal families, the probabilities (or uniform)
for categoricals.

Keeping a component's coordinates together is what makes it multivariate: a candidate scores
high only where it is close to one good observation in every coordinate at once, where the
univariate TPE of hyperopt multiplies per-coordinate densities built separately and so cannot
see that two coordinates are good only together (Rosenbrock's valley, Hartmann's basins).

Bandwidths, per observation and dimension: hyperopt's adaptive Parzen rule (the larger gap to
its sorted neighbours in that coordinate, the bounds counting as neighbours), clipped to
[range / min(100, n + 2), range] (hyperopt's and Optuna's "magic clip"). A shared Scott's-rule
bandwidth, 0.2 * n^(-1 / (D + 4)) * range, was measured too and lost on Hartmann-6 and
Rosenbrock-5 (benchmarks/README.md).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.special import log_ndtr, ndtri_exp

from tuneserve_service.space import Dimension

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)
_EPS = 1e-12


def search_bounds(dim: Dimension) -> tuple[float, float]:
    """The internal interval a kernel lives on: the bounds, widened by half a lattice step for
    integers and linear quantized families, so the end values own a full bin (the q lattice of
    a log family is in value space: not widened)."""
    lo, hi = dim.internal_bounds()
    if dim.distribution == "int_uniform":
        return lo - 0.5, hi + 0.5
    if dim.is_quantized and dim.q and not dim.is_log and dim.distribution not in ("q_normal",):
        return lo - dim.q / 2, hi + dim.q / 2
    return lo, hi


def _prior_centre(dim: Dimension, lo: float, hi: float) -> tuple[float, float]:
    if dim.mu is not None and dim.sigma is not None:   # normal families (internal = ln for log ones)
        return float(dim.mu), float(dim.sigma)
    return 0.5 * (lo + hi), hi - lo


def default_weights(n: int) -> np.ndarray:
    """Observation weights in history order: the latest 25 count fully, older ones ramp down
    linearly towards 1/n (Optuna's and hyperopt's "linear forgetting")."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - 25), np.ones(25)])


class ParzenEstimator:
    """Mixture density over internal coordinates of `dims`, built from observations `X`
    (rows in history order, one column per dimension)."""

    def __init__(self, dims: Sequence[Dimension], X: np.ndarray, prior_weight: float = 1.0):
        self.dims = list(dims)
        n = X.shape[0]
        k = n + 1   # the prior is the last component
        w = np.append(default_weights(n), prior_weight)
        self.log_weights = np.log(w / w.sum())

        self.num = [j for j, d in enumerate(self.dims) if d.distribution != "categorical"]
        self.cat = [j for j, d in enumerate(self.dims) if d.distribution == "categorical"]

        lows, highs, mus, sigmas = [], [], [], []
        for j in self.num:
            d = self.dims[j]
            lo, hi = search_bounds(d)
            p_mu, p_sigma = _prior_centre(d, lo, hi)
            span = max(hi - lo, _EPS)
            obs = X[:, j]
            sig = np.clip(_neighbour_sigmas(obs, lo, hi), span / min(100.0, n + 2.0), span)
            lows.append(lo)
            highs.append(hi)
            mus.append(np.append(obs, p_mu))
            sigmas.append(np.append(sig, max(p_sigma, _EPS)))
        self.low = np.array(lows)                      # (Dn,)
        self.high = np.array(highs)
        self.mu = np.array(mus).T.reshape(k, len(self.num))          # (K, Dn)
        self.sigma = np.array(sigmas).T.reshape(k, len(self.num))
        # Standardised bounds, mirrored where the interval lies above the mean so that both
        # sit in the lower tail, and kept as log CDFs: a kernel centred on a normal-family value
        # far beyond mu +- 3 sigma has a mass like 1e-900, which plain CDFs round to 0.
        a = (self.low - self.mu) / self.sigma
        b = (self.high - self.mu) / self.sigma
        self._flip = np.where(a > 0, -1.0, 1.0)
        self._log_cdf_lo = log_ndtr(np.where(a > 0, -b, a))
        log_cdf_hi = log_ndtr(np.where(a > 0, -a, b))
        self._log_mass = log_cdf_hi + np.log1p(-np.exp(np.minimum(self._log_cdf_lo - log_cdf_hi, -1e-300)))

        self.cat_probs = []                            # per categorical dimension: (K, C)
        for j in self.cat:
            d = self.dims[j]
            c = len(d.values)
            probs = np.full((k, c), prior_weight / k)
            probs[np.arange(n), X[:, j].astype(int)] += 1.0
            if d.probabilities is not None:
                p = np.asarray(d.probabilities, dtype=float)
                probs[n] = p / p.sum()
            probs /= probs.sum(axis=1, keepdims=True)
            self.cat_probs.append(probs)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` draws, internal coordinates (not yet snapped onto integer/quantized lattices)."""
        comp = rng.choice(len(self.log_weights), size=size, p=np.exp(self.log_weights))
        out = np.empty((size, len(self.dims)))
        if self.num:
            # inverse CDF in log space: u = cdf_lo + r * mass, z = ndtri(u)
            r = rng.random((size, len(self.num)))
            log_u = np.logaddexp(self._log_cdf_lo[comp], np.log(np.maximum(r, 1e-300)) + self._log_mass[comp])
            z = self._flip[comp] * ndtri_exp(np.minimum(log_u, 0.0))
            x = self.mu[comp] + self.sigma[comp] * z
            out[:, self.num] = np.clip(x, self.low, self.high)
        for j, probs in zip(self.cat, self.cat_probs):
            cum = np.cumsum(probs[comp], axis=1)
            r = rng.random(size)[:, None] * cum[:, -1:]
            out[:, j] = np.minimum((r > cum).sum(axis=1), probs.shape[1] - 1)
        return out

    def log_pdf(self, Xc: np.ndarray) -> np.ndarray:
        """Log density of each row of `Xc` (internal coordinates) under the mixture."""
        m = Xc.shape[0]
        log_k = np.tile(self.log_weights, (m, 1))     # (M, K)
        if self.num:
            z = (Xc[:, None, self.num] - self.mu[None]) / self.sigma[None]   # (M, K, Dn)
            log_k += np.sum(-0.5 * z * z - _LOG_SQRT_2PI - np.log(self.sigma)[None]
                            - self._log_mass[None], axis=2)
        for j, probs in zip(self.cat, self.cat_probs):
            log_k += np.log(probs[:, Xc[:, j].astype(int)]).T
        top = log_k.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(log_k - top).sum(axis=1, keepdims=True)))[:, 0]


def _neighbour_sigmas(obs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Adaptive Parzen bandwidths (hyperopt's rule as Optuna keeps it): each point's larger gap
    to its sorted neighbours, the bounds counting as neighbours except for the outermost points,
    which take their inner gap (an end point's sigma would otherwise be the distance to a wall)."""
    n = len(obs)
    if n == 0:
        return obs.copy()
    order = np.argsort(obs, kind="stable")
    s = np.concatenate([[lo], obs[order], [hi]])
    sig_sorted = np.maximum(s[1:-1] - s[:-2], s[2:] - s[1:-1])
    if n >= 2:
        sig_sorted[0] = s[2] - s[1]
        sig_sorted[-1] = s[-2] - s[-3]
    sig = np.empty(n)
    sig[order] = sig_sorted
    return sig


def tpe_split(losses: np.ndarray, gamma: float, cap: int, n_real: int | None = None) -> np.ndarray:
    """Indexes of the "good" observations: the ceil(gamma * n) lowest losses, at most `cap`,
    at least one (stable: among equal losses the earlier trial is good). `n_real` is how many
    of the losses are observations (the rest are liars for pending trials, which do not make
    the good group larger)."""
    n = len(losses) if n_real is None else n_real
    n_good = int(min(max(np.ceil(gamma * n), 1), cap, len(losses)))
    return np.sort(np.argsort(losses, kind="stable")[:n_good])

