"""botorch option variants against each other in one process (issue 20): optimizer_quality.py's runs
(same problems, seeds, evaluation counts and pending modes), job by job interleaved, seed by seed and
mode by mode, every variant in turn, so that a stop keeps whole seeds and a shared box's load falls
on every variant alike. Prints one line per run as it ends and, at the end, the median regret, IQR,
CPU seconds per suggestion and share of points on a bound per variant and mode.

    python benchmarks/botorch_variants.py --problem hartmann6 --seeds 8 --modes 0,8 \\
        defaults='{}' fast='{"mc_samples": 64, "warm_fit_maxiter": 10}' --json out.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import optimizer_quality as oq  # noqa: E402
from tuneserve_service.optimizers import _warm_fits  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", default="hartmann6")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--modes", default="0", help="pending counts: 0 = sequential")
    ap.add_argument("--json", default=None, help="append one JSON line per run here")
    ap.add_argument("--stop-at", type=float, default=None, help="time.time() after which no new run starts")
    ap.add_argument("variants", nargs="+", help="name=JSON options for BoTorchOptimizer")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    variants = [(v.split("=", 1)[0], v.split("=", 1)[1]) for v in args.variants]
    space, _, optimum, _ = oq.PROBLEMS[args.problem]
    modes = [int(m) for m in args.modes.split(",")]
    rows: list[dict] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for mode in modes:
            for vname, opts in variants:
                if args.stop_at and time.time() > args.stop_at:
                    break
                os.environ["TUNESERVE_BENCH_BOTORCH_OPTIONS"] = opts
                _warm_fits.clear()
                vals, points, (wall, cpu) = oq.run_trace(args.problem, "botorch", seed, mode)
                bounds = [oq.on_bound(space, p) for p in points]
                row = {"variant": vname, "options": json.loads(opts), "problem": args.problem, "seed": seed,
                       "pending": mode, "regret": min(vals) - optimum, "cpu_per_ask": cpu / len(vals),
                       "wall_per_ask": wall / len(vals), "on_bound": sum(b for b, _ in bounds) / len(points),
                       "utc": time.strftime("%H:%M:%S", time.gmtime()), "load": os.getloadavg()[0]}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(row) + "\n")
    print()
    for mode in modes:
        for vname, _ in variants:
            rs = [r for r in rows if r["variant"] == vname and r["pending"] == mode]
            if not rs:
                continue
            reg = sorted(r["regret"] for r in rs)
            q = statistics.quantiles(reg, n=4) if len(reg) > 1 else [reg[0]] * 3
            print(f"pending {mode} {vname:12s} seeds {len(rs)}  median regret {statistics.median(reg):.3g} "
                  f"[{q[0]:.3g}, {q[2]:.3g}]  CPU s/ask {statistics.median(r['cpu_per_ask'] for r in rs):.3f}  "
                  f"on a bound {100 * statistics.mean(r['on_bound'] for r in rs):.0f}%  "
                  f"per seed {', '.join(format(r['regret'], '.3g') for r in rs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
