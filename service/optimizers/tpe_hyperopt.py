"""The "tpe_hyperopt" method: hyperopt's own (univariate) Tree-structured Parzen Estimator,
rebuilt from the stored history. The default "tpe" method is the multivariate TPE of tpe.py,
which beat this one on every benchmark problem (benchmarks/README.md); this engine stays for
studies that want hyperopt's behaviour, and as the benchmark's reference.

Nothing is pickled between calls: every `suggest` converts the space into hyperopt `hp.*`
expressions, writes the history into a fresh `hyperopt.Trials` by hand (hyperopt has no public
ask/tell), and asks `hyperopt.tpe.suggest` for one point at a time.

Conventions handled here (hyperopt 0.3):
  - `hp.loguniform(label, low, high)` takes log-space bounds and returns exp(U(low, high)); every
    log family is given `Dimension.internal_bounds()`, which is already ln(value) for all of them
    (W&B `log_uniform` exponents and `inv_log_uniform` included).
  - `hp.choice` / `hp.pchoice` results are stored as indexes: the options are the indexes, and the
    history is written as indexes too. W&B `probabilities` become `hp.pchoice`.
  - int_uniform is `hp.quniform(min - 0.5, max + 0.5, 1)` (ordered, every integer the same prior
    mass) rather than `hp.randint` (which TPE treats as an unordered categorical).
  - normal families keep their prior: `hp.normal`, `hp.qnormal`, `hp.lognormal`, `hp.qlognormal`.
  - trial ids are allocated here (hyperopt silently accepts an id already in use).

Start-up: the first `n_startup` suggestions (counting observations with a real value only, never
pending trials, unlike hyperopt's own start-up rule) are draws from the space's prior.

Pending trials: constant liar. Each pending trial, and each point already chosen in this call,
enters the history with the failure penalty (worse than the worst real loss), so it falls in
TPE's "bad" density g(x) and pushes candidates away. That alone does not stop duplicates (with
one liar among many observations g barely moves, and the prior draws during start-up ignore
the history), so a DuplicateGuard re-draws with another sub-seed any candidate within a small
radius of a pending or already-chosen point.

Configuration (chosen by benchmarks/optimizer_quality.py, see benchmarks/README.md; no setting
reached Optuna's TPE on Hartmann-6 or Rosenbrock-5, which is why "tpe" is multivariate now):
n_startup=10, n_EI_candidates=24, gamma=1.0, prior_weight=0.25 (best of a 16-point grid over
gamma {0.5, 1, 2, 4} x n_EI_candidates {24, 100} x prior_weight {1, 0.25}, 3 seeds, Branin,
Hartmann-6, Rosenbrock-5; gamma >= 2 was clearly worse everywhere). hyperopt's gamma is applied as
ceil(gamma * sqrt(n)) "good" trials (capped at 25, hyperopt's linear-forgetting constant, which
tpe.suggest does not expose); its default 0.25 keeps only 2 good trials at n=60, far too few.
"""
from __future__ import annotations

import logging
import math
import threading
from typing import Any, Sequence

import numpy as np

from tuneserve_service.optimizers._history import derive_seed, first_apart, internal_row, ordered
from tuneserve_service.optimizers.base import Suggestion
from tuneserve_service.optimizers.tpe import GOOD_CAP, TPEOptimizer
from tuneserve_service.space import Dimension

# hyperopt logs every suggest at INFO; the service's logs should not carry that.
logging.getLogger("hyperopt").setLevel(logging.WARNING)

# A pending trial the guard keeps rejecting is re-drawn at most this many times.
MAX_REDRAWS = 8
# GOOD_CAP (25, from tpe.py) is also hyperopt's own cap on its "good" group (its DEFAULT_LF, not a
# tpe.suggest argument), so the shared bounded history keeps every trial hyperopt could call good.
# hyperopt builds a pyll graph per Domain; spaces repeat across calls, so keep a few compiled.
_DOMAIN_CACHE_SIZE = 32


def _hp_expression(label: str, dim: Dimension):
    from hyperopt import hp

    d = dim.distribution
    if d == "categorical":
        n = len(dim.values)
        if dim.probabilities is not None:
            p = np.asarray(dim.probabilities, dtype=float)
            p = p / p.sum()
            return hp.pchoice(label, [(float(pi), i) for i, pi in enumerate(p)])
        return hp.choice(label, list(range(n)))
    if d == "int_uniform":
        return hp.quniform(label, float(dim.min) - 0.5, float(dim.max) + 0.5, 1)
    if d == "normal":
        return hp.normal(label, dim.mu, dim.sigma)
    if d == "q_normal":
        return hp.qnormal(label, dim.mu, dim.sigma, dim.q)
    if d == "log_normal":
        return hp.lognormal(label, dim.mu, dim.sigma)
    if d == "q_log_normal":
        return hp.qlognormal(label, dim.mu, dim.sigma, dim.q)
    low, high = dim.internal_bounds()
    if dim.is_log:
        if dim.q:
            return hp.qloguniform(label, low, high, dim.q)
        return hp.loguniform(label, low, high)
    if dim.q:
        return hp.quniform(label, low, high, dim.q)
    return hp.uniform(label, low, high)


def _to_hyperopt(dim: Dimension, internal: float) -> float:
    """An internal coordinate as hyperopt records the value in `misc.vals`: the index for a
    choice, exp(x) for log families (hyperopt stores values, not logs), else the value."""
    if dim.distribution == "categorical":
        return int(round(internal))
    if dim.is_log:
        return math.exp(internal)
    return float(internal)


def _from_hyperopt(dim: Dimension, raw: Any) -> Any:
    """hyperopt's recorded value -> a legal value of the dimension (clipped, quantized, typed)."""
    if dim.distribution == "categorical":
        return dim.from_internal(float(raw))
    x = float(raw)
    if dim.is_log:
        x = math.log(x) if x > 0 else -745.0   # smallest exponent that is still a float
    return dim.from_internal(x)


class HyperoptTPEOptimizer(TPEOptimizer):
    """The shared TPE front (history, start-up, guard) from TPEOptimizer, hyperopt's model behind it."""

    name = "tpe_hyperopt"
    # hyperopt's engine keeps the start-up rule it was measured with: results only.
    pending_fill_startup = False

    def __init__(
        self,
        n_startup: int = 10,
        n_ei_candidates: int = 24,
        gamma: float = 1.0,
        prior_weight: float = 0.25,
        max_history: int = 300,
    ):
        super().__init__(n_startup, n_ei_candidates, gamma, prior_weight, max_history)
        self._domains: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    # -- hyperopt plumbing -------------------------------------------------------------------

    def _domain(self, dims: Sequence[Dimension]):
        from hyperopt.base import Domain

        key = tuple(repr(d) for d in dims)
        with self._lock:
            domain = self._domains.get(key)
        if domain is None:
            space = {f"p{i}": _hp_expression(f"p{i}", d) for i, d in enumerate(dims)}
            domain = Domain(lambda _params: 0.0, space)
            with self._lock:
                if len(self._domains) >= _DOMAIN_CACHE_SIZE:
                    self._domains.pop(next(iter(self._domains)))
                self._domains[key] = domain
        return domain

    @staticmethod
    def _doc(tid: int, dims: Sequence[Dimension], row: np.ndarray, loss: float) -> dict:
        from hyperopt.base import JOB_STATE_DONE, STATUS_OK

        labels = [f"p{i}" for i in range(len(dims))]
        return {
            "state": JOB_STATE_DONE,
            "tid": tid,
            "spec": None,
            "result": {"loss": float(loss), "status": STATUS_OK},
            "misc": {
                "tid": tid,
                "cmd": ("domain_attachment", "FMinIter_Domain"),
                "workdir": None,
                "idxs": {lab: [tid] for lab in labels},
                "vals": {lab: [_to_hyperopt(d, x)] for lab, d, x in zip(labels, dims, row)},
            },
            "exp_key": None,
            "owner": None,
            "version": 0,
            "book_time": None,
            "refresh_time": None,
        }

    def _tpe_point(
        self, domain, docs: list[dict], dims: Sequence[Dimension], seed: int, gamma: float
    ) -> dict[str, Any]:
        from hyperopt import Trials, tpe

        trials = Trials()
        trials.insert_trial_docs(docs)   # public API (validates each doc); no private attribute of Trials
        trials.refresh()
        new_tid = len(docs)   # ids 0..len-1 are taken by the history written above
        new = tpe.suggest(
            [new_tid], domain, trials, seed,
            prior_weight=self.prior_weight,
            n_startup_jobs=0,
            n_EI_candidates=self.n_ei_candidates,
            gamma=gamma,
            verbose=False,
        )
        vals = new[0]["misc"]["vals"]
        return {d.name: _from_hyperopt(d, vals[f"p{i}"][0]) for i, d in enumerate(dims)}

    def _gamma(self, n_full: int, n_used: int) -> float:
        """The gamma that makes hyperopt pick, from the bounded history it is given, as many
        "good" trials as it would have picked from the full one: ceil(gamma * sqrt(n)), capped."""
        if n_used >= n_full:
            return self.gamma
        n_good = min(math.ceil(self.gamma * math.sqrt(n_full)), GOOD_CAP)
        return (n_good - 1e-9) / math.sqrt(n_used)

    # -- the Optimizer interface --------------------------------------------------------------

    def _suggest_model(self, space, dims, fixed, history, guard, pending, count, seed) -> list[Suggestion]:
        domain = self._domain(dims)
        docs = [self._doc(t, dims, x, l) for t, (x, l) in enumerate(zip(history.X, history.losses))]
        for p in pending:
            row = internal_row(dims, p)
            if row is not None:   # a pending trial from an older space: the guard does what it can
                docs.append(self._doc(len(docs), dims, row, history.penalty))
        n_liars = len(docs) - len(history)

        out: list[Suggestion] = []
        for i in range(count):
            call_seed = derive_seed(seed, i)
            gamma = self._gamma(history.n_total + n_liars + i, len(docs))
            best, redraws = first_apart(
                guard, lambda attempt: self._tpe_point(domain, docs, dims, derive_seed(call_seed, attempt), gamma),
                MAX_REDRAWS)
            params = ordered(space, {**fixed, **best})
            out.append(Suggestion(params=params, method=self.name,
                                  info={"n_history": len(history.params), "n_pending": len(pending),
                                        "redraws": redraws}))
            guard.add(params)
            docs.append(self._doc(len(docs), dims, internal_row(dims, params), history.penalty))
        return out
