"""CPU time of one botorch suggestion under option variants, one knob at a time, interleaved in one
process (issue 20): every repeat runs every variant once on the same history, in turn, so that a shared
box's load falls on all of them alike. Figures are `time.process_time` per suggestion, median over the
repeats.

Each timed suggestion is preceded by an untimed one on the same history less its last result, as in a
study; the engine's fit caches are cleared before each variant's sequence so no variant feeds another.
With --steps S, a repeat times S suggestions on growing histories (the case's history less its last
S - 1 results, ..., the whole history), after an untimed one on the history less S results, and
reports their mean: a running study's cost per suggestion when the fit is warm-started from a
checkpoint every `warm_fit_every` results (`warm_fit_maxiter`), where one suggestion in S pays the
checkpoint's cold fit. --fresh also times one suggestion on the history less its last result with
the caches cleared (a restarted process: with the warm start on, the checkpoint's cold fit too, since
the cases' histories are multiples of 5 and one less is not).
With --draw-ahead, each variant is also timed on a second suggestion on the same results with one
more trial pending, as the draw-ahead asks (core/draw_ahead.py), once reusing the fit of the same
data and once with the cache cleared (refitting).

    python benchmarks/botorch_knobs.py --cases h6,branin,lat100,lat1000 --repeats 5 \\
        defaults='{}' mc64='{"mc_samples": 64}' warm5='{"warm_fit_maxiter": 5}'

Cases: h6 / branin = Hartmann-6 at 55 / Branin at 50 uniform random points (optimizer_quality.py's
spaces); h6p8 = h6 with 8 of its points pending instead of completed; lat100 / lat1000 =
suggest_latency.py's 8-parameter space and objective at 100 / 1000 completed trials.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tuneserve_service.optimizers import _warm_fits  # noqa: E402
from tuneserve_service.optimizers.base import Observation  # noqa: E402
from tuneserve_service.optimizers.botorch_engine import BoTorchOptimizer  # noqa: E402


def case(name: str):
    """(space, completed, pending) of a named case."""
    if name in ("h6", "h6p8", "branin"):
        from optimizer_quality import PROBLEMS

        space, fn, _, _ = PROBLEMS["branin" if name == "branin" else "hartmann6"]
        rng = np.random.default_rng(0)
        pts = [space.sample(rng) for _ in range(50 if name == "branin" else 55)]
        obs = [Observation(p, fn(p)) for p in pts]
        if name == "h6p8":
            return space, obs[:-8], [o.params for o in obs[-8:]]
        return space, obs, []
    if name.startswith("lat"):
        import suggest_latency as sl

        pts = sl.history(int(name[3:]))
        return sl.SPACE, [Observation(p, sl.objective(p)) for p in pts], []
    raise ValueError(f"unknown case {name!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="h6,branin")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--draw-ahead", action="store_true", help="also time a second suggestion on the same results")
    ap.add_argument("--steps", type=int, default=1, help="time this many suggestions on growing histories (mean)")
    ap.add_argument("--fresh", action="store_true", help="also time a suggestion with the caches cleared")
    ap.add_argument("variants", nargs="+", help="name=JSON options for BoTorchOptimizer")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    variants = [(v.split("=", 1)[0], json.loads(v.split("=", 1)[1])) for v in args.variants]
    for cname in args.cases.split(","):
        space, completed, pending = case(cname)
        BoTorchOptimizer().suggest(space, completed, pending, 1, seed=0)   # imports, caches
        cpu: dict[str, list[float]] = {n: [] for n, _ in variants}
        if args.draw_ahead:
            cpu.update({n + s: [] for n, _ in variants for s in ("+ahead", "+ahead-refit")})
        if args.fresh:
            cpu.update({n + "+fresh": [] for n, _ in variants})
        for rep in range(args.repeats):
            for vname, opts in variants:
                _warm_fits.clear()
                opt = BoTorchOptimizer(**opts)
                n, S = len(completed), args.steps
                opt.suggest(space, completed[:n - S], pending, 1, seed=1000 + rep)
                spent = 0.0
                for k in range(n - S + 1, n + 1):
                    c0 = time.process_time()
                    first = opt.suggest(space, completed[:k], pending, 1, seed=1 + rep + 7919 * (n - k))
                    spent += time.process_time() - c0
                cpu[vname].append(spent / S)
                if args.fresh:
                    _warm_fits.clear()
                    c0 = time.process_time()
                    opt.suggest(space, completed[:-1], pending, 1, seed=3000 + rep)
                    cpu[vname + "+fresh"].append(time.process_time() - c0)
                if args.draw_ahead:   # the same second suggestion, reusing the fit and, cache cleared, refitting
                    for suffix in ("+ahead", "+ahead-refit"):
                        if suffix == "+ahead-refit":
                            _warm_fits.clear()
                        c0 = time.process_time()
                        opt.suggest(space, completed, pending + [first[0].params], 1, seed=2000 + rep)
                        cpu[vname + suffix].append(time.process_time() - c0)
        base = statistics.median(cpu[variants[0][0]])
        for vname in cpu:
            m = statistics.median(cpu[vname])
            print(f"{cname:8s} {vname:14s} {1000 * m:7.0f} ms  x{m / base:.2f}  "
                  f"[{', '.join(f'{1000 * t:.0f}' for t in cpu[vname])}]", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
