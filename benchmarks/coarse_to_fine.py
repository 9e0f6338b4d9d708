"""Coarse to fine against one flat search, on the shapes task (CPU), with the same compute budget.

Both arms tune a small CNN (width 8, depth 2) over the same five hyperparameters:
lr (log 1e-4..3), weight_decay (log 1e-6..0.1), dropout (0..0.7), batch_size {32, 64, 128, 256},
optimizer {sgd, adam}. Full fidelity is `--epochs` (10) epochs on all the training data.

  flat             one tpe search, every trial at full fidelity: budget // epochs trials.
  coarse-to-fine   stage 1: many short tpe trials (3 epochs on 25% of the data, a stratified subset
                   fixed for the run); stage 2: tuneserve_service.craft.refine.refine around stage 1's top 5
                   (log space for log parameters, categoricals restricted), tpe at full fidelity with
                   whatever budget is left, warm-started: stage 1's top 5 configurations are its first
                   trials (re-run at full fidelity) and stage 1's trials inside the new space join the
                   history with their values mapped by rank onto stage 2's scale
                   (tuneserve_service.craft.refine.warm_start; a 3-epoch loss is not a 10-epoch loss).

Budget: both arms get the same number of full-data epochs (an epoch on 25% of the data counts a
quarter), printed per run. Each run's best configuration (the best trial at full fidelity) is then
retrained at full fidelity with `--retrain-seeds` fresh trainer seeds and scored by the mean final
validation loss: the figure compared. Target: coarse-to-fine better on the median over the seeds.

The searches run in-process (the optimizer engine as the server calls it, the trainer through
LocalContext, data generated once); seeds come from one SeedSequence, so every run is independent.

    python benchmarks/coarse_to_fine.py                     # 7 seeds, ~10 min on 2 cores
    python benchmarks/coarse_to_fine.py --seeds 5 --jobs 1
    python benchmarks/coarse_to_fine.py --quick             # smoke: tiny sizes, seconds
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tuneserve_service.craft.fidelity import Fidelity  # noqa: E402
from tuneserve_service.craft.refine import refine, warm_start  # noqa: E402
from tuneserve_service.craft.trials import TrialResult  # noqa: E402
from tuneserve_service.optimizers.base import Observation  # noqa: E402
from tuneserve_service.optimizers.registry import get_optimizer  # noqa: E402
from tuneserve_service.space import parse_parameters  # noqa: E402

ROOT_SEED = 20261128
SPACE = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 3.0},
    "weight_decay": {"distribution": "log_uniform_values", "min": 1e-6, "max": 0.1},
    "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.7},
    "batch_size": {"values": [32, 64, 128, 256]},
    "optimizer": {"values": ["sgd", "adam"]},
}
FIXED = {"width": 8, "depth": 2}
SHAPES = {"n": 2000, "size": 16, "classes": 6}


def run_seeds(count: int) -> list[int]:
    return [int(s.generate_state(1)[0] % 2**31) for s in np.random.SeedSequence(ROOT_SEED).spawn(count)]


def derive(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0] % 2**31)


_RAW = None


def dataset(fraction: float, data_seed: int):
    from tuneserve_workers.training.data import shapes, subsample

    global _RAW
    if _RAW is None:
        _RAW = shapes(**SHAPES)
    return subsample(_RAW, fraction, 0, data_seed)


def train(params: dict[str, Any], epochs: int, data, seed: int) -> float | None:
    """Final validation loss, or None when the run diverged."""
    from tuneserve_workers.training.objective import Diverged, LocalContext
    from tuneserve_workers.training.run import train_cnn

    try:
        return train_cnn({**FIXED, **params, "epochs": epochs, "seed": seed}, LocalContext(), data=data)["val_loss"]
    except Diverged:
        return None


def observe(params: dict[str, Any], value: float | None) -> Observation:
    return Observation(params, value) if value is not None else Observation(params, None, "diverged")


def search(space, n: int, epochs: int, data, trainer_seed: int, call_key: tuple[int, ...],
           first: list[dict[str, Any]] = (), parents: list[TrialResult] = (),
           exclude: tuple[int, ...] = ()) -> list[tuple[dict, float | None]]:
    """A sequential tpe search of n trials; `first` are run before any suggestion; `parents` are
    trials of another fidelity, fed through refine.warm_start (inside the space, values by rank)."""
    tpe = get_optimizer("tpe")
    done: list[tuple[dict[str, Any], float | None]] = []
    for i in range(n):
        if i < len(first):
            params = first[i]
        else:
            finite = [v for _, v in done if v is not None]
            prior = warm_start(parents, space, finite, exclude)
            history = [Observation(p, v) for p, v in prior] + [observe(p, v) for p, v in done]
            params = tpe.suggest(space, history, [], 1, derive(*call_key, i), "minimize")[0].params
        done.append((params, train(params, epochs, data, trainer_seed)))
    return done


def best_of(trials: list[tuple[dict, float | None]]) -> tuple[dict, float]:
    finite = [(p, v) for p, v in trials if v is not None]
    return min(finite, key=lambda pv: pv[1])


def retrain(params: dict[str, Any], args, run_seed: int) -> float:
    data = dataset(1.0, 0)
    values = [train(params, args.epochs, data, derive(run_seed, 99, r)) for r in range(args.retrain_seeds)]
    # A configuration that diverges on a fresh seed scores as chance level on 6 classes (ln 6 = 1.79).
    return float(np.mean([v if v is not None else np.log(SHAPES["classes"]) for v in values]))


def run_flat(run_seed: int, args) -> dict[str, Any]:
    t0 = time.perf_counter()
    space = parse_parameters(SPACE)
    n = args.budget // args.epochs
    trials = search(space, n, args.epochs, dataset(1.0, 0), derive(run_seed, 1), (run_seed, 1))
    best, value = best_of(trials)
    return {"arm": "flat", "seed": run_seed, "trials": n, "cost": n * args.epochs, "search_best": value,
            "best": best, "retrain": retrain(best, args, run_seed), "seconds": time.perf_counter() - t0}


def run_c2f(run_seed: int, args) -> dict[str, Any]:
    t0 = time.perf_counter()
    space = parse_parameters(SPACE)
    e1, f1, n1 = args.stage1_epochs, args.stage1_fraction, args.stage1_trials
    cost1 = n1 * e1 * f1
    trainer_seed = derive(run_seed, 2)
    stage1 = search(space, n1, e1, dataset(f1, run_seed % 2**31), trainer_seed, (run_seed, 2))
    parents = [TrialResult(i, p, v, "completed" if v is not None else "diverged", Fidelity(e1, f1))
               for i, (p, v) in enumerate(stage1)]
    plan = refine(SPACE, parents, args.top_k, fidelity=Fidelity(args.epochs, 1.0))
    child = parse_parameters(plan.parameters)
    n2 = int((args.budget - cost1) // args.epochs)
    by_number = {t.number: t for t in parents}
    rerun = [by_number[k].params for k in plan.top]
    stage2 = search(child, n2, args.epochs, dataset(1.0, 0), trainer_seed, (run_seed, 3), rerun, parents, plan.top)
    best, value = best_of(stage2)
    lr = next(c for c in plan.changes if c.path == "lr").after
    return {"arm": "c2f", "seed": run_seed, "trials": f"{n1}+{n2}", "cost": cost1 + n2 * args.epochs,
            "search_best": value, "best": best, "retrain": retrain(best, args, run_seed),
            "lr_range": (lr["min"], lr["max"]), "seconds": time.perf_counter() - t0}


def _job(job: tuple[str, int, argparse.Namespace]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    arm, seed, args = job
    return run_flat(seed, args) if arm == "flat" else run_c2f(seed, args)


def print_results(results: list[dict[str, Any]], last: str, last_cell, wall: float) -> None:
    """One row per arm and seed (`last`: the last column's title, `last_cell(r)` its text), then the
    medians of the retrained val_loss and how many seeds coarse to fine won."""
    print(f"{'seed':>10} {'arm':5} {'trials':>7} {'cost':>6} {'search best':>11} {'retrained':>9}  "
          f"{'best lr':>8} {'optimizer':>9} {'refined lr range':>19} {last}")
    for r in results:
        rng = f"[{r['lr_range'][0]:.3g}, {r['lr_range'][1]:.3g}]" if "lr_range" in r else ""
        print(f"{r['seed']:>10} {r['arm']:5} {r['trials']:>7} {r['cost']:>6.0f} {r['search_best']:>11.4f} "
              f"{r['retrain']:>9.4f}  {r['best']['lr']:>8.3g} {r['best']['optimizer']:>9} {rng:>19}"
              f"{last_cell(r)}")
    flat = {r["seed"]: r["retrain"] for r in results if r["arm"] == "flat"}
    c2f = {r["seed"]: r["retrain"] for r in results if r["arm"] == "c2f"}
    wins = sum(c2f[s] < flat[s] for s in flat)
    m_flat, m_c2f = float(np.median(list(flat.values()))), float(np.median(list(c2f.values())))
    print(f"median retrained val_loss: flat {m_flat:.4f}, coarse-to-fine {m_c2f:.4f} "
          f"({'coarse-to-fine better' if m_c2f < m_flat else 'coarse-to-fine NOT better'}); "
          f"coarse-to-fine better on {wins} of {len(flat)} seeds; wall time {wall:.0f} s")


def arm_arguments(doc: str, seeds: int) -> argparse.ArgumentParser:
    """The options both coarse-to-fine benchmarks take (this one and coarse_to_fine_service.py)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--budget", type=int, default=200, help="full-data epochs per arm and seed")
    parser.add_argument("--epochs", type=int, default=10, help="full fidelity")
    parser.add_argument("--stage1-trials", type=int, default=40)
    parser.add_argument("--stage1-epochs", type=int, default=3)
    parser.add_argument("--stage1-fraction", type=float, default=0.25)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--retrain-seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, tiny budget")
    return parser


def parse_arms(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse; --quick shrinks the run to a smoke test; the budget must cover stage 1 and one trial."""
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.budget, args.epochs, args.stage1_trials, args.stage1_epochs = 1, 6, 2, 4, 1
        args.top_k, args.retrain_seeds = 2, 1
        SHAPES["n"] = 400
    if args.stage1_trials * args.stage1_epochs * args.stage1_fraction + args.epochs > args.budget:
        parser.error("the budget does not cover stage 1 and one full-fidelity trial")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = arm_arguments(__doc__, seeds=7)
    parser.add_argument("--jobs", type=int, default=2)
    args = parse_arms(parser, argv)
    if args.quick:
        args.jobs = 1
    t_all = time.perf_counter()
    jobs = [(arm, seed, args) for seed in run_seeds(args.seeds) for arm in ("flat", "c2f")]
    results = []
    with contextlib.ExitStack() as stack:
        if args.jobs > 1:
            pool = stack.enter_context(mp.get_context("spawn").Pool(args.jobs))
            done = pool.imap_unordered(_job, jobs, chunksize=1)
        else:
            done = map(_job, jobs)
        for r in done:  # progress on stderr: a full run takes minutes on a busy box
            results.append(r)
            print(f"[{len(results)}/{len(jobs)}] {r['arm']} seed {r['seed']}: retrained {r['retrain']:.4f} "
                  f"({r['seconds']:.0f} s)", file=sys.stderr, flush=True)
    order = {(arm, seed): i for i, (arm, seed, _) in enumerate(jobs)}
    results.sort(key=lambda r: order[(r["arm"], r["seed"])])

    print(f"\nshapes {SHAPES}, CNN {FIXED}; budget {args.budget} full-data epochs per arm; full fidelity "
          f"{args.epochs} epochs; stage 1 {args.stage1_trials} x {args.stage1_epochs} epochs at "
          f"{args.stage1_fraction:g} data; refine top {args.top_k}; retrain {args.retrain_seeds} seeds")
    print_results(results, "time", lambda r: f" {r['seconds']:.0f}s", time.perf_counter() - t_all)
    return 0


if __name__ == "__main__":
    sys.exit(main())
