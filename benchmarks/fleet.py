"""How many GPU workers 1, 2 and 3 server processes on one PostgreSQL hold at a realistic cadence.

Each simulated worker (one asyncio task, aiohttp, over loopback) does what workers/loop.py does:
claim a trial; train it for 3-10 epochs of 30-120 s each (uniform), reporting after every epoch; keep
its lease alive with POST /leases/renew at a third of the lease, skipping every beat that falls
within a third of the lease of a report whose answer said needs_heartbeat=false; complete it with
claim_next (the next trial comes in the same request). Leases are 300 s.

Time is compressed by --compress F: epochs last (30-120)/F s and leases 300/F s, so each simulated
worker sends F times the requests of a real one, and W simulated workers load the server as
N = W x F real workers would. Latencies are not compressed: they are what the server answered.

A fleet size N is held when the p99 of the requests that hand out a trial (claims and completes with
claim_next, from the fleet's ramp-up on: workers come up over one longest epoch) is under 1 s, and,
after a warm-up of one and a half longest epochs, over --seconds of steady load:
no request is refused because the lease was lost (409/404 on a held trial), no trial was requeued
or failed by the lease sweep (attempt > 0 in the database), and nothing failed (5xx, timeouts).
For each process count, N doubles from --start until a size is not held, then the gap is bisected
once; the largest held N is printed, with what stopped the next size.

Usage: python benchmarks/fleet.py [--processes 1,2,3] [--compress 20] [--start 2000] [--seconds 40]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_throughput as bench  # noqa: E402
from _server import start_server  # noqa: E402

# Per server process, as the deployment manifests set it: 8 + 8 pooled connections and up to 12
# autocommit ones (lease renewals, reservations): 3 processes use at most 84 of PostgreSQL's 100.
POOL = {"TUNESERVE_DB_POOL_SIZE": "8", "TUNESERVE_DB_MAX_OVERFLOW": "8"}
LEASE_S = 300.0
EPOCH_S = (30.0, 120.0)
EPOCHS = (3, 10)
SPACE = {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}, "width": {"values": [16, 32, 64]}}


@dataclass
class Stats:
    measuring: bool = False
    handout_ms: list[float] = field(default_factory=list)
    report_ms: list[float] = field(default_factory=list)
    renew_ms: list[float] = field(default_factory=list)
    requests: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)
    trials: int = 0


async def call(session, stats: Stats, url: str, body: dict, kind: str):
    t0 = time.perf_counter()
    try:
        async with session.post(url, json=body) as r:
            data = await r.json() if r.status == 200 else None
            status = r.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        stats.errors.append(f"{kind}: {type(exc).__name__}")
        return None, 0
    ms = (time.perf_counter() - t0) * 1000
    if kind == "handout":  # every hand-out counts, the fleet's ramp-up included
        stats.handout_ms.append(ms)
    if stats.measuring:
        stats.requests += 1
        if kind != "handout":
            {"report": stats.report_ms, "renew": stats.renew_ms}[kind].append(ms)
    if status in (404, 409):
        stats.lost += 1
    elif status >= 500 or (status != 200 and status != 204):
        stats.errors.append(f"{kind}: HTTP {status}")
    return data, status


async def worker(session, api: str, study: str, wid: str, compress: float, stats: Stats, stop: float,
                 rng: random.Random) -> None:
    lease_s = LEASE_S / compress
    third = lease_s / 3
    claim_body = {"worker_id": wid, "study": study}
    await asyncio.sleep(rng.uniform(0, EPOCH_S[1] / compress))  # workers come up over one longest epoch
    lease, _ = await call(session, stats, f"{api}/trials/claim", claim_body, "handout")
    while lease and time.monotonic() < stop:
        tid, tok = lease["trial_id"], lease["lease_token"]
        renewed = time.monotonic()
        lost = False
        for epoch in range(1, rng.randint(*EPOCHS) + 1):
            end = time.monotonic() + rng.uniform(*EPOCH_S) / compress
            while True:  # train, renewing the lease when a third of it passed since the last renewal
                due = renewed + third
                if due >= end:
                    await asyncio.sleep(max(0.0, end - time.monotonic()))
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                out, status = await call(session, stats, f"{api}/leases/renew",
                                         {"leases": [{"trial_id": tid, "lease_token": tok}]}, "renew")
                if out is not None and not out["leases"][0]["held"]:
                    stats.lost += 1
                    lost = True
                    break
                renewed = time.monotonic()
            if lost or time.monotonic() >= stop:
                break
            sent = time.monotonic()
            out, status = await call(session, stats, f"{api}/trials/{tid}/report",
                                     {"lease_token": tok, "step": epoch, "metrics": {"val_loss": 1.0 / epoch}}, "report")
            if out is None:
                lost = status in (404, 409)
                break
            if not out.get("needs_heartbeat", True):
                renewed = sent
        if lost or time.monotonic() >= stop:
            return
        out, _ = await call(session, stats, f"{api}/trials/{tid}/complete",
                            {"lease_token": tok, "value": rng.random(), "claim_next": claim_body}, "handout")
        if out is None:
            return
        if stats.measuring:
            stats.trials += 1
        lease = out["next"]


def p99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * (len(values) - 1))] if values else float("nan")


async def run_fleet(base: str, db_url: str, sim_workers: int, compress: float, seconds: float, seed: int) -> dict:
    api = base + "/api/v1"
    study = f"fleet-{uuid.uuid4().hex[:6]}"
    stats = Stats()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512), timeout=timeout) as session:
        async with session.post(api + "/studies", json={"name": study, "method": "random", "parameters": SPACE,
                                                        "lease_seconds": LEASE_S / compress, "seed": 0}) as r:
            assert r.status == 201, await r.text()
        warm = 1.5 * EPOCH_S[1] / compress
        start = time.monotonic()
        stop = start + warm + seconds
        rng = random.Random(seed)
        tasks = [asyncio.create_task(worker(session, api, study, f"w{i}", compress, stats, stop,
                                            random.Random(rng.random()))) for i in range(sim_workers)]
        await asyncio.sleep(warm)
        stats.measuring = True
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        stats.measuring = False
        elapsed = time.monotonic() - t0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        requeued = conn.execute(text("SELECT count(*) FROM trials WHERE attempt > 0 OR fail_kind = 'lease_expired'")).scalar()
    engine.dispose()
    return {
        "fleet": int(sim_workers * compress), "req_per_s": stats.requests / elapsed, "trials": stats.trials,
        "handout_p99_ms": p99(stats.handout_ms), "handout_p50_ms": statistics.median(stats.handout_ms or [float("nan")]),
        "report_p99_ms": p99(stats.report_ms), "renews": len(stats.renew_ms), "reports": len(stats.report_ms),
        "lost": stats.lost, "expired": requeued, "errors": len(stats.errors),
        "first_error": stats.errors[0] if stats.errors else "",
    }


def held(r: dict) -> tuple[bool, str]:
    why = []
    if not r["handout_p99_ms"] < 1000:
        why.append(f"claim p99 {r['handout_p99_ms']:.0f} ms")
    if r["lost"] or r["expired"]:
        why.append(f"{r['lost']} lost leases, {r['expired']} expired")
    if r["errors"]:
        why.append(f"{r['errors']} errors ({r['first_error']})")
    return not why, "; ".join(why)


def measure(procs: int, fleet: int, args) -> dict:
    sim = max(1, round(fleet / args.compress))
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = bench.fresh_database("postgres", tmp)
        proc, base = start_server(url, procs, timeout=180, env_extra=POOL)
        try:
            # /healthz answers once one process is up: let every process finish its imports and
            # the optimizers' warm-up before the fleet comes (they take tens of seconds on a loaded box).
            time.sleep(args.settle * procs)
            r = asyncio.run(run_fleet(base, url, sim, args.compress, args.seconds, args.seed))
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:  # a loaded box: uvicorn's workers can take long to stop
                proc.kill()
                proc.wait(15)
            drop()
    ok, why = held(r)
    r.update(procs=procs, held=ok, why=why, load=os.getloadavg()[0])
    print(f"{procs:5d} {r['fleet']:7d} {r['req_per_s']:8.1f} {r['reports']:8d} {r['renews']:7d} {r['trials']:7d} "
          f"{r['handout_p50_ms']:8.0f} {r['handout_p99_ms']:8.0f} {r['report_p99_ms']:8.0f} {r['lost']:5d} "
          f"{r['expired']:5d} {r['errors']:6d} {r['load']:5.1f}  {'held' if ok else 'NOT held: ' + why}", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", default="1,2,3")
    ap.add_argument("--compress", type=float, default=20.0, help="time compression factor F")
    ap.add_argument("--start", type=int, default=2000, help="first fleet size tried")
    ap.add_argument("--max", type=int, default=64000, help="largest fleet size tried")
    ap.add_argument("--seconds", type=float, default=40.0, help="measured seconds after the warm-up")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settle", type=float, default=15.0, help="seconds per server process to wait after start")
    args = ap.parse_args()
    print(f"fleet: epochs {EPOCH_S[0]:g}-{EPOCH_S[1]:g} s, {EPOCHS[0]}-{EPOCHS[1]} epochs a trial, leases {LEASE_S:g} s, "
          f"time compressed x{args.compress:g}; {args.seconds:g} s measured after a {1.5 * EPOCH_S[1] / args.compress:.0f} s "
          f"warm-up; {os.cpu_count()} CPUs shared by PostgreSQL, the servers and this load generator "
          f"(load average {os.getloadavg()[0]:.1f})\n")
    print(f"{'procs':>5} {'fleet':>7} {'req/s':>8} {'reports':>8} {'renews':>7} {'trials':>7} {'claim50':>8} "
          f"{'claim99':>8} {'rep99':>8} {'lost':>5} {'exp':>5} {'errors':>6} {'load':>5}")
    best = {}
    for procs in [int(p) for p in args.processes.split(",")]:
        good, bad, n = 0, None, args.start
        while n <= args.max:
            if measure(procs, n, args)["held"]:
                good, n = n, n * 2
            else:
                bad = n
                break
        if bad is not None and good:
            mid = (good + bad) // 2
            if measure(procs, mid, args)["held"]:
                good = mid
        best[procs] = (good, bad)
    print("\nlargest fleet held (claim p99 < 1 s, no lease lost or expired, no errors):")
    for procs, (good, bad) in best.items():
        print(f"  {procs} process(es): {good:,} workers" + (f" (not {bad:,})" if bad else f" (every size up to {args.max:,})"))


if __name__ == "__main__":
    main()
