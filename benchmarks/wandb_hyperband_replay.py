"""Replay the same learning curves through W&B's hyperband engine and through tuneserve's, and
count how often they make the same stop / no-stop decision.

Curves: N synthetic CNN-like validation losses (seeded; per run a start, a floor, a speed and
noise, some slow starters that cross others late), 27 epochs each. Orders of arrival:
  - round-robin: W worker slots; each tick every running run reports one epoch, in slot order;
    a slot whose run ended takes the next run at the next tick (the first W start in lockstep);
  - staggered: one new run starts every tick; each tick every running run reports once, oldest
    first;
  - shuffled: runs start at random ticks and report in a random order within each tick.
W&B's side: after each tick's reports, its controller pass, `sweeps.stop_runs(config, runs)`
over every run (W&B's own engine, loaded from --sweeps-src). tuneserve's side: the pruner that a
study with the same `early_terminate` block builds, asked at each report (`decide`) and at a
heartbeat of every running trial after each tick (`recheck`). Each side runs its own simulation
(a stopped run reports no more), on the same curves and the same schedule rules.

A run's outcome is "stopped at report k" or "ran to the end". Printed per block and order:
  - agree: both stopped it or both let it finish (the stop / no-stop decision);
  - same step: and, when stopped, at the same report.
Also printed for comparison: tuneserve before this change (W&B blocks mapped onto its bracketed
Hyperband, judged once per rung at the report), and the W&B rule at reports only (no heartbeat
re-check, no waiting for the round).

    python benchmarks/wandb_hyperband_replay.py --sweeps-src /work/.mirror/wandb+sweeps/repo
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._wandb_sweeps import load_sweeps  # noqa: E402
from tuneserve_service.pruners import Curve, HyperbandPruner, build_pruner, pruner_from_wandb  # noqa: E402

EPOCHS = 27
BLOCKS = [
    {"type": "hyperband", "min_iter": 1, "eta": 3},
    {"type": "hyperband", "min_iter": 3, "eta": 3},
    {"type": "hyperband", "max_iter": 27, "s": 3, "eta": 3},
    {"type": "hyperband", "min_iter": 2, "eta": 2},
    {"type": "hyperband", "min_iter": 1, "eta": 1.5},
    {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3, "strict": False},
]


def make_curves(n: int, seed: int, goal: str) -> list[list[float]]:
    curves = []
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        start = rng.uniform(2.0, 2.6)
        floor = rng.lognormal(np.log(0.4), 0.5)
        tau = rng.uniform(1.0, 12.0) if rng.random() > 0.15 else rng.uniform(15.0, 30.0)   # slow starters
        noise = rng.uniform(0.01, 0.06)
        t = np.arange(1, EPOCHS + 1)
        loss = floor + (start - floor) * np.exp(-t / tau) + rng.normal(0.0, noise, EPOCHS)
        curves.append([float(v) for v in (loss if goal == "minimize" else 1.0 / (1.0 + loss))])
    return curves


def schedule(order: str, n: int, workers: int, seed: int):
    """Yields, per tick, the runs that start and the order in which running runs report."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 999]))
    if order == "shuffled":
        starts = np.sort(rng.integers(0, n, size=n))
    elif order == "staggered":
        starts = np.arange(n)
    else:
        starts = None
    return starts, rng


@dataclass
class Outcome:
    stopped_at: int | None   # report count when stopped, None when it ran to the end


class WandbSide:
    def __init__(self, sweeps, block: dict, goal: str):
        self.sweeps = sweeps
        self.config = {"method": "random", "metric": {"name": "loss", "goal": goal},
                       "early_terminate": block, "parameters": {"x": {"values": [1]}}}

    def report(self, run: int, runs: dict, running: set) -> bool:
        return False   # W&B decides in its controller's pass, after the tick

    def tick(self, runs: dict, running: set) -> set:
        SweepRun, RunState = self.sweeps.SweepRun, self.sweeps.RunState
        objs = [SweepRun(name=str(r), state=RunState.running if r in running else RunState.finished,
                         history=[{"loss": v} for v in hist]) for r, hist in runs.items()]
        return {int(s.name) for s in self.sweeps.stop_runs(self.config, objs)}


class TuneserveSide:
    def __init__(self, pruner, goal: str, heartbeat: int = 1, robust: bool = True):
        """`heartbeat`: re-check running trials every that many ticks (0: never)."""
        self.pruner, self.goal, self.heartbeat, self.robust = pruner, goal, heartbeat, robust
        self.ticks = 0

    def _curves(self, run: int, runs: dict, running: set) -> tuple[Curve, list[Curve]]:
        def c(r):
            return Curve(r, {k + 1: v for k, v in enumerate(runs[r])}, "running" if r in running else "completed")
        return c(run), [c(r) for r in runs if r != run]

    def report(self, run: int, runs: dict, running: set) -> bool:
        mine, others = self._curves(run, runs, running)
        judge = self.pruner.decide if self.robust else getattr(self.pruner, "recheck", self.pruner.decide)
        return judge(mine, others, self.goal).stop

    def tick(self, runs: dict, running: set) -> set:
        self.ticks += 1
        if not self.heartbeat or self.ticks % self.heartbeat or not hasattr(self.pruner, "recheck"):
            return set()
        return {r for r in running if self.pruner.recheck(*self._curves(r, runs, running), self.goal).stop}


def simulate(side, curves: list[list[float]], order: str, workers: int, seed: int) -> list[Outcome]:
    n = len(curves)
    starts, rng = schedule(order, n, workers, seed)
    runs: dict[int, list[float]] = {}
    running: list[int] = []          # report order within a tick
    outcomes: dict[int, Outcome] = {}
    next_run, tick = 0, 0
    while len(outcomes) < n:
        # Starts.
        if starts is None:
            while len(running) < workers and next_run < n:
                running.append(next_run)
                runs[next_run] = []
                next_run += 1
        else:
            while next_run < n and starts[next_run] <= tick:
                running.append(next_run)
                runs[next_run] = []
                next_run += 1
        report_order = list(running)
        if order == "shuffled":
            rng.shuffle(report_order)
        for r in report_order:
            runs[r].append(curves[r][len(runs[r])])
            if side.report(r, runs, set(running)):
                outcomes[r] = Outcome(len(runs[r]))
                running.remove(r)
        for r in side.tick(runs, set(running)):
            outcomes[r] = Outcome(len(runs[r]))
            running.remove(r)
        for r in list(running):
            if len(runs[r]) == EPOCHS:
                outcomes[r] = Outcome(None)
                running.remove(r)
        tick += 1
    return [outcomes[i] for i in range(n)]


def old_mapping(block: dict):
    """tuneserve's mapping before W&B's engine: one ASHA-like bracket, judged once per rung at
    the report that reaches it, keeping the top n // eta (integer eta only)."""
    eta = block.get("eta", 3)
    if not float(eta).is_integer():
        return None
    eta = int(eta)
    strict = block.get("strict", True)
    if "max_iter" in block:
        rungs = sorted({block["max_iter"] // eta ** k for k in range(1, block["s"] + 1)} - {0})
        return HyperbandPruner(rungs[0], eta, block["max_iter"], 1, tuple(rungs), strict)
    return HyperbandPruner(block["min_iter"], eta, None, 1, None, strict)


def compare(a: list[Outcome], b: list[Outcome]) -> tuple[float, float]:
    """(share of runs with the same stop / no-stop outcome, share stopped at the same report too)."""
    agree = sum((x.stopped_at is None) == (y.stopped_at is None) for x, y in zip(a, b))
    same = sum(x.stopped_at == y.stopped_at for x, y in zip(a, b))
    return agree / len(a), same / len(a)


def pct(pair: tuple[float, float]) -> str:
    return f"{100 * pair[0]:.1f}% / {100 * pair[1]:.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweeps-src", required=True, help="W&B's sweeps: a checkout or its bare git mirror")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=20, help="slots of the round-robin order")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--orders", default="round-robin,staggered,shuffled")
    args = ap.parse_args()
    sweeps = load_sweeps(args.sweeps_src)
    orders = args.orders.split(",")
    totals: dict[str, list[tuple[float, float]]] = {}
    t0 = time.time()
    print(f"{args.runs} runs x {EPOCHS} epochs, {args.seeds} seeds, round-robin over {args.workers} slots\n")
    print("Each cell: stop/no-stop agreement with W&B / same stop report, mean over seeds.\n")
    print("| block | goal | order | W&B stops | **tuneserve** | heartbeat every 2 ticks | report-time only | before |")
    print("|---|---|---|---|---|---|---|---|")
    for block in BLOCKS:
        for goal in ("minimize", "maximize") if block is BLOCKS[0] else ("minimize",):
            label = ", ".join(f"{k}={v}" for k, v in block.items() if k != "type")
            for order in orders:
                cells: dict[str, list] = {"wb": [], "ours": [], "hb2": [], "plain": [], "old": []}
                old_ok = old_mapping(block) is not None
                for seed in range(args.seeds):
                    curves = make_curves(args.runs, seed, goal)

                    def run(side):
                        return simulate(side, curves, order, args.workers, seed)

                    def ours(**kw):
                        return TuneserveSide(build_pruner(pruner_from_wandb(block)), goal, **kw)

                    wb = run(WandbSide(sweeps, block, goal))
                    cells["wb"].append(sum(o.stopped_at is not None for o in wb))
                    cells["ours"].append(compare(wb, run(ours())))
                    cells["hb2"].append(compare(wb, run(ours(heartbeat=2))))
                    cells["plain"].append(compare(wb, run(ours(heartbeat=0, robust=False))))
                    if old_ok:
                        cells["old"].append(compare(wb, run(TuneserveSide(old_mapping(block), goal, heartbeat=0))))
                    totals.setdefault(order, []).append(cells["ours"][-1])

                def mean(key):
                    return pct(tuple(np.mean(cells[key], axis=0))) if cells[key] else "-"
                print(f"| {label} | {goal} | {order} | {np.mean(cells['wb']):.0f} / {args.runs} | "
                      f"**{mean('ours')}** | {mean('hb2')} | {mean('plain')} | {mean('old')} |")
    print()
    for order in orders:
        a = [x[0] for x in totals[order]]
        s = [x[1] for x in totals[order]]
        print(f"{order}: stop/no-stop agreement {100 * np.mean(a):.2f}% (lowest replay {100 * min(a):.1f}%), "
              f"same stop report {100 * np.mean(s):.2f}%, over {len(a)} block x goal x seed replays")
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
