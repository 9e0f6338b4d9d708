"""The "gp" method: Gaussian-process Bayesian optimisation with the bayesian-optimization library.

Every `suggest` rebuilds a `bayes_opt.BayesianOptimization` from the stored history (nothing is
kept between calls) and asks it for points. What this adapter adds around the library:

Encoding (not the library's typed bounds: its categorical/integer parameters are experimental
and about 4.5x slower, since they switch acquisition search to differential evolution):
  - every coordinate is a float in [0, 1], an affine map of the dimension's internal coordinate,
    so continuous parameters are searched in their natural transform (ln(value) for every log
    family) and one isotropic-bounds box suits the library's L-BFGS-B search;
  - int_uniform spans [min - 0.5, max + 0.5] so every integer owns the same width, decoded by
    rounding; quantized families are decoded onto their q lattice by Dimension.from_internal;
  - a categorical with 3+ values is one-hot (one coordinate per value, decoded by argmax), so no
    false order is imposed; with 2 values a single coordinate thresholded at 0.5 is the same;
  - normal families are searched over mu +- 3 sigma (Dimension.internal_bounds), prior ignored.

Goal: the library maximises, so the target is -loss (the study value, negated for "minimize"),
after a Yeo-Johnson warp and standardisation over the history (see _warp), so EI's xi is
relative to the spread of results. Failed and
diverged trials get the shared penalty loss (worse than the worst completed one).

Kernel and acquisition: Matern 5/2 with one length scale per coordinate (ARD: the benchmark
problems differ a lot in how much each coordinate matters), Expected Improvement with xi=0
(xi=0.01 of the standardised target spread was too exploratory: at 60 evaluations, 10 seeds,
median regret Branin 0.0094 -> 7.9e-6, Hartmann-6 0.037 -> 0.0017, Rosenbrock-5 9.0 -> 4.7 with
xi=0 and the two finer local-search scales below; see benchmarks/README.md).
The first `n_startup` = 5 suggestions are prior draws (the library has no initial design in
ask/tell use; 5 is its `maximize()` default). 10 left a 20-trial study, a usual CNN budget,
only 10 model-driven trials: on the MLP benchmark (20 evaluations, seeds 0-29) the best error
went 0.0509 -> 0.0482, level with the synthetic problems at 60 evaluations (benchmarks/README.md).

Latency (benchmarks/suggest_latency.py): with the library's defaults a suggestion takes ~0.6 s
at 10 points and seconds at 300, mostly acquisition search (10 000 random points plus 10
L-BFGS-B runs with finite-difference gradients) and GP hyper-parameter restarts. Here:
  - bounded history: the `n_best` lowest losses plus the `n_recent` latest other trials
    (default 40 + 60, so at most 100 points: GP fitting is O(N^3); 200 points took ~0.9 s);
  - points are registered straight into the TargetSpace (`BayesianOptimization.register` logs
    the whole result list per call: O(N^2) for a rebuild);
  - hyper-parameters fitted on the real points only, from one start (`gp_restarts=0`: each
    restart cost as much again, ~0.3 s at 100 points in 13 coordinates), then frozen;
  - acquisition search: batched random + local search (see WarmStartEI) instead of the
    library's per-point L-BFGS-B, warm-started from the best observed points.

Several objectives and constraints (multi.py): ParEGO, not EHVI. Each suggestion scalarises the
normalised objectives with random simplex weights (augmented Chebyshev) and runs this same GP + EI:
no new dependency (EHVI needs BoTorch/torch on the server, or a hand-written box decomposition),
the cost of a single-objective suggestion, and the kriging believer below works as it is for
pending trials, where EHVI would need a q-EHVI. Constraints: bayes_opt's own constrained mode
(a GP per constraint, EI times the probability of feasibility, the incumbent the best feasible
target); the believer lies carry the constraint models' mean.

Pending trials: kriging believer (liar="believer", the default). Each pending trial, and each
point already chosen in the same call, is registered, under the frozen hyper-parameters, with the
GP's own posterior mean there (conditioned on the liars registered before it); the variance
collapses there and EI moves on without the model being told the region is bad. The former
"CL-min" liar (the worst target seen, liar="min") made 8-pending runs 4-22x worse than
sequential ones: it paints every pending region as the worst result, which with 8 in flight out
of 60 drives the search away from the incumbent. liar="mean" (the mean target) is also kept for
comparison; both measured in benchmarks/README.md. A DuplicateGuard redraws (another acquisition
search) a candidate that still lands within a small radius of a pending or chosen point; such a
rejected candidate is registered with the worst target (a believer lie there barely moves EI,
which peaks right next to it again).
"""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from tuneserve_service.optimizers._history import (
    DuplicateGuard,
    before_the_model,
    ordered,
    build_history,
    derive_seed,
    fixed_params,
    internal_row,
    model_dimensions,
)
from tuneserve_service.optimizers.base import Observation, Suggestion
from tuneserve_service.optimizers.multi import gp_observations, is_multi
from tuneserve_service.space import Dimension, SearchSpace

MAX_REDRAWS = 4

# This adapter leans on two private parts of bayes_opt, for which it has no public equivalent: it
# overrides `AcquisitionFunction._acq_min` (the acquisition search, called from the public
# `suggest` with these keyword arguments) and reads `BayesianOptimization._gp` (the fitted GP, to
# freeze its hyper-parameters and predict the believer liars). So the library is pinned exactly in
# pyproject.toml, and tests/test_engine_pins.py fails, naming what changed, when the installed
# library is another version or those attributes change shape.
BAYES_OPT_PIN = "3.4.0"
BAYES_OPT_PRIVATE = ("bayes_opt.acquisition.AcquisitionFunction._acq_min(acq, space, random_state, n_random, n_smart)",
                     "bayes_opt.BayesianOptimization._gp")


def _warp(losses: np.ndarray) -> np.ndarray:
    """Losses made Gaussian-looking for the GP: Yeo-Johnson (lambda by maximum likelihood), then
    standardised. Monotone, so the order of results is kept; without it one huge loss (a
    Rosenbrock corner, a diverging run) flattens every other difference after standardising."""
    from scipy.stats import yeojohnson

    z = (losses - losses.mean()) / (losses.std() if losses.std() > 0 else 1.0)
    if len(z) >= 3 and np.ptp(z) > 0:
        z = yeojohnson(z)[0]
    return (z - z.mean()) / (z.std() if z.std() > 0 else 1.0)


def _constraint_value(c):
    """One constraint is registered as a float, several as a vector (bayes_opt's TargetSpace)."""
    c = np.atleast_1d(np.asarray(c, dtype=float))
    return float(c[0]) if c.size == 1 else c


class _Encoding:
    """Internal coordinates <-> the [0, 1]^k box the GP works in."""

    def __init__(self, dims: Sequence[Dimension]):
        self.dims = list(dims)
        self.slices: list[slice] = []
        self.lo: list[float] = []
        self.hi: list[float] = []
        k = 0
        for d in self.dims:
            width = len(d.values) if d.distribution == "categorical" and len(d.values) > 2 else 1
            self.slices.append(slice(k, k + width))
            k += width
            lo, hi = d.internal_bounds()
            if d.distribution == "int_uniform":
                lo, hi = lo - 0.5, hi + 0.5
            self.lo.append(lo)
            self.hi.append(hi)
        self.size = k

    def encode(self, row: np.ndarray) -> np.ndarray:
        u = np.zeros(self.size)
        for j, d in enumerate(self.dims):
            s = self.slices[j]
            if s.stop - s.start > 1:
                u[s.start + int(round(row[j]))] = 1.0
            else:
                span = self.hi[j] - self.lo[j]
                u[s.start] = 0.5 if span <= 0 else np.clip((row[j] - self.lo[j]) / span, 0.0, 1.0)
        return u

    def decode(self, u: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for j, d in enumerate(self.dims):
            s = self.slices[j]
            if s.stop - s.start > 1:
                x = float(np.argmax(u[s]))
            else:
                x = self.lo[j] + float(u[s.start]) * (self.hi[j] - self.lo[j])
            out[d.name] = d.from_internal(x)
        return out


def _acquisition(xi: float, n_random: int, n_local: int, n_incumbents: int,
                 scales: Sequence[float] = (0.1, 0.03, 0.01, 0.003, 0.001)):
    from bayes_opt.acquisition import ExpectedImprovement

    class WarmStartEI(ExpectedImprovement):
        """The library's EI with a cheaper search for its maximum.

        The library's search (10 000 random points, then 10 L-BFGS-B runs with finite-difference
        gradients, each step a separate GP prediction) took ~3 s per suggestion at 40 points in
        6-D. This one makes a handful of batched predictions instead: `n_random` prior points,
        then five rounds of `n_local` Gaussian perturbations (scales 0.1, 0.03, 0.01, 0.003,
        0.001 of the unit box; the last two let it converge onto a peak next to an incumbent)
        around the 5 best points so far, the `n_incumbents` best observed points among the
        first centres (a warm start: once the model has converged, EI peaks next to them)."""

        def _acq_min(self, acq, space, random_state, n_random=n_random, n_smart=0):
            lo, hi = space.bounds[:, 0], space.bounds[:, 1]
            X = space.random_sample(n_random, random_state=random_state)
            if n_incumbents and len(space):
                X = np.vstack([X, space.params[np.argsort(space.target)[::-1][:n_incumbents]]])
            y = acq(X)
            for scale in scales:
                centres = X[np.argsort(y)[:5]]
                cand = np.repeat(centres, max(n_local // 5, 1), axis=0)
                cand = np.clip(cand + random_state.normal(0.0, scale, cand.shape), lo, hi)
                X, y = np.vstack([X, cand]), np.concatenate([y, acq(cand)])
            return X[np.argmin(y)]

    return WarmStartEI(xi=xi)


class GPOptimizer:
    name = "gp"

    def __init__(
        self,
        n_startup: int = 5,
        n_best: int = 40,
        n_recent: int = 60,
        xi: float = 0.0,
        n_random: int = 2000,
        n_local: int = 500,
        n_incumbents: int = 3,
        gp_restarts: int = 0,
        liar: str = "believer",
        scales: Sequence[float] = (0.1, 0.03, 0.01, 0.003, 0.001),
    ):
        self.scales = tuple(scales)
        if liar not in ("min", "mean", "believer"):
            raise ValueError(f"liar must be 'min', 'mean' or 'believer', not {liar!r}")
        self.liar = liar
        self.n_startup = n_startup
        self.n_best = n_best
        self.n_recent = n_recent
        self.xi = xi
        self.n_random = n_random
        self.n_local = n_local
        self.n_incumbents = n_incumbents
        self.gp_restarts = gp_restarts

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
        constraints = None
        if is_multi(completed, goals):   # ParEGO scalarisation, a GP per constraint (multi.py)
            completed, constraints = gp_observations(completed, goals or (goal,), derive_seed(seed, 1 << 21))
            goal = "minimize"
        history = build_history(space, completed, goal, n_best=self.n_best, n_recent=self.n_recent)
        if constraints is not None:
            constraints = constraints[list(history.kept)]
        guard = DuplicateGuard(space, pending)
        # Pending trials do not count towards the start-up design here, unlike tpe: a GP fitted
        # on 3 results plus 7 believers made 8-pending runs worse on Hartmann-6 and Rosenbrock-5
        # (10 seeds: 0.159 -> 0.246, 7.3 -> 16; benchmarks/README.md).
        early = before_the_model(space, dims, fixed, guard, history.n_completed, self.n_startup,
                                 count, seed, self.name)
        if early is not None:
            return early

        # The library prints (duplicate points, its step log) and sklearn warns (length scales
        # at their bounds): neither belongs on a server's stdout.
        # One BLAS thread: the matrices are at most a few hundred wide, where threads cost more
        # than they save, and a server runs many requests side by side.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            return self._model_suggest(space, dims, fixed, history, pending, guard, count, seed, constraints)

    def _model_suggest(self, space, dims, fixed, history, pending, guard, count, seed, constraints=None):
        from bayes_opt import BayesianOptimization
        from scipy.optimize import NonlinearConstraint
        from sklearn.gaussian_process.kernels import Matern

        enc = _Encoding(dims)
        keys = [f"x{j:04d}" for j in range(enc.size)]   # zero-padded: any key sorting keeps the order
        rs = np.random.RandomState(derive_seed(seed, 1 << 20))
        opt = BayesianOptimization(
            f=None,
            pbounds={k: (0.0, 1.0) for k in keys},
            acquisition_function=_acquisition(self.xi, self.n_random, self.n_local, self.n_incumbents, self.scales),
            random_state=rs,
            verbose=0,
            allow_duplicate_points=False,
            # Constraints: one GP per constraint, EI times the probability that all hold (c <= 0).
            constraint=None if constraints is None else NonlinearConstraint(
                None, np.full(constraints.shape[1], -np.inf), np.zeros(constraints.shape[1])),
        )
        opt.set_gp_params(
            kernel=Matern(length_scale=np.full(enc.size, 0.5), length_scale_bounds=(1e-2, 1e2), nu=2.5),
            n_restarts_optimizer=self.gp_restarts,
        )

        # Targets: maximise -loss, standardised. Equal encodings (repeated integer/categorical
        # points) are averaged: the library rejects a duplicate point.
        U = np.vstack([enc.encode(x) for x in history.X])
        y = -_warp(history.losses)
        merged: dict[bytes, list] = {}
        C = constraints if constraints is not None else [None] * len(U)
        for u, t, c in zip(U, y, C):
            merged.setdefault(u.tobytes(), [u, [], []])[1].append(t)
            merged[u.tobytes()][2].append(c)
        space_ = opt.space
        for u, ts, cs in merged.values():
            space_.register(u, float(np.mean(ts)), None if constraints is None else _constraint_value(np.mean(cs, axis=0)))
        model = opt.constraint
        if model is not None:
            model.fit(space_.params, space_._constraint_values)
            worst_c = _constraint_value(np.max(np.atleast_2d(space_._constraint_values.T).T, axis=0))
        liar = float(space_.target.min() if self.liar == "min" else space_.target.mean())

        # Fit hyper-parameters once, on real points only, then freeze them so the liars below
        # only condition the GP. The library exposes no getter for the fitted kernel.
        opt.predict({k: 0.5 for k in keys}, fit_gp=True)
        gp = opt._gp
        gp.set_params(kernel=gp.kernel_, optimizer=None)

        worst = float(space_.target.min())

        def lie(u: np.ndarray, rejected: bool = False) -> None:
            if u in space_:
                return
            value = worst if rejected else liar
            c = None
            if model is not None:   # the constraint models' own mean there (the worst when rejected)
                c = worst_c if rejected else _constraint_value(model.approx(u.reshape(1, -1))[0])
            if self.liar == "believer" and not rejected:
                # Kriging believer: the GP's own mean there (conditioned on the liars so far).
                gp.fit(space_.params, space_.target)
                value = float(gp.predict(u.reshape(1, -1))[0])
            space_.register(u, value, c)

        for p in pending:
            row = internal_row(dims, p)
            if row is not None:
                lie(enc.encode(row))

        out: list[Suggestion] = []
        for i in range(count):
            best, best_d, redraws = None, -1.0, 0
            for attempt in range(MAX_REDRAWS):
                point = opt.suggest()
                u = np.asarray([point[k] for k in keys], dtype=float)
                cand = ordered(space, {**fixed, **enc.decode(u)})
                dist = guard.distance(cand)
                if dist > best_d:
                    best, best_d, best_u = cand, dist, u
                if dist >= guard.radius:
                    break
                redraws += 1
                lie(u, rejected=True)   # the worst target: make the next search move well off this spot
            out.append(Suggestion(params=best, method=self.name,
                                  info={"n_history": len(history), "n_pending": len(pending),
                                        "redraws": redraws}))
            guard.add(best)
            lie(enc.encode(internal_row(dims, best)))
            lie(best_u)
        return out
