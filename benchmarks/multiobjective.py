"""Several objectives and constraints: tuneserve's engines against Optuna's, same budget and seeds.

Parts (each prints a table; --out writes every figure as JSON):

  zdt           ZDT1 and ZDT2 in 5 dimensions, 100 evaluations: the hypervolume of the evaluated
                points (reference point (1.1, 11): 1.1 x the worst value each objective can take,
                f1 <= 1 and f2 <= g <= 10, so every evaluation counts) for tuneserve's
                tpe (MOTPE split) and gp (ParEGO), Optuna's TPESampler (MOTPE) and NSGAIISampler.
  cnn           a two-objective CNN study on digits (the built-in trainer, CPU, one thread, 2 epochs
                on half of digits): val_loss against the model's parameter count (width 4/8/16,
                depth 1/2, lr, dropout), 12 evaluations; hypervolume with both
                objectives scaled (val_loss / ln 10, params / the largest model's), reference (1, 1).
  constrained   minimise sum_i (x_i - 1)^2 over [0, 1]^3 subject to sum_i x_i <= 1.5: the feasible
                optimum is x = (0.5, 0.5, 0.5), f* = 0.75. Evaluations until a feasible trial with
                f <= f* + 0.02 (budget 150; a run that never gets there counts as 151), for tuneserve's
                tpe and gp and Optuna's constrained TPE (TPESampler with Trial.set_constraint, Optuna 5's way).

The tuneserve side runs the engines exactly as the server does (service/optimizers, the same
Observations with `values` and `constraints` that core/objectives.py builds, seeded per trial by
core/suggest.trial_seed), sequentially, one suggestion per evaluation, in-process (no HTTP: the
engines are what is measured). Optuna runs with its defaults apart from the seed.

    nice -n 15 python benchmarks/multiobjective.py                 # everything (~10 min on 2 busy cores)
    python benchmarks/multiobjective.py --quick                    # 2 seeds, small budgets (the smoke test)
    python benchmarks/multiobjective.py --parts zdt --seeds 10 --methods tpe,optuna_motpe
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tuneserve_service.optimizers import pareto  # noqa: E402
from tuneserve_service.optimizers.base import Observation  # noqa: E402
from tuneserve_service.space import parse_parameters  # noqa: E402

# -- problems ----------------------------------------------------------------------------------

ZDT_DIM = 5
ZDT_REF = np.array([1.1, 11.0])


def zdt(which: int) -> Callable[[dict[str, Any]], tuple[float, float]]:
    def f(p: dict[str, Any]) -> tuple[float, float]:
        x = np.array([p[f"x{i}"] for i in range(ZDT_DIM)])
        g = 1 + 9 * x[1:].mean()
        f1 = float(x[0])
        f2 = g * (1 - math.sqrt(f1 / g)) if which == 1 else g * (1 - (f1 / g) ** 2)
        return f1, float(f2)
    return f


def zdt_space() -> dict[str, Any]:
    return {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(ZDT_DIM)}


CON_DIM = 3
CON_BOUND = 1.5
CON_OPT = 0.75
CON_TOL = 0.02


def constrained(p: dict[str, Any]) -> tuple[float, float]:
    """(objective, constraint value: <= 0 holds)."""
    x = np.array([p[f"x{i}"] for i in range(CON_DIM)])
    return float(np.sum((x - 1) ** 2)), float(x.sum() - CON_BOUND)


CNN_SPACE = {
    "width": {"values": [4, 8, 16]},
    "depth": {"values": [1, 2]},
    "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 0.3},
    "dropout": {"min": 0.0, "max": 0.5},
}
CNN_FIXED = {"dataset": "digits", "epochs": 2, "data_fraction": 0.5, "batch_size": 32, "seed": 0}


def cnn_param_count(p: dict[str, Any]) -> int:
    from tuneserve_workers.training.config import TrainConfig
    from tuneserve_workers.training.nets import build_cnn

    model = build_cnn(TrainConfig.from_params({**CNN_FIXED, **p}), 1, 10, 8)
    return int(sum(t.numel() for t in model.parameters()))


def cnn(p: dict[str, Any]) -> tuple[float, float]:
    import torch

    from tuneserve_workers.training.contract import LocalContext
    from tuneserve_workers.training.run import train_cnn

    torch.set_num_threads(1)
    result = train_cnn({**CNN_FIXED, **p}, LocalContext("cpu"))
    loss = result["val_loss"]
    return (float(loss) if math.isfinite(loss) else math.log(10) * 2), float(cnn_param_count(p))


# -- the engines -------------------------------------------------------------------------------

def run_tuneserve(method: str, space_doc: dict, fn: Callable, goals: tuple[str, ...], budget: int, seed: int,
                  constraint: bool = False, stop: Callable[[list], bool] | None = None) -> list[tuple]:
    """(params, values, constraint value or None) per evaluation, in order."""
    from tuneserve_service.domain.core.suggest import trial_seed
    from tuneserve_service.optimizers.registry import get_optimizer

    space = parse_parameters(space_doc)
    engine = get_optimizer(method)
    completed: list[Observation] = []
    out: list[tuple] = []
    for number in range(budget):
        (sg,) = engine.suggest(space, completed, [], 1, trial_seed(seed, number, method), goals[0], goals=goals)
        res = fn(sg.params)
        if constraint:
            value, c = res
            values, cons = (value,), (c,)
        else:
            values, cons = tuple(res), None
        completed.append(Observation(params=sg.params, value=values[0], state="completed", values=values,
                                     constraints=cons))
        out.append((sg.params, values, None if cons is None else cons[0]))
        if stop is not None and stop(out):
            break
    return out


def _optuna_params(trial, space_doc: dict) -> dict[str, Any]:
    p = {}
    for name, spec in space_doc.items():
        if "values" in spec:
            p[name] = trial.suggest_categorical(name, spec["values"])
        else:
            log = spec.get("distribution") == "log_uniform_values"
            p[name] = trial.suggest_float(name, spec["min"], spec["max"], log=log)
    return p


def run_optuna(sampler_name: str, space_doc: dict, fn: Callable, goals: tuple[str, ...], budget: int, seed: int,
               constraint: bool = False, stop: Callable[[list], bool] | None = None) -> list[tuple]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if constraint:   # Optuna 5 reads Trial.set_constraint (constraints_func is deprecated there)
        study = optuna.create_study(direction=goals[0], sampler=optuna.samplers.TPESampler(seed=seed))
    else:
        sampler = (optuna.samplers.NSGAIISampler(seed=seed) if sampler_name == "optuna_nsga2"
                   else optuna.samplers.TPESampler(seed=seed))
        study = optuna.create_study(directions=list(goals), sampler=sampler)
    out: list[tuple] = []
    for _ in range(budget):
        trial = study.ask()
        p = _optuna_params(trial, space_doc)
        res = fn(p)
        if constraint:
            value, c = res
            trial.set_constraint("c", c)
            study.tell(trial, value)
            out.append((p, (value,), c))
        else:
            study.tell(trial, list(res))
            out.append((p, tuple(res), None))
        if stop is not None and stop(out):
            break
    return out


def run(method: str, *args: Any, **kw: Any) -> list[tuple]:
    if method.startswith("optuna"):
        return run_optuna(method, *args, **kw)
    return run_tuneserve(method, *args, **kw)


# -- figures -----------------------------------------------------------------------------------

def hv_of(rows: list[tuple], goals: tuple[str, ...], scale: np.ndarray, ref: np.ndarray) -> float:
    Y = pareto.to_min(np.array([r[1] for r in rows], dtype=float), goals) / scale
    return pareto.hypervolume(Y, ref)


def evals_to_optimum(rows: list[tuple], budget: int) -> int:
    for i, (_, values, c) in enumerate(rows, start=1):
        if c is not None and c <= 0 and values[0] <= CON_OPT + CON_TOL:
            return i
    return budget + 1


def _job(job: tuple) -> dict[str, Any]:
    part, problem, method, seed, budget = job
    t0 = time.perf_counter()
    if part == "zdt":
        fn = zdt(1 if problem == "ZDT1" else 2)
        rows = run(method, zdt_space(), fn, ("minimize", "minimize"), budget, seed)
        figure = hv_of(rows, ("minimize", "minimize"), np.ones(2), ZDT_REF)
    elif part == "cnn":
        rows = run(method, CNN_SPACE, cnn, ("minimize", "minimize"), budget, seed)
        largest = cnn_param_count({"width": 16, "depth": 2, "lr": 0.01, "dropout": 0.0})
        figure = hv_of(rows, ("minimize", "minimize"), np.array([math.log(10), largest]), np.ones(2))
    else:
        space = {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(CON_DIM)}
        rows = run(method, space, constrained, ("minimize",), budget, seed, constraint=True,
                   stop=lambda out: evals_to_optimum(out, budget) <= len(out))
        figure = evals_to_optimum(rows, budget)
    return {"part": part, "problem": problem, "method": method, "seed": seed, "figure": figure,
            "seconds": time.perf_counter() - t0}


PARTS = {
    # part: (problems, methods, budget, quick budget)
    "zdt": (["ZDT1", "ZDT2"], ["tpe", "gp", "optuna_motpe", "optuna_nsga2"], 100, 30),
    "cnn": (["digits CNN"], ["tpe", "gp", "optuna_motpe", "optuna_nsga2"], 12, 6),
    "constrained": (["sphere-in-simplex"], ["tpe", "gp", "optuna_tpe"], 150, 40),
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="zdt,cnn,constrained")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (the CNN part uses at most 3)")
    ap.add_argument("--methods", default="", help="only these methods (comma-separated)")
    ap.add_argument("--quick", action="store_true", help="2 seeds and small budgets (a smoke test)")
    ap.add_argument("--budget", type=int, default=0, help="evaluations per run instead of the part's default")
    ap.add_argument("--max-cnn-seeds", type=int, default=3, help="the CNN part's seeds at most")
    ap.add_argument("--jobs", type=int, default=2, help="processes")
    ap.add_argument("--out", default="", help="write every run's figure here (JSON)")
    args = ap.parse_args(argv)
    only = set(filter(None, args.methods.split(",")))
    jobs = []
    for part in args.parts.split(","):
        problems, methods, budget, quick = PARTS[part]
        seeds = 2 if args.quick else (min(args.seeds, args.max_cnn_seeds) if part == "cnn" else args.seeds)
        budget = args.budget or budget
        for problem in problems:
            for method in methods:
                if only and method not in only:
                    continue
                jobs.extend((part, problem, method, s, quick if args.quick else budget) for s in range(seeds))
    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(_job, jobs, chunksize=1)
    else:
        results = []
        for j in jobs:   # printed as they finish: a run cut short still leaves its figures
            results.append(_job(j))
            print(json.dumps(results[-1]), flush=True)
    summary = tables(results)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"runs": results, "summary": summary}, f, indent=1)
    return summary


def tables(results: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    keys = sorted({(r["part"], r["problem"]) for r in results})
    for part, problem in keys:
        rows = [r for r in results if r["part"] == part and r["problem"] == problem]
        what = "evaluations to the feasible optimum (lower is better)" if part == "constrained" \
            else "hypervolume (higher is better)"
        print(f"\n{problem}: {what}, {len({r['seed'] for r in rows})} seeds")
        print(f"| method | median | min | max | s/run |")
        print(f"|---|---|---|---|---|")
        for method in dict.fromkeys(r["method"] for r in rows):
            figs = [r["figure"] for r in rows if r["method"] == method]
            secs = np.mean([r["seconds"] for r in rows if r["method"] == method])
            med = float(np.median(figs))
            summary.setdefault(problem, {})[method] = {"median": med, "min": float(min(figs)),
                                                       "max": float(max(figs)), "runs": figs}
            fmt = (lambda v: f"{v:g}") if part == "constrained" else (lambda v: f"{v:.4f}")
            print(f"| {method} | {fmt(med)} | {fmt(min(figs))} | {fmt(max(figs))} | {secs:.1f} |")
    return summary


if __name__ == "__main__":
    main()
