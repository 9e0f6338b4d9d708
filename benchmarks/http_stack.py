"""Server CPU per request for variants of the server, alternated in one run: h11 on asyncio's loop
(what the server ran until issue 21's third pass), httptools on uvloop with tuneserve's header guard
(service/serving.py) with the keep-alive requests through FastAPI's router
(TUNESERVE_KEEPALIVE_DISPATCH=false, what it ran until the fourth pass), and the same with the
keep-alive dispatch (service/api/keepalive.py, what it runs now). `--variants` picks some by number.

Each round starts one server per stack on a fresh PostgreSQL database, warms it, then reads the
server process's CPU time (utime + stime from /proc) around two loads from api_throughput.py:
report+heartbeat pairs from 64 holders for --pairs-s seconds, and --trials per-epoch trials (a
claim, 3 reports and a complete each). CPU per request is a steadier figure than throughput on a
shared box: it does not count time the server spent waiting for a core. Prints every round, then
each stack's median. Linux only (/proc).

Usage: python benchmarks/http_stack.py [--rounds 3] [--pairs-s 8] [--trials 400] [--variants 1,2]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_throughput as bench  # noqa: E402
from _server import ROOT, cpu_seconds  # noqa: E402

from tuneserve_service.launch import free_port, wait_healthy  # noqa: E402

_HTTPTOOLS = ["--http", "tuneserve_service.serving:GuardedHttpProtocol", "--loop", "uvloop"]
_ROUTER = {"TUNESERVE_KEEPALIVE_DISPATCH": "false"}
# name: (uvicorn's arguments, environment)
STACKS = {
    "h11+asyncio, router": (["--http", "h11", "--loop", "asyncio"], _ROUTER),
    "httptools+uvloop, router": (_HTTPTOOLS, _ROUTER),
    "httptools+uvloop, dispatch": (_HTTPTOOLS, {}),
}
REQUESTS_PER_TRIAL = 5  # per-epoch shape: 3 reports and a complete, and the claim of each trial


def measure(stack: str, pairs_s: float, trials: int) -> dict:
    url, drop = bench.fresh_database("postgres", "")
    port = free_port()
    uvicorn_args, extra_env = STACKS[stack]
    env = {**os.environ, "TUNESERVE_DATABASE_URL": url, "TUNESERVE_LOG_LEVEL": "warning", **extra_env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tuneserve_service.main:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log", *uvicorn_args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, 60)
        asyncio.run(bench.keepalive_capacity(base, 16, 2))  # imports, pools and caches warm
        c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        rate = asyncio.run(bench.keepalive_capacity(base, 64, pairs_s))
        c1, t1 = cpu_seconds(proc.pid), time.perf_counter()
        shape = asyncio.run(bench.run_shape(base, "per-epoch", trials, 64, 120))
        c2 = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
        drop()
    return {"pairs_per_s": rate, "pairs_ms": (c1 - c0) / (2 * rate * (t1 - t0)) * 1000,
            "trials_per_s": shape["trials_per_s"],
            "per_epoch_ms": (c2 - c1) / (shape["completed"] * REQUESTS_PER_TRIAL) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs-s", type=float, default=8.0)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--variants", default=",".join(str(i + 1) for i in range(len(STACKS))),
                    help="which variants, by number in the docstring's order (1-based, comma-separated)")
    args = ap.parse_args()
    names = [list(STACKS)[int(i) - 1] for i in args.variants.split(",")]
    results: dict[str, list[dict]] = {name: [] for name in names}
    for rnd in range(args.rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        for stack in order:
            r = measure(stack, args.pairs_s, args.trials)
            results[stack].append(r)
            print(f"round {rnd + 1} {stack:28s} pairs {r['pairs_per_s']:6.1f}/s at {r['pairs_ms']:.2f} ms CPU a request;"
                  f" per-epoch {r['trials_per_s']:5.1f} trials/s at {r['per_epoch_ms']:.2f} ms CPU a request"
                  f"  (load {os.getloadavg()[0]:.1f})", flush=True)
    print("\nmedian server CPU ms per request (pairs, per-epoch):")
    base = None
    for stack, rs in results.items():
        pm = statistics.median(r["pairs_ms"] for r in rs)
        em = statistics.median(r["per_epoch_ms"] for r in rs)
        base = base or (pm, em)
        print(f"  {stack:28s} {pm:.2f}  {em:.2f}   ({pm / base[0]:.2f}x, {em / base[1]:.2f}x of {names[0]})")


if __name__ == "__main__":
    main()
