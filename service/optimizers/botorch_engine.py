"""The "botorch" method: Bayesian optimisation on BoTorch, the library under Ax (server extra `[botorch]`).

Every `suggest` builds a fresh model on the stored history; the only thing kept between calls is the
fitted hyper-parameters of recent data (_warm_fits.py), so that a suggestion on the same results
again (the draw-ahead's) skips the fit, and a warm-started fit finds its checkpoint's, and each still
gives the answer a fresh process gives:

  - **Encoding**: gp's `_Encoding` ([0, 1]^k box of the internal coordinates: ln(value) for the log
    families, int_uniform widened by +-0.5 and rounded on decode, one-hot categoricals with 3+
    values decoded by argmax, quantized families snapped by Dimension.from_internal). The space
    model has no conditional parameters (nested blocks are names, every dimension is always
    present), so there is no inactive coordinate to fix.
  - **Model**: BoTorch's `SingleTaskGP` with an ARD **Matérn-5/2** kernel carrying BoTorch's
    dimension-scaled log-normal length-scale prior (`get_covar_module_with_dim_scaled_prior(...,
    use_rbf_kernel=False)`), and a noise level inferred with its prior, so repeated configurations
    are averaged by the model. `kernel="rbf"` is SingleTaskGP's own default (BoTorch 0.12+), the
    model Ax's MBM fits; the Matérn kernel is rougher, so the model is less sure between and beyond
    the points it has seen, and fewer runs settle in the first basin they find: over 20 seeds in one
    run its regret at 60 evaluations was below RBF's on 18 of 20 Shekel-4 seeds, 16 of 20
    Rosenbrock-5, 15 of 20 Hartmann-6, 14 of 20 Michalewicz-5 and 8 of 20 Branin (the smooth 2-D
    one), at 1.0-1.25x its CPU per suggestion (benchmarks/README.md, "Sixth pass"). A
    `Standardize` outcome transform, hyper-parameters by `fit_gpytorch_mll` (at most 30 L-BFGS
    iterations: it ends within ~3e-4 of the converged marginal likelihood at ~0.7x its cost; a fit
    that raises keeps the prior-initialised hyper-parameters and is counted in `fit_failures`).
    **Warm-started fits** (on by default: `warm_fit_maxiter=10`, `warm_fit_every=5`): the fit on
    n results starts from the cold fit of a *checkpoint* of the same history, its first
    `n - n % warm_fit_every` results (bounded as the history is), and runs at most
    `warm_fit_maxiter` steps; when n is a multiple of `warm_fit_every` the fit is cold. The
    checkpoint's fit is kept by its exact data (_warm_fits.py): in a running study it is the fit
    made `n % warm_fit_every` results ago, found, so 4 fits in 5 take 10 steps instead of 30; in a
    fresh process (a restart, a replay) it is computed again, the same. So an answer depends on the
    seed and the history alone (the contract suite runs with it on, and a test checks that a
    cleared cache gives a running study's suggestions); a miss costs one more cold fit (a
    suggestion ~1.2x a cold one on Hartmann-6), never another answer. Results completed out of
    trial order move the checkpoint's prefix, and that suggestion misses. `warm_fit_maxiter=0`
    makes every fit cold.
    The losses are winsorised first, as Ax does (`output="winsorize"`: values above q3 + 1.5 IQR
    are clipped there), so one huge loss (a Rosenbrock corner, a diverged run's penalty) does not
    flatten every other difference; `output="yeojohnson"` (gp.py's `_warp`) was the earlier
    default. Failed and diverged trials get the shared penalty loss (_history.py).
  - **Acquisition**: `qLogNoisyExpectedImprovement` over the observed points, with nothing pending
    too (as Ax; `acquisition="auto"` takes the analytic `LogExpectedImprovement` then, cheaper and
    worse on Hartmann-6). Trials pending (and points already chosen in this call) are its
    `X_pending`: BoTorch integrates over their unknown outcomes jointly (the MC form of fantasies),
    so parallel workers spread out without a penalty or a liar. `pending_model="believer"` conditions
    the model on them at its own posterior mean instead (kriging believer, a fantasy without
    sampling) and leaves `X_pending` empty: over 20 seeds of the five problems at 8 pending it beat
    the sampled fantasies in 56 of 100 runs, its median regret 0.78-1.05x theirs (below on 4 of 5)
    at the same CPU; too close to leave Ax's choice (benchmarks/README.md, "Fifth pass").
    Maximised by `optimize_acqf` (10 restarts from 512 Sobol raw samples, L-BFGS-B; Ax runs 20
    from 1024, which cost ~1.25x the CPU and over 50 paired runs did no better: seventh pass;
    L-BFGS-B stops a restart at a relative change of the acquisition of `ftol=1e-5` instead of
    scipy's 2.2e-9, which cuts the batched forward/backward passes by about a quarter on
    Hartmann-6; `ftol=None` is scipy's). The restarts' end points are tried best-first; the first
    whose decoded params (after rounding) are not a pending or already-chosen point again wins,
    else a prior draw kept apart. "Again" means within `SAME_POINT` (1e-4 per
    unit coordinate), not the 2% the other engines' guard keeps: the acquisition already weighs a
    candidate against the pending points, and the 2% guard refused its best restart in 13 of 50
    suggestions of an 8-pending Shekel-4 run (regret 2.62 against 1.64 without it).
  - **Inputs** are already the unit box, so no `Normalize`; no `Warp` (Kumaraswamy input warping
    adds two hyper-parameters per coordinate to every fit; not measured here).
  - **Start-up**: the first 5 suggestions are prior draws (kept apart by the guard); trials still
    running count towards them once 3 results are in (as tpe), since pending trials are modelled.
    With 8 workers that makes 10 prior draws (the first 8 have no result to model, the next two
    wait for the third result); Ax's Client draws 5 and then holds further trials back until 2
    results are in, which a service whose workers claim on their own cannot do.
  - **Bounded history**: the 40 lowest losses plus the 60 latest other trials, as gp, so a fit is
    at most 100 points (benchmarks/suggest_latency.py).

Warm starts (refine, stages) need nothing here: the suggest flow puts the parent's observations in
`completed` (core/lineage.py), as for every engine.

torch runs single-threaded inside a suggestion (restored afterwards; the setting is per process, so
two suggestions at once both run on one thread): the matrices are at most 100 wide, where threads
cost more than they save, and a server runs requests side by side. The first suggestion in a
process imports torch and BoTorch (seconds): `warm_up` starts that import when a study is created.

The defaults are Ax 1.3.1's MBM choices (winsorised and standardised outcomes, always qLogNEI,
optimize_acqf with 20 restarts from 1024 raw samples) with the fit capped at 30 steps, and, since
the sixth pass, a Matérn-5/2 kernel in place of MBM's RBF; since the seventh, half the acquisition's
restarts and raw samples (10 from 512, BoTorch's tutorials' values). None of
them alone beat the earlier defaults (Yeo-Johnson, analytic LogEI, 8 restarts of 256, 100 fit
steps) on 3 Hartmann-6 seeds; together they did on 10 (median regret 0.0095 against 0.084, where
runs either find the global basin or stall near 0.2); benchmarks/README.md ("against Ax") has the
probes and the same-run check on five problems against Ax. The options stay so that the
comparison can be rerun (`TUNESERVE_BENCH_BOTORCH_OPTIONS`). The warm-started fits and `ftol=1e-5` were added
together in the fourth pass (benchmarks/README.md): ~0.73x of the earlier defaults' CPU per
suggestion in a running Hartmann-6 study (0.81-0.82x at 100 and 1,000 trials; 0.45x of Ax's in the
same run), with Hartmann-6's median regret over 12 seeds 0.0070 (3 runs stalled above 0.1) against
the earlier defaults' 0.0048 (3) on the same box and seeds, and Michalewicz-5's 1.66 against 1.42
(12 seeds, within their spread).

Speed: see benchmarks/README.md ("against Ax"); claims do not wait on it (core/draw_ahead.py).
"""
from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np

from tuneserve_service.optimizers._history import (
    MIN_MODEL_POINTS,
    DuplicateGuard,
    before_the_model,
    build_history,
    derive_seed,
    fixed_params,
    internal_row,
    model_dimensions,
    ordered,
    prior_sample,
)
from tuneserve_service.optimizers.base import Observation, Suggestion
from tuneserve_service.space import SearchSpace

EXTRA = "botorch"   # the pip extra that brings BoTorch: pip install "tuneserve[server,botorch]"

# The model's duplicate guard, per unit-cube coordinate: a candidate this close to a pending point is
# that point again. Not the engines' 2% (DuplicateGuard.PER_COORDINATE): with 8 pending it refused the
# acquisition's best restart in 13 of 50 Shekel-4 suggestions, though qLogNEI already weighs a
# candidate against the pending points (benchmarks/README.md, issue 20).
SAME_POINT = 1e-4


def available() -> bool:
    """Whether BoTorch can be imported here (the server refuses a botorch study when not)."""
    import importlib.util

    return importlib.util.find_spec("botorch") is not None and importlib.util.find_spec("torch") is not None


_warming: list[threading.Thread] = []


def warm_up() -> None:
    """Import torch and BoTorch in a background thread (once per process). Their first import takes
    seconds; made inside a suggestion, it could outlast the 10 s reservation of the trial being drawn
    (store.trials.RESERVATION_SECONDS) on a loaded box. Called when a botorch study is created."""
    def load() -> None:
        try:
            import botorch.acquisition.logei  # noqa: F401
            import botorch.fit  # noqa: F401
            import botorch.models  # noqa: F401
            import botorch.optim  # noqa: F401
        except Exception:  # noqa: BLE001 - the suggestion itself will import again and report it
            pass

    if not _warming:
        _warming.append(threading.Thread(target=load, name="botorch-import", daemon=True))
        _warming[0].start()


class BoTorchOptimizer:
    name = "botorch"

    def __init__(self, n_startup: int = 5, n_best: int = 40, n_recent: int = 60,
                 num_restarts: int = 10, raw_samples: int = 512, mc_samples: int = 128, maxiter: int = 100,
                 acquisition: str = "qlognei", fit_maxiter: int = 30, output: str = "winsorize",
                 warm_fit_maxiter: int = 10, warm_fit_every: int = 5,
                 ftol: float | None = 1e-5, pgtol: float | None = None, pending_model: str = "fantasies",
                 kernel: str = "matern"):
        if acquisition not in ("auto", "qlognei"):
            raise ValueError(f"acquisition must be 'auto' or 'qlognei', not {acquisition!r}")
        if output not in ("yeojohnson", "winsorize", "none"):
            raise ValueError(f"output must be 'yeojohnson', 'winsorize' or 'none', not {output!r}")
        if pending_model not in ("fantasies", "believer"):
            raise ValueError(f"pending_model must be 'fantasies' or 'believer', not {pending_model!r}")
        if kernel not in ("rbf", "matern"):
            raise ValueError(f"kernel must be 'rbf' or 'matern', not {kernel!r}")
        self.kernel = kernel
        self.acquisition = acquisition
        self.pending_model = pending_model
        self.output = output
        self.fit_failures = 0
        self.fit_maxiter = fit_maxiter
        self.warm_fit_maxiter = warm_fit_maxiter
        self.warm_fit_every = warm_fit_every
        self.ftol = ftol
        self.pgtol = pgtol
        self.n_startup = n_startup
        self.n_best = n_best
        self.n_recent = n_recent
        self.num_restarts = num_restarts
        self.raw_samples = raw_samples
        self.mc_samples = mc_samples
        self.maxiter = maxiter

    def suggest(
        self,
        space: SearchSpace,
        completed: list[Observation],
        pending: list[dict[str, Any]],
        count: int,
        seed: int,
        goal: str = "minimize",
    ) -> list[Suggestion]:
        dims = model_dimensions(space)
        fixed = fixed_params(space)
        history = build_history(space, completed, goal, n_best=self.n_best, n_recent=self.n_recent)
        guard = DuplicateGuard(space, pending)
        early = before_the_model(space, dims, fixed, guard, history.n_completed, self.n_startup,
                                 count, seed, self.name, n_pending=len(pending))
        if early is not None:
            return early
        # The acquisition already knows the pending points (X_pending): the model's guard refuses
        # only the same point again (what rounding makes of integer and categorical coordinates).
        guard.narrow(SAME_POINT)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.random.fork_rng(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.manual_seed(derive_seed(seed, 1 << 21))
                return self._model_suggest(space, dims, fixed, history, completed, pending, guard, count, seed,
                                           goal)
        finally:
            torch.set_num_threads(threads)

    def _outcome(self, losses: np.ndarray, warp) -> np.ndarray:
        if self.output == "yeojohnson":
            return warp(losses)
        if self.output == "winsorize":
            q1, q3 = np.percentile(losses, 25, method="lower"), np.percentile(losses, 75, method="higher")
            return np.minimum(losses, q3 + 1.5 * (q3 - q1))
        return np.asarray(losses, dtype=float)

    def _data(self, history, enc):
        """The model's inputs and targets for a history (BoTorch maximises: the target is -loss)."""
        import torch

        from tuneserve_service.optimizers.gp import _warp

        X = torch.tensor(np.vstack([enc.encode(x) for x in history.X]), dtype=torch.double)
        Y = torch.tensor(-self._outcome(history.losses, _warp), dtype=torch.double).unsqueeze(-1)
        return X, Y

    def _checkpoint_fit(self, space, completed, goal, enc, X, Y):
        """The start of a warm fit: (the cold fit's hyper-parameters, the key of its data) for the
        checkpoint of this history (its first `_warm_fits.checkpoint(n, warm_fit_every)` results,
        bounded as the history is), found in this process or fitted now; None when the fit is cold
        (warm fits off, the history is its own checkpoint, or the checkpoint is too small to model)."""
        from tuneserve_service.optimizers import _warm_fits

        if self.warm_fit_maxiter <= 0:
            return None
        c = _warm_fits.checkpoint(len(completed), self.warm_fit_every)
        if c >= len(completed) or c < self.n_startup:
            return None
        ck = build_history(space, completed[:c], goal, n_best=self.n_best, n_recent=self.n_recent)
        if ck.n_completed < MIN_MODEL_POINTS:
            return None
        Xc, Yc = self._data(ck, enc)
        if Xc.shape == X.shape and bool((Xc == X).all()) and bool((Yc == Y).all()):
            return None
        k = self._cold_key(Xc, Yc)
        found = _warm_fits.fitted(k)   # 4 asks in 5 of a running study: no model to build
        if found is not None:
            return found, k
        model = self._model(Xc, Yc)
        self._run_fit(model, k, None, self.fit_maxiter)
        return {name: p.detach().clone() for name, p in model.named_parameters()}, k

    def _model(self, X, Y):
        """SingleTaskGP with the kernel BoTorch builds for it by default (RBF) or its Matérn-5/2, both
        under the dimension-scaled length-scale prior."""
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior

        covar = get_covar_module_with_dim_scaled_prior(ard_num_dims=X.shape[-1], use_rbf_kernel=self.kernel == "rbf")
        return SingleTaskGP(X, Y, covar_module=covar, outcome_transform=Standardize(m=1))

    def _cold_key(self, X, Y) -> tuple:
        from tuneserve_service.optimizers import _warm_fits

        return _warm_fits.key(X, Y, "cold", self.kernel, self.output, self.fit_maxiter)

    def _fit(self, model, X, Y, space, completed, goal, enc) -> None:
        """Fit the hyper-parameters by the marginal likelihood: cold (from the priors' initial values,
        at most `fit_maxiter` L-BFGS-B steps), or, with `warm_fit_maxiter` > 0 and a history that is
        not its own checkpoint, from the checkpoint's cold fit in at most `warm_fit_maxiter` steps.
        Either is a function of the history alone (the retries draw from a stream seeded by the data,
        the start point is the checkpoint's data's fit), so a fit of the same data and checkpoint made
        earlier in this process is taken instead (the draw-ahead's suggestions, a study's checkpoint)."""
        from tuneserve_service.optimizers import _warm_fits

        start = self._checkpoint_fit(space, completed, goal, enc, X, Y)
        if start is None:
            self._run_fit(model, self._cold_key(X, Y), None, self.fit_maxiter)
            return
        params, ck_key = start
        k = _warm_fits.key(X, Y, "warm", self.kernel, self.output, self.warm_fit_maxiter, ck_key)
        self._run_fit(model, k, params, self.warm_fit_maxiter)

    def _run_fit(self, model, k: tuple, start, maxiter: int) -> None:
        import torch
        from botorch.fit import fit_gpytorch_mll
        from gpytorch.mlls import ExactMarginalLogLikelihood

        from tuneserve_service.optimizers import _warm_fits

        done = _warm_fits.fitted(k)
        if done is not None:
            self._load(model, done)
            model.eval()
            return
        if start is not None:
            self._load(model, start)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with torch.random.fork_rng():
            torch.manual_seed(int(k[1][:8], 16))
            try:
                fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": maxiter}})
            except Exception:   # noqa: BLE001 - a failed fit keeps the initial hyper-parameters
                self.fit_failures += 1
        model.eval()
        _warm_fits.remember(k, {name: p.detach().clone() for name, p in model.named_parameters()})

    def _acq_options(self, seed: int) -> dict[str, Any]:
        """optimize_acqf's options: L-BFGS-B's (the ones BoTorch's batched fast path takes) and the
        raw samples' seed."""
        out: dict[str, Any] = {"maxiter": self.maxiter, "seed": seed}
        if self.ftol is not None:   # BoTorch's batched L-BFGS-B takes ftol only without its factr
            out.update(ftol=self.ftol, factr=None)
        if self.pgtol is not None:
            out["pgtol"] = self.pgtol
        return out

    @staticmethod
    def _load(model, params) -> None:
        import torch

        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in params and params[name].shape == p.shape:
                    p.copy_(params[name])

    def _model_suggest(self, space, dims, fixed, history, completed, pending, guard, count, seed, goal):
        import torch
        from botorch.acquisition.analytic import LogExpectedImprovement
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.optim import optimize_acqf
        from botorch.sampling.normal import SobolQMCNormalSampler

        from tuneserve_service.optimizers.gp import _Encoding

        enc = _Encoding(dims)
        dtype = torch.double
        X, Y = self._data(history, enc)
        model = self._model(X, Y)
        self._fit(model, X, Y, space, completed, goal, enc)

        taken: list[torch.Tensor] = []
        for p in pending:
            row = internal_row(dims, p)
            if row is not None:
                taken.append(torch.tensor(enc.encode(row), dtype=dtype))
        bounds = torch.stack([torch.zeros(enc.size, dtype=dtype), torch.ones(enc.size, dtype=dtype)])
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([self.mc_samples]), seed=derive_seed(seed, 2))

        best_f = None
        out: list[Suggestion] = []
        for i in range(count):
            if taken and self.pending_model == "believer":
                Xp = torch.stack(taken)
                with torch.no_grad():
                    believed = model.condition_on_observations(X=Xp, Y=model.posterior(Xp).mean)
                acq = qLogNoisyExpectedImprovement(
                    believed, X_baseline=torch.cat([X, Xp]), sampler=sampler, prune_baseline=True)
            elif taken or self.acquisition == "qlognei":
                acq = qLogNoisyExpectedImprovement(
                    model, X_baseline=X, sampler=sampler, prune_baseline=True,
                    X_pending=torch.stack(taken) if taken else None)
            else:
                # Nothing pending: the analytic LogEI over the best posterior mean at an observed
                # point (noisy EI's plug-in form) finds the same peak several times faster.
                if best_f is None:
                    with torch.no_grad():
                        best_f = model.posterior(X).mean.max()
                acq = LogExpectedImprovement(model, best_f=best_f)
            cands, values = optimize_acqf(
                acq, bounds=bounds, q=1, num_restarts=self.num_restarts, raw_samples=self.raw_samples,
                return_best_only=False, options=self._acq_options(derive_seed(seed, 3, i)))
            order = torch.argsort(values.reshape(-1), descending=True).tolist()
            chosen, rank = None, -1
            for rank, j in enumerate(order):
                u = cands[j].reshape(-1).detach().numpy()
                params = ordered(space, {**fixed, **enc.decode(u)})
                if guard.accepts(params):
                    chosen = params
                    break
            phase = "model"
            if chosen is None:   # every restart landed on a taken point (a small finite space)
                chosen = ordered(space, prior_sample(space, guard, derive_seed(seed, 4, i)))
                phase = "prior"
            out.append(Suggestion(params=chosen, method=self.name,
                                  info={"phase": phase, "n_history": len(history), "n_pending": len(pending),
                                        "redraws": rank}))
            guard.add(chosen)
            taken.append(torch.tensor(enc.encode(internal_row(dims, chosen)), dtype=dtype))
        return out
