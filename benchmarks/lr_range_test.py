"""Does the learning-rate range test point at a good learning rate? On digits and on shapes, the
lr the range test suggests (service/craft/lr_range.py's rule on the curve of
workers/training/lr_range.py) against the best lr of a 40-trial tpe search over lr alone.

Everything else is fixed at the trainer's defaults (SGD, momentum 0.9, batch 128, weight decay
5e-4, plateau schedule) with width 16 so it fits a CPU, and every run of one benchmark seed uses
the same trainer seed, so the lr is the only thing that differs between the tpe search's trials.
The tpe search runs in-process: the optimizer engine (`get_optimizer("tpe").suggest`, as the server
calls it, with a per-call seed from SeedSequence([seed, trial])) and the trainer through
LocalContext; a server and worker would add only transport.

Target: the suggested lr lies within 3x of the tpe search's best lr, on both tasks.
The other rules of tuneserve_service.craft.lr_range.RULES are printed beside it for comparison.

    python benchmarks/lr_range_test.py                 # digits and shapes, 3 seeds (~10 min on 2 cores)
    python benchmarks/lr_range_test.py --seeds 1 --tasks digits
    python benchmarks/lr_range_test.py --quick         # smoke: tiny sizes, seconds
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tuneserve_service.craft.lr_range import RULES, suggest_lr  # noqa: E402
from tuneserve_service.optimizers.base import Observation  # noqa: E402
from tuneserve_service.optimizers.registry import get_optimizer  # noqa: E402
from tuneserve_service.space import parse_parameters  # noqa: E402

ROOT_SEED = 20261127  # the benchmark's own entropy; every stream is derived from it
LR_SPACE = {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 3.0}}
TARGET_RATIO = 3.0


def bench_seeds(count: int) -> list[int]:
    """Independent trainer seeds, one per benchmark repetition, from one SeedSequence."""
    return [int(s.generate_state(1)[0] % 2**31) for s in np.random.SeedSequence(ROOT_SEED).spawn(count)]


def tpe_over_lr(base: dict[str, Any], seed: int, trials: int) -> list[tuple[float, float | None]]:
    """(lr, final val_loss or None when diverged) for each trial of a tpe search over lr alone."""
    from tuneserve_workers.training.objective import Diverged, LocalContext
    from tuneserve_workers.training.run import train_cnn

    space = parse_parameters(LR_SPACE)
    tpe = get_optimizer("tpe")
    completed: list[Observation] = []
    out = []
    for i in range(trials):
        call_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0] % 2**31)
        params = tpe.suggest(space, completed, [], 1, call_seed, "minimize")[0].params
        try:
            value: float | None = train_cnn({**base, "lr": params["lr"]}, LocalContext())["val_loss"]
            completed.append(Observation(params, value))
        except Diverged:
            value = None
            completed.append(Observation(params, None, "diverged"))
        out.append((params["lr"], value))
    return out


def run_one(task: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from tuneserve_workers.training.lr_range import lr_range_test
    from tuneserve_workers.training.objective import LocalContext

    base = {"dataset": task, "width": args.width, "seed": seed, "epochs": args.epochs}
    t0 = time.perf_counter()
    curve = lr_range_test(base, LocalContext(), steps=args.steps)
    t_range = time.perf_counter() - t0
    suggestions = {rule: suggest_lr(curve["lr"], curve["loss"], rule) for rule in RULES}
    t0 = time.perf_counter()
    search = tpe_over_lr(base, seed, args.trials)
    t_search = time.perf_counter() - t0
    finished = [(lr, v) for lr, v in search if v is not None]
    best_lr, best_loss = min(finished, key=lambda p: p[1])
    good = [lr for lr, v in finished if v <= 1.1 * best_loss]
    return {"task": task, "seed": seed, "steps": len(curve["lr"]), "stopped": curve["stopped"],
            "suggestions": suggestions, "best_lr": best_lr, "best_loss": best_loss,
            "good_range": (min(good), max(good)), "diverged": len(search) - len(finished),
            "t_range": t_range, "t_search": t_search}


def ratio(a: float, b: float) -> float:
    return max(a / b, b / a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="digits,shapes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="smoke run: digits, 1 seed, 3 trials of 1 epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.seeds, args.trials, args.epochs, args.width, args.steps = "digits", 1, 3, 1, 8, 60
    import torch

    torch.set_num_threads(1)  # steadier on a shared 2-core box; runs are small
    t_all = time.perf_counter()
    rows = [run_one(task, seed, args) for task in args.tasks.split(",") for seed in bench_seeds(args.seeds)]

    print(f"\nlr range test ({args.steps} batches, 1e-7..10) vs {args.trials}-trial tpe over lr in "
          f"[1e-4, 3] ({args.epochs} epochs, width {args.width}); target: within {TARGET_RATIO:g}x")
    print(f"{'task':8} {'seed':>10} {'suggested':>10} {'range':>19} {'tpe best lr':>11} {'val_loss':>8} "
          f"{'ratio':>6} {'within 10% of best':>19}  other rules (ratio)  time")
    passed = True
    for r in rows:
        s = r["suggestions"]["steepest"]
        x = ratio(s.lr, r["best_lr"])
        passed &= x <= TARGET_RATIO
        others = "  ".join(f"{rule} {sg.lr:.3g} ({ratio(sg.lr, r['best_lr']):.1f}x)"
                           for rule, sg in r["suggestions"].items() if rule != "steepest")
        print(f"{r['task']:8} {r['seed']:>10} {s.lr:>10.3g} [{s.low:>7.3g}, {s.high:>7.3g}] {r['best_lr']:>11.3g} "
              f"{r['best_loss']:>8.4f} {x:>5.2f}x [{r['good_range'][0]:>7.3g}, {r['good_range'][1]:>7.3g}]  "
              f"{others}  {r['t_range']:.0f}+{r['t_search']:.0f}s")
    summary = {}
    for task in args.tasks.split(","):
        xs = [ratio(r["suggestions"]["steepest"].lr, r["best_lr"]) for r in rows if r["task"] == task]
        summary[task] = xs
        print(f"{task}: ratio median {np.median(xs):.2f}x, worst {max(xs):.2f}x over {len(xs)} seed(s)")
    print(f"target {'MET' if passed else 'NOT met'} on every seed; wall time {time.perf_counter() - t_all:.0f} s")
    if any(math.isnan(v) for xs in summary.values() for v in xs):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
