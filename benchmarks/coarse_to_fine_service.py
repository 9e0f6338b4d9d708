"""coarse_to_fine.py through the service: the same two arms as study documents run by a real server and
real worker processes (the built-in trainer on CPU), the coarse-to-fine arm with `stages`.

  flat             {method: tpe, max_trials: budget // epochs, fidelity: {epochs}, repeat_top: {top_k: 1,
                   seeds: R}}: every trial at full fidelity.
  coarse-to-fine   {method: tpe, stages: [{trials: 40, epochs: 3, data_fraction: 0.25},
                   {refine: {top_k: 5}, trials: n2, epochs: 10, repeat_top: {top_k: 1, seeds: R}}]}: the
                   second stage starts by itself when the first one's last trial ends, refined around
                   its top 5 (re-run first at full fidelity), warm-started with rank-mapped values.

Same space, network, data (shapes, 2,000 images, 6 classes), budget in full-data epochs and run seeds as
coarse_to_fine.py. The retrain is the service's own `repeat_top`: the best full-fidelity configuration
re-run with R fresh seeds (SeedSequence) once the search budget is spent; the figure compared is the
mean of those R repeats (a diverged repeat counts ln 6, chance level), as in-process. Studies of all
seeds and both arms are created at once and served by `--workers` worker processes (no --study: each
claim goes to the least busy study), so arms share the machine evenly; the searches are therefore
not strictly sequential (two trials of one study may run at once), unlike in-process.

    nice -n 10 python benchmarks/coarse_to_fine_service.py --seeds 5     # ~15-30 min on 2 cores
    python benchmarks/coarse_to_fine_service.py --quick                  # smoke: tiny sizes, a minute
"""
from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _server import ROOT, start_server  # noqa: E402
from coarse_to_fine import (  # noqa: E402
    FIXED, SHAPES, SPACE, arm_arguments, derive, parse_arms, print_results, run_seeds,
)

CHANCE = math.log(SHAPES["classes"])


def parameters() -> dict:
    shapes = ",".join(f"{k}={v}" for k, v in SHAPES.items())
    return {**SPACE, "dataset": {"value": f"shapes:{shapes}"}, **{k: {"value": v} for k, v in FIXED.items()}}


def documents(seed: int, args) -> tuple[dict, dict]:
    common = {"method": "tpe", "objective": "builtin:cnn", "lease_seconds": 120,
              "metric": {"name": "val_loss", "goal": "minimize"}, "parameters": parameters()}
    repeat = {"top_k": 1, "seeds": args.retrain_seeds}
    # each arm its own study seed from the run seed, as in-process (derive(run_seed, 1 | 2))
    flat = {**common, "name": f"flat-{seed}", "seed": derive(seed, 1), "max_trials": args.budget // args.epochs,
            "fidelity": {"epochs": args.epochs}, "repeat_top": repeat}
    n2 = int((args.budget - args.stage1_trials * args.stage1_epochs * args.stage1_fraction) // args.epochs)
    c2f = {**common, "name": f"c2f-{seed}", "seed": derive(seed, 2), "stages": [
        {"trials": args.stage1_trials, "epochs": args.stage1_epochs, "data_fraction": args.stage1_fraction},
        {"refine": {"top_k": args.top_k}, "trials": n2, "epochs": args.epochs, "repeat_top": repeat}]}
    return flat, c2f


def trials(api: httpx.Client, study: str) -> list[dict]:
    return api.get(f"/studies/{study}/trials", params={"limit": 1000}).json()["items"]


def finished(api: httpx.Client, name: str) -> bool:
    study = api.get(f"/studies/{name}").json()
    if study.get("stages"):
        last = study["stages"][-1]
        return last["state"] == "finished" or bool(study.get("stage_note"))
    return study["state"] == "finished"


def summarise(api: httpx.Client, arm: str, seed: int, name: str) -> dict:
    study = api.get(f"/studies/{name}").json()
    final = study["active_stage"] if study.get("stages") else name
    names = [s["study"] for s in study["stages"] if s["study"]] if study.get("stages") else [name]
    cost, seconds, searched = 0.0, 0.0, 0
    for n in names:
        for t in trials(api, n):
            if t["method"] == "repeat":
                continue
            searched += 1
            cost += (t["last_step"] or 0) * (t["fidelity"] or {}).get("data_fraction", 1.0)
            if t["started_at"] and t["finished_at"]:
                seconds += (_time(t["finished_at"]) - _time(t["started_at"]))
    last = trials(api, final)
    searches = [t for t in last if t["method"] != "repeat" and t["state"] == "completed"]
    repeats = [t for t in last if t["method"] == "repeat"]
    best = min(searches, key=lambda t: t["value"])
    retrained = statistics.fmean(t["value"] if t["state"] == "completed" else CHANCE for t in repeats)
    out = {"arm": arm, "seed": seed, "trials": searched, "cost": cost, "search_best": best["value"],
           "retrain": retrained, "best": best["params"], "train_seconds": seconds}
    if study.get("stages"):
        child = api.get(f"/studies/{final}").json()
        lr = next(c for c in child["refine"]["changes"] if c["path"] == "lr")["after"]
        out.update(lr_range=(lr["min"], lr["max"]), trials=f"{study['stages'][0]['ended']}+{searched - study['stages'][0]['ended']}")
    return out


def _time(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def main(argv: list[str] | None = None) -> int:
    parser = arm_arguments(__doc__, seeds=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before giving up")
    args = parse_arms(parser, argv)

    tmp = Path(tempfile.mkdtemp(prefix="c2f-service-"))
    server, url = start_server(f"sqlite:///{tmp / 'tuneserve.db'}")
    workers: list[subprocess.Popen] = []
    t0 = time.perf_counter()
    try:
        api = httpx.Client(base_url=url + "/api/v1", timeout=60)
        seeds = run_seeds(args.seeds)
        studies = []
        for seed in seeds:
            for arm, doc in zip(("flat", "c2f"), documents(seed, args)):
                api.post("/studies", json=doc).raise_for_status()
                studies.append((arm, seed, doc["name"]))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        for i in range(args.workers):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "tuneserve_workers.cli", "--server", url, "--device", "cpu", "--objective", "builtin:cnn",
                 "--worker-id", f"bench-{i}", "--idle-max", "1", "--log-level", "WARNING"],
                cwd=ROOT, env=env, stdout=open(tmp / f"worker-{i}.log", "wb"), stderr=subprocess.STDOUT))
        pending = list(studies)
        while pending:
            if time.perf_counter() - t0 > args.timeout:
                raise SystemExit(f"gave up after {args.timeout:.0f} s with {len(pending)} studies unfinished")
            if any(w.poll() is not None for w in workers):
                raise SystemExit(f"a worker exited; logs in {tmp}")
            for item in [s for s in pending if finished(api, s[2])]:
                pending.remove(item)
                print(f"[{len(studies) - len(pending)}/{len(studies)}] {item[2]} done "
                      f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
            time.sleep(2)
        results = [summarise(api, arm, seed, name) for arm, seed, name in studies]
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(60)
            except subprocess.TimeoutExpired:
                w.kill()
        server.terminate()
        server.wait(30)
    shutil.rmtree(tmp, ignore_errors=True)  # kept (logs, database) only when a run fails
    wall = time.perf_counter() - t0

    print(f"\nthrough the service ({args.workers} workers, SQLite): shapes {SHAPES}, CNN {FIXED}; budget "
          f"{args.budget} full-data epochs per arm; full fidelity {args.epochs} epochs; stage 1 "
          f"{args.stage1_trials} x {args.stage1_epochs} epochs at {args.stage1_fraction:g} data; refine top "
          f"{args.top_k}; retrain = repeat_top with {args.retrain_seeds} seeds")
    print_results(results, " train s", lambda r: f" {r['train_seconds']:>8.0f}", wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
