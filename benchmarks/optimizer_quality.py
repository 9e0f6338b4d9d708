"""How good are the optimizers' suggestions: simple regret on standard problems, sequential and
with 8 trials pending, for our random/tpe/tpe_hyperopt/gp/botorch next to bayesian-optimization as
shipped (sequential only), Optuna's TPESampler and GPSampler, and Ax's default generation strategy
(`ax`: Ax's Client, Sobol then BoTorch's MBM, without its centre-point first trial; a bench extra).

Problems: Branin (2-D), Hartmann-6, Rosenbrock-5 on [-2.048, 2.048]^5, Shekel-4 (10 maxima) on
[0, 10]^4 and Michalewicz-5 on [0, pi]^5 (optima off the centre and off the corners), and a small
sklearn MLP on load_digits (3-fold CV error; its optimum is unknown, so the best error itself is
printed). Simple regret = best value found - optimum.

"8 pending" simulates 8 workers: the first 8 trials are asked with the earlier ones pending, then
the oldest running trial is completed and a new one asked with the other 7 pending. Optuna runs
with its defaults (its TPE ignores running trials unless constant_liar=True); Ax sees running
trials as its pending points.

Besides the regret: the time per suggestion (every ask of a run together / evaluations), and the
share of suggested points with a numeric coordinate exactly on a bound of the box, and of corners
(every numeric coordinate on one); a model whose acquisition runs into the box's edges shows there.

It also measures how far apart concurrent suggestions are: the median nearest-neighbour distance
(unit cube) among 8 points asked in one call with count=8, next to 8 consecutive sequential
suggestions, after 20 random observations of Hartmann-6.

    python benchmarks/optimizer_quality.py                  # everything (many hours on 2 cores: Ax is slow)
    python benchmarks/optimizer_quality.py --quick          # 3 seeds, synthetic problems, 40 evals
    python benchmarks/optimizer_quality.py --problems branin,hartmann6 --seeds 5 --methods botorch,ax --modes 0 \
        --json runs.json                                    # every finished run saved as it ends
    python benchmarks/optimizer_quality.py --report runs.json,more.json   # the tables from saved runs
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tuneserve_service.optimizers.base import Observation  # noqa: E402
from tuneserve_service.space import Dimension, SearchSpace  # noqa: E402


# -- problems ----------------------------------------------------------------------------------

def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


_SHEKEL_A = np.array([[4, 4, 4, 4], [1, 1, 1, 1], [8, 8, 8, 8], [6, 6, 6, 6], [3, 7, 3, 7],
                      [2, 9, 2, 9], [5, 5, 3, 3], [8, 1, 8, 1], [6, 2, 6, 2], [7, 3.6, 7, 3.6]], dtype=float)
_SHEKEL_C = np.array([0.1, 0.2, 0.2, 0.4, 0.4, 0.6, 0.3, 0.7, 0.5, 0.5])


def shekel4(p: dict[str, Any]) -> float:
    """Shekel with 10 maxima on [0, 10]^4: optimum -10.5364 at (4, 4, 4, 4), off the centre (5, ...),
    with nine other deep local minima."""
    x = np.array([p[f"x{i}"] for i in range(4)])
    return float(-np.sum(1.0 / (np.sum((x - _SHEKEL_A) ** 2, axis=1) + _SHEKEL_C)))


def michalewicz5(p: dict[str, Any]) -> float:
    """Michalewicz (m = 10) on [0, pi]^5: optimum -4.687658 at about (2.20, 1.57, 1.29, 1.92, 1.72),
    narrow valleys, many local minima."""
    x = np.array([p[f"x{i}"] for i in range(5)])
    i = np.arange(1, 6)
    return float(-np.sum(np.sin(x) * np.sin(i * x**2 / math.pi) ** 20))


def rosenbrock5(p: dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(5)])
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


_DIGITS = None


def mlp_digits(p: dict[str, Any]) -> float:
    global _DIGITS
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import cross_val_score
    from sklearn.neural_network import MLPClassifier

    if _DIGITS is None:
        X, y = load_digits(return_X_y=True)
        _DIGITS = (X / 16.0, y)
    X, y = _DIGITS
    clf = MLPClassifier(hidden_layer_sizes=(p["hidden"],) * p["layers"], alpha=p["alpha"],
                        learning_rate_init=p["lr"], activation=p["activation"],
                        batch_size=p["batch_size"], max_iter=25, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(1.0 - cross_val_score(clf, X, y, cv=3).mean())


def _uniform(name: str, lo: float, hi: float) -> Dimension:
    return Dimension(name=name, distribution="uniform", min=lo, max=hi)


PROBLEMS: dict[str, tuple[SearchSpace, Callable, float | None, int]] = {
    # name: (space, objective, known optimum or None, evaluations)
    "branin": (SearchSpace((_uniform("x1", -5, 10), _uniform("x2", 0, 15))), branin, 0.397887357729738, 60),
    "hartmann6": (SearchSpace(tuple(_uniform(f"x{i}", 0, 1) for i in range(6))), hartmann6, -3.32236801141551, 60),
    "rosenbrock5": (SearchSpace(tuple(_uniform(f"x{i}", -2.048, 2.048) for i in range(5))), rosenbrock5, 0.0, 60),
    "shekel4": (SearchSpace(tuple(_uniform(f"x{i}", 0, 10) for i in range(4))), shekel4, -10.536409816692, 60),
    "michalewicz5": (SearchSpace(tuple(_uniform(f"x{i}", 0, math.pi) for i in range(5))), michalewicz5,
                     -4.687658, 60),
    "mlp_digits": (SearchSpace((
        Dimension(name="hidden", distribution="q_log_uniform_values", min=16, max=256, q=8),
        Dimension(name="layers", distribution="int_uniform", min=1, max=3),
        Dimension(name="alpha", distribution="log_uniform_values", min=1e-6, max=1e-1),
        Dimension(name="lr", distribution="log_uniform_values", min=1e-4, max=1e-1),
        Dimension(name="activation", distribution="categorical", values=("relu", "tanh", "logistic")),
        Dimension(name="batch_size", distribution="categorical", values=(32, 64, 128)),
    )), mlp_digits, None, 20),
}


# -- methods -------------------------------------------------------------------------------------

def _ours(name: str):
    if name == "random":
        from tuneserve_service.optimizers.random import RandomOptimizer
        return RandomOptimizer()
    if name == "tpe":
        from tuneserve_service.optimizers.tpe import TPEOptimizer
        return TPEOptimizer(**json.loads(os.environ.get("TUNESERVE_BENCH_TPE_OPTIONS", "{}")))
    if name == "tpe_hyperopt":
        from tuneserve_service.optimizers.tpe_hyperopt import HyperoptTPEOptimizer
        return HyperoptTPEOptimizer()
    if name == "gp":
        from tuneserve_service.optimizers.gp import GPOptimizer
        return GPOptimizer(**json.loads(os.environ.get("TUNESERVE_BENCH_GP_OPTIONS", "{}")))
    if name == "botorch":
        from tuneserve_service.optimizers.botorch_engine import BoTorchOptimizer
        return BoTorchOptimizer(**json.loads(os.environ.get("TUNESERVE_BENCH_BOTORCH_OPTIONS", "{}")))
    if name == "bayes_opt":
        return ShippedBayesOpt()
    raise ValueError(name)


# Reference methods that ignore pending trials: run sequentially only.
SEQUENTIAL_ONLY = {"bayes_opt"}


class ShippedBayesOpt:
    """bayesian-optimization as shipped, the reference the gp method must not lose to: the
    library's default acquisition and GP through its own ask/tell (`suggest`, `register`), after
    5 prior draws (`maximize()`'s default init_points), on the gp adapter's [0, 1] encoding
    (the library's own integer/categorical parameters are experimental). Sequential only: it
    ignores pending trials."""

    name = "bayes_opt"

    def suggest(self, space, completed, pending, count, seed, goal="minimize"):
        from bayes_opt import BayesianOptimization

        from tuneserve_service.optimizers._history import fixed_params, internal_row, model_dimensions, ordered
        from tuneserve_service.optimizers.base import Suggestion
        from tuneserve_service.optimizers.gp import _Encoding

        if len(completed) < 5:
            return [Suggestion(space.sample(np.random.default_rng(seed)), "random")]
        dims = model_dimensions(space)
        enc = _Encoding(dims)
        keys = [f"x{j:04d}" for j in range(enc.size)]
        opt = BayesianOptimization(f=None, pbounds={k: (0.0, 1.0) for k in keys},
                                   random_state=seed % 2**32, verbose=0, allow_duplicate_points=True)
        with contextlib.redirect_stdout(io.StringIO()):   # it prints every duplicate point
            for obs in completed:
                u = enc.encode(internal_row(dims, obs.params))
                opt.register(params=dict(zip(keys, u)), target=-obs.value)
            point = opt.suggest()
        params = enc.decode(np.array([point[k] for k in keys]))
        return [Suggestion(ordered(space, {**fixed_params(space), **params}), self.name)]


def _optuna_distributions(space: SearchSpace):
    import optuna

    out = {}
    for d in space.dimensions:
        if d.distribution == "uniform":
            out[d.name] = optuna.distributions.FloatDistribution(d.min, d.max)
        elif d.distribution == "log_uniform_values":
            out[d.name] = optuna.distributions.FloatDistribution(d.min, d.max, log=True)
        elif d.distribution == "q_log_uniform_values":
            # Optuna cannot combine log and step: an int in log scale, rounded onto q by the space.
            out[d.name] = optuna.distributions.IntDistribution(int(d.min), int(d.max), log=True)
        elif d.distribution == "int_uniform":
            out[d.name] = optuna.distributions.IntDistribution(d.min, d.max)
        elif d.distribution == "categorical":
            out[d.name] = optuna.distributions.CategoricalDistribution(list(d.values))
        else:
            raise ValueError(d.distribution)
    return out


def on_bound(space: SearchSpace, params: dict[str, Any]) -> tuple[bool, bool]:
    """(some numeric coordinate exactly on a bound, every numeric coordinate on one: a corner)."""
    hits = []
    for d in space.dimensions:
        if d.distribution in ("constant", "categorical"):
            continue
        lo, hi = d.internal_bounds()
        x = d.to_internal(params[d.name])
        hits.append(abs(x - lo) <= 1e-9 * max(1.0, abs(lo)) or abs(x - hi) <= 1e-9 * max(1.0, abs(hi)))
    return any(hits), bool(hits) and all(hits)


def _ax_parameters(space: SearchSpace):
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

    out = []
    for d in space.dimensions:
        if d.distribution == "uniform":
            out.append(RangeParameterConfig(name=d.name, parameter_type="float", bounds=(d.min, d.max)))
        elif d.distribution == "log_uniform_values":
            out.append(RangeParameterConfig(name=d.name, parameter_type="float", bounds=(d.min, d.max), scaling="log"))
        elif d.distribution == "q_log_uniform_values":
            out.append(RangeParameterConfig(name=d.name, parameter_type="int", bounds=(int(d.min), int(d.max)),
                                            scaling="log"))
        elif d.distribution == "int_uniform":
            out.append(RangeParameterConfig(name=d.name, parameter_type="int", bounds=(d.min, d.max)))
        elif d.distribution == "categorical":
            kind = "int" if all(isinstance(v, int) for v in d.values) else "str"
            out.append(ChoiceParameterConfig(name=d.name, parameter_type=kind, values=list(d.values),
                                             is_ordered=False))
        else:
            raise ValueError(d.distribution)
    return out


class _Ax:
    """Ax's default generation strategy through its Client (Sobol, then BoTorch's MBM with
    qLogNEI), without the centre-point first trial. Running trials are Ax's pending points."""

    def __init__(self, space: SearchSpace, seed: int):
        import logging

        from ax.api.client import Client

        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] in ("ax", "botorch"):
                logging.getLogger(name).setLevel(logging.ERROR)
        self.client = Client(random_seed=seed)
        self.client.configure_experiment(parameters=_ax_parameters(space))
        self.client.configure_optimization(objective="-f")
        self.client.configure_generation_strategy(initialize_with_center=False)
        self.space = space

    def ask(self) -> tuple[int, dict[str, Any]]:
        (index, params), = self.client.get_next_trials(max_trials=1).items()
        return index, {d.name: d.from_internal(d.to_internal(params[d.name])) for d in self.space.dimensions}

    def tell(self, index: int, value: float) -> None:
        self.client.complete_trial(trial_index=index, raw_data={"f": value})


def run_trace(problem: str, method: str, seed: int, pending: int,
              evals: int | None = None) -> tuple[list[float], list[dict[str, Any]], tuple[float, float]]:
    """One optimisation run: the objective value and params of every trial in order, and the
    seconds spent suggesting (every ask together): wall clock and this process's CPU time."""
    space, fn, _, n_evals = PROBLEMS[problem]
    n_evals = evals or n_evals
    values: list[float] = []
    points: list[dict[str, Any]] = []
    asking = asking_cpu = 0.0   # wall and CPU seconds (on a shared box the CPU time is the steadier)
    running: deque = deque()
    if method.startswith("optuna") or method == "ax":
        if method == "ax":
            ax = _Ax(space, seed)
            ask_one, tell = ax.ask, ax.tell
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            sampler = (optuna.samplers.TPESampler(seed=seed) if method == "optuna_tpe"
                       else optuna.samplers.GPSampler(seed=seed))
            study = optuna.create_study(sampler=sampler)
            dists = _optuna_distributions(space)

            def ask_one():
                t = study.ask(dists)
                return t, {d.name: d.from_internal(d.to_internal(t.params[d.name])) for d in space.dimensions}

            tell = study.tell
        while len(values) < n_evals:
            while len(running) < max(pending, 1) and len(values) + len(running) < n_evals:
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    running.append(ask_one())
                except Exception as exc:   # Ax holds trials back until its model has enough results
                    if type(exc).__name__ != "DataRequiredError" or not running:
                        raise
                    break
                finally:
                    asking += time.perf_counter() - t0
                    asking_cpu += time.process_time() - c0
            t, params = running.popleft()
            v = fn(params)
            tell(t, v)
            values.append(v)
            points.append(params)
        return values, points, (asking, asking_cpu)

    opt = _ours(method)
    completed: list[Observation] = []
    asked = 0
    while len(values) < n_evals:
        while len(running) < max(pending, 1) and len(values) + len(running) < n_evals:
            t0, c0 = time.perf_counter(), time.process_time()
            ask_seed = int(np.random.SeedSequence([seed, asked]).generate_state(1)[0])
            s = opt.suggest(space, completed, [p for p in running], 1, ask_seed)[0]
            asking += time.perf_counter() - t0
            asking_cpu += time.process_time() - c0
            running.append(s.params)
            asked += 1
        params = running.popleft()
        v = fn(params)
        completed.append(Observation(params=params, value=v))
        values.append(v)
        points.append(params)
    return values, points, (asking, asking_cpu)


def run_once(problem: str, method: str, seed: int, pending: int, evals: int | None = None) -> list[float]:
    """One optimisation run; returns the objective value of every trial in order."""
    return run_trace(problem, method, seed, pending, evals)[0]


def _job(args):
    problem, method, seed, pending, evals = args
    import torch   # one thread per process: the pool runs --jobs processes side by side

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    vals, points, (asking, asking_cpu) = run_trace(problem, method, seed, pending, evals)
    space = PROBLEMS[problem][0]
    bounds = [on_bound(space, p) for p in points]
    edge = (sum(b for b, _ in bounds), sum(c for _, c in bounds), len(points))
    return args, vals, time.perf_counter() - t0, (asking, asking_cpu), edge


# -- concurrent-suggestion spread ----------------------------------------------------------------

def spread(methods: list[str], seeds: int) -> list[tuple[str, float, float]]:
    """Median nearest-neighbour distance among 8 suggestions: one call with count=8 (all pending
    on each other) vs 8 sequential suggestions (each told its result before the next)."""
    space, fn, _, _ = PROBLEMS["hartmann6"]
    rows = []
    for m in methods:
        if m.startswith("optuna"):
            continue
        opt = _ours(m)
        conc, seq = [], []
        for s in range(seeds):
            rng = np.random.default_rng(s)
            base = [Observation(p, fn(p)) for p in (space.sample(rng) for _ in range(20))]
            batch = [x.params for x in opt.suggest(space, base, [], 8, 1000 + s)]
            hist = list(base)
            sq = []
            for i in range(8):
                p = opt.suggest(space, hist, [], 1, 2000 + 10 * s + i)[0].params
                sq.append(p)
                hist.append(Observation(p, fn(p)))
            for pts, acc in ((batch, conc), (sq, seq)):
                U = np.vstack([space.to_unit(p) for p in pts])
                D = np.linalg.norm(U[:, None] - U[None], axis=2) + np.eye(len(U)) * 1e9
                acc.append(float(np.median(D.min(axis=1))))
        rows.append((m, float(np.median(conc)), float(np.median(seq))))
    return rows


def report(raw: list[dict]) -> int:
    """The tables from saved runs (--json): median [IQR] of the regret at the last evaluation over
    the seeds that finished, time per suggestion, share of points on a bound (and corners)."""
    groups: dict[tuple, list[dict]] = {}
    for r in raw:
        groups.setdefault((r["problem"], r["method"], r["pending"]), []).append(r)
    for p in dict.fromkeys(r["problem"] for r in raw):
        opt_value = PROBLEMS[p][2]
        print(f"\n## {p} ({len(raw and groups[next(k for k in groups if k[0] == p)][0]['values'])} evaluations"
              f"{'' if opt_value is not None else ', best value: the optimum is unknown'})")
        print("| method | pending | seeds | regret: median [IQR] | ms/suggestion | CPU ms/suggestion "
              "| on a bound (corners) |")
        print("|---|---|---|---|---|---|---|")
        for (pp, m, k), runs in sorted(groups.items()):
            if pp != p:
                continue
            r = np.array([min(x["values"]) - (opt_value or 0.0) for x in runs])
            q1, med, q3 = np.percentile(r, [25, 50, 75])
            n = sum(len(x["values"]) for x in runs)
            ask = 1000 * sum(x["ask_seconds"] for x in runs) / n
            cpu = 1000 * sum(x.get("ask_cpu_seconds", math.nan) for x in runs) / n
            b, c = sum(x["on_bound"] for x in runs), sum(x["corners"] for x in runs)
            print(f"| {m} | {k} | {len(runs)} | {med:.3g} [{q1:.3g}, {q3:.3g}] | {ask:.0f} | {cpu:.0f} | "
                  f"{100 * b / n:.1f}% ({100 * c / n:.1f}%) |")
    if any(r["method"] == "ax" for r in raw) and any(r["method"] == "botorch" for r in raw):
        against_ax(groups)
    return 0


def median_ratio_interval(a: np.ndarray, b: np.ndarray, rounds: int = 10_000,
                          level: float = 0.90) -> tuple[float, float]:
    """A paired bootstrap interval for median(a) / median(b): seeds are resampled with replacement,
    each keeping both of its runs, so the interval shows how far the ratio of two medians of 20
    bimodal runs moves with the draw of seeds alone."""
    if len(a) == 0 or len(a) != len(b):
        return math.nan, math.nan
    rng = np.random.default_rng(np.random.SeedSequence(20))
    idx = rng.integers(0, len(a), size=(rounds, len(a)))
    ratios = np.median(a[idx], axis=1) / np.maximum(np.median(b[idx], axis=1), 1e-300)
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def against_ax(groups: dict[tuple, list[dict]]) -> None:
    """botorch against Ax on the seeds that every (method, pending) pair of a problem finished:
    the ratios of median regret (and botorch at 8 pending against botorch sequential), and of CPU
    time per suggestion (process time around every ask: steadier than wall time on a shared box)."""
    print("\n## botorch against Ax, same seeds (n = seeds every column finished)")
    print("| problem | n | Ax | botorch | botorch / Ax | 90% interval | below Ax | botorch, 8 pending "
          "| 8 pending / sequential | CPU ms: Ax | botorch | botorch / Ax | on a bound (corners): Ax | botorch "
          "| botorch 8 pending |")
    print("|---" * 15 + "|")
    for p in dict.fromkeys(k[0] for k in groups):
        cols = [("ax", 0), ("botorch", 0), ("botorch", 8)]
        have = [{x["seed"]: x for x in groups.get((p, m, k), [])} for m, k in cols]
        if not have[0] or not have[1]:
            continue
        common = sorted(set.intersection(*(set(h) for h in have if h)))
        opt_value = PROBLEMS[p][2] or 0.0
        med, cpu, edge, regrets = [], [], [], []
        for h in have:
            runs = [h[s] for s in common] if h else []
            regrets.append(np.array([min(x["values"]) - opt_value for x in runs]))
            n = sum(len(x["values"]) for x in runs)
            med.append(float(np.median(regrets[-1])) if runs else math.nan)
            cpu.append(1000 * sum(x.get("ask_cpu_seconds", math.nan) for x in runs) / n if runs else math.nan)
            edge.append(f"{100 * sum(x['on_bound'] for x in runs) / n:.0f}% "
                        f"({100 * sum(x['corners'] for x in runs) / n:.0f}%)" if runs else "-")

        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}" if b > 0 and math.isfinite(a) else "-"

        lo, hi = median_ratio_interval(regrets[1], regrets[0])
        below = int(np.sum(regrets[1] < regrets[0]))
        print(f"| {p} | {len(common)} | {med[0]:.3g} | {med[1]:.3g} | {ratio(med[1], med[0])} | "
              f"{lo:.2f}-{hi:.2f} | {below} of {len(common)} | "
              f"{med[2]:.3g} | ".replace("nan", "-") +
              f"{ratio(med[2], med[1])} | {cpu[0]:.0f} | {cpu[1]:.0f} | {ratio(cpu[1], cpu[0])} | "
              f"{edge[0]} | {edge[1]} | {edge[2]} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default="branin,hartmann6,rosenbrock5,shekel4,michalewicz5,mlp_digits")
    ap.add_argument("--methods", default="random,tpe,tpe_hyperopt,gp,botorch,bayes_opt,optuna_tpe,optuna_gp,ax")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1 (split a "
                    "run over processes started at different times)")
    ap.add_argument("--evals", type=int, default=None, help="override every problem's evaluation count")
    ap.add_argument("--modes", default="0,8", help="pending counts: 0 = sequential")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="3 seeds, synthetic problems, 40 evaluations")
    ap.add_argument("--no-spread", action="store_true")
    ap.add_argument("--json", default=None, help="write every run's values here as they finish")
    ap.add_argument("--report", default=None, help="print the tables from --json files (comma-separated) instead")
    args = ap.parse_args(argv)
    if args.report:
        return report([r for f in args.report.split(",") for r in json.load(open(f))])
    if args.quick:
        args.seeds, args.evals = 3, 40
        args.problems = ",".join(p for p in args.problems.split(",") if p != "mlp_digits")
    problems = args.problems.split(",")
    methods = args.methods.split(",")
    modes = [int(m) for m in args.modes.split(",")]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(p, m, s, k, args.evals) for p in problems for k in modes for m in methods for s in seeds
            if not (k and m in SEQUENTIAL_ONLY)]
    # Longest first: the GP and MLP runs would otherwise straggle at the end.
    # Seed by seed across problems, methods and modes, so that a run stopped early (--json keeps
    # what finished; --report prints it) has whole seeds: every problem, method and mode on each.
    jobs.sort(key=lambda j: (j[0] != "mlp_digits", j[2], j[1] not in ("ax", "botorch"), not j[1].endswith("gp"), j[3]))

    t0 = time.perf_counter()
    results: dict[tuple, list[float]] = {}
    secs: dict[tuple, float] = {}
    asking: dict[tuple, list[float]] = {}     # (problem, method, pending) -> [seconds asking, asks]
    edges: dict[tuple, list[int]] = {}        # (problem, method, pending) -> [on a bound, corners, points]
    raw = []
    with mp.get_context("fork").Pool(args.jobs) as pool:
        for (p, m, s, k, _), vals, dt, (ask_s, ask_cpu), edge in pool.imap_unordered(_job, jobs):
            results[(p, m, s, k)] = vals
            secs[(p, m, k)] = secs.get((p, m, k), 0.0) + dt
            a = asking.setdefault((p, m, k), [0.0, 0])
            a[0] += ask_s
            a[1] += len(vals)
            e = edges.setdefault((p, m, k), [0, 0, 0])
            for i in range(3):
                e[i] += edge[i]
            raw.append({"problem": p, "method": m, "seed": s, "pending": k, "values": vals,
                        "ask_seconds": ask_s, "ask_cpu_seconds": ask_cpu, "on_bound": edge[0], "corners": edge[1]})
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(raw, f)

    print(f"# simple regret at the final evaluation: median [IQR] over {args.seeds} seeds "
          f"({time.perf_counter() - t0:.0f} s wall, {args.jobs} processes)")
    for p in problems:
        space, fn, opt_value, n_evals = PROBLEMS[p]
        n = args.evals or n_evals
        # Unknown optimum: the best value itself (not regret against the best any run reached,
        # which would change with the methods run and not compare between runs).
        print(f"\n## {p} ({n} evaluations{'' if opt_value is not None else ', best value: the optimum is unknown'})")
        opt_value = opt_value or 0.0
        header = "| method | " + " | ".join(f"{'sequential' if k == 0 else f'{k} pending'}" for k in modes)
        if 0 in modes and len(modes) > 1:
            header += " | pending/sequential"
        print(header + " | ms/suggestion | on a bound (corners) | s/run |")
        print("|---" * (len(modes) + 4 + (1 if 0 in modes and len(modes) > 1 else 0)) + "|")
        for m in methods:
            cells, meds = [], {}
            for k in modes:
                if (p, m, args.first_seed, k) not in results:
                    cells.append("-")
                    meds[k] = math.nan
                    continue
                r = np.array([min(results[(p, m, s, k)]) - opt_value for s in seeds])
                q1, med, q3 = np.percentile(r, [25, 50, 75])
                meds[k] = med
                cells.append(f"{med:.3g} [{q1:.3g}, {q3:.3g}]")
            ratio = ""
            if 0 in modes and len(modes) > 1:
                k = [k for k in modes if k][0]
                ratio = f" | {meds[k] / meds[0]:.2f}" if meds[0] > 0 and math.isfinite(meds[k]) else " | -"
            ran = [k for k in modes if (p, m, k) in secs]
            per_run = sum(secs[(p, m, k)] for k in ran) / (args.seeds * len(ran))
            ask_s = sum(asking[(p, m, k)][0] for k in ran) / max(1, sum(asking[(p, m, k)][1] for k in ran))
            e = [sum(edges[(p, m, k)][i] for k in ran) for i in range(3)]
            edge = f"{100 * e[0] / max(e[2], 1):.1f}% ({100 * e[1] / max(e[2], 1):.1f}%)"
            print(f"| {m} | " + " | ".join(cells) + ratio + f" | {1000 * ask_s:.0f} | {edge} | {per_run:.1f} |")

    if not args.no_spread:
        print("\n## nearest-neighbour distance among 8 suggestions (Hartmann-6, 20 observations, unit cube)")
        print("| method | one call, count=8 (pending) | 8 sequential |")
        print("|---|---|---|")
        ours = [m for m in methods if not m.startswith("optuna") and m not in SEQUENTIAL_ONLY and m != "ax"]
        for m, c, s in spread(ours, min(args.seeds, 5)):
            print(f"| {m} | {c:.3f} | {s:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
