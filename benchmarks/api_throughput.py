"""Throughput of the worker protocol against a real server, on PostgreSQL and SQLite.

64 simulated workers (aiohttp, zero-cost objective, method random) each loop: claim, 3 per-epoch
reports, complete. Two protocol shapes are measured in the same run:
  per-epoch : claim once, then per trial 3 report requests + complete-and-claim-next (4 requests)
  batched   : per trial one complete-and-claim-next request carrying its 3 reports (1 request)
Prints completed trials/s, p50/p99 latency of the request that hands out a trial, and duplicates
(a trial handed out twice). A second part measures how many requests/s of report + heartbeat one
server process answers, and so how many workers it sustains at one report and one heartbeat every
10 s. All traffic goes to 127.0.0.1; every loop is bounded by a trial budget and a time limit.

Usage: python benchmarks/api_throughput.py [--trials 2000] [--workers 64] [--backends postgres,sqlite]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import ROOT, start_server  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.support.databases import create_pg_database, drop_pg_database  # noqa: E402

PG_ADMIN = os.environ.get("TUNESERVE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SPACE = {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}, "width": {"values": [16, 32, 64]}}


def fresh_database(backend: str, tmp: str) -> tuple[str, callable]:
    if backend == "sqlite":
        return f"sqlite:///{tmp}/bench.db", lambda: None
    url = create_pg_database(PG_ADMIN, "tuneserve_bench")
    return url, lambda: drop_pg_database(url, PG_ADMIN)


async def worker(session, base, study, wid, shape, stats, deadline):
    api = base + "/api/v1"
    claim_body = {"worker_id": wid, "study": study}
    t0 = time.perf_counter()
    async with session.post(f"{api}/trials/claim", json=claim_body) as r:
        if r.status == 204:
            return
        lease = await r.json()
    stats["handout_ms"].append((time.perf_counter() - t0) * 1000)
    while lease is not None and time.perf_counter() < deadline:
        stats["handed"].append(lease["trial_id"])
        tid, tok = lease["trial_id"], lease["lease_token"]
        reports = [{"step": s, "metrics": {"train_loss": 1.0 / s, "val_loss": 1.1 / s}} for s in (1, 2, 3)]
        body = {"lease_token": tok, "value": 0.3, "claim_next": claim_body}
        if shape == "per-epoch":
            for rep in reports:
                async with session.post(f"{api}/trials/{tid}/report", json={"lease_token": tok, **rep}) as r:
                    if r.status != 200:
                        stats["errors"].append(r.status)
                    await r.read()
        else:
            body["reports"] = reports
        t0 = time.perf_counter()
        async with session.post(f"{api}/trials/{tid}/complete", json=body) as r:
            if r.status != 200:
                stats["errors"].append(r.status)
                return
            out = await r.json()
        stats["handout_ms"].append((time.perf_counter() - t0) * 1000)
        stats["completed"] += 1
        lease = out["next"]


async def run_shape(base, shape, trials, workers, limit_s):
    study = f"bench-{shape}-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as session:
        async with session.post(base + "/api/v1/studies", json={
            "name": study, "method": "random", "parameters": SPACE, "max_trials": trials, "seed": 0}) as r:
            assert r.status == 201, await r.text()
        stats = {"handout_ms": [], "handed": [], "completed": 0, "errors": []}
        start = time.perf_counter()
        deadline = start + limit_s
        await asyncio.gather(*(worker(session, base, study, f"w{i}", shape, stats, deadline) for i in range(workers)))
        elapsed = time.perf_counter() - start
    dup = sum(n - 1 for n in Counter(stats["handed"]).values() if n > 1)
    lat = sorted(stats["handout_ms"])
    return {
        "shape": shape, "completed": stats["completed"], "seconds": elapsed,
        "trials_per_s": stats["completed"] / elapsed,
        "p50_ms": statistics.median(lat), "p99_ms": lat[int(0.99 * (len(lat) - 1))],
        "duplicates": dup, "errors": len(stats["errors"]),
    }


async def keepalive_capacity(base, workers, seconds, protocol=False):
    """report + heartbeat pairs per second one server answers, from `workers` concurrent holders.

    protocol=True: worker epochs per second instead, each epoch sending what the server's own worker
    protocol sends for it: a report, then a heartbeat unless the report's answer says
    `needs_heartbeat: false` (an answer without the field, from a server that predates it, gets the
    heartbeat its workers sent after every report). Not the same figure as the pairs: a server that
    asks for fewer heartbeats answers more epochs with the same work."""
    study = f"hb-{uuid.uuid4().hex[:6]}"
    api = base + "/api/v1"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as session:
        async with session.post(api + "/studies", json={"name": study, "parameters": SPACE, "lease_seconds": 600}) as r:
            assert r.status == 201
        async with session.post(api + f"/studies/{study}/ask", json={"count": workers}) as r:
            leases = await r.json()
        done = 0
        deadline = time.perf_counter() + seconds

        async def hold(lease):
            nonlocal done
            step = 0
            while time.perf_counter() < deadline:
                step += 1
                tok = lease["lease_token"]
                async with session.post(f"{api}/trials/{lease['trial_id']}/report",
                                        json={"lease_token": tok, "step": step, "metrics": {"val_loss": 1.0}}) as r:
                    answer = await r.json()
                if not protocol or answer.get("needs_heartbeat", True):
                    async with session.post(f"{api}/trials/{lease['trial_id']}/heartbeat",
                                            json={"lease_token": tok}) as r:
                        await r.read()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(hold(l) for l in leases))
        return done / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--limit-s", type=float, default=60.0, help="time limit per measurement")
    ap.add_argument("--backends", default="postgres,sqlite")
    ap.add_argument("--processes", default="1,2", help="server process counts to measure on PostgreSQL")
    args = ap.parse_args()
    print(f"api_throughput: {args.workers} workers, up to {args.trials} trials per shape, one server process, "
          f"{os.cpu_count()} CPUs on this machine (server, database and load generator share them)\n")
    print(f"{'backend':9} {'procs':>5} {'shape':10} {'trials':>7} {'trials/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'dups':>5} {'errors':>6}")
    keep = {}
    runs = []
    for backend in args.backends.split(","):
        # SQLite has one writer: more processes only queue on its lock, so it runs with one.
        for procs in ([int(p) for p in args.processes.split(",")] if backend == "postgres" else [1]):
            runs.append((backend, procs))
    for backend, procs in runs:
        with tempfile.TemporaryDirectory() as tmp:
            url, drop = fresh_database(backend, tmp)
            proc, base = start_server(url, procs)
            try:
                for shape in ("per-epoch", "batched"):
                    r = asyncio.run(run_shape(base, shape, args.trials, args.workers, args.limit_s))
                    print(f"{backend:9} {procs:5d} {shape:10} {r['completed']:7d} {r['trials_per_s']:9.1f} "
                          f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['duplicates']:5d} {r['errors']:6d}", flush=True)
                if procs == 1:
                    keep[backend] = (asyncio.run(keepalive_capacity(base, args.workers, 10.0)),
                                     asyncio.run(keepalive_capacity(base, args.workers, 10.0, protocol=True)))
            finally:
                proc.terminate()
                proc.wait(15)
                drop()
    print("\nworkers one server process sustains at 1 report + 1 heartbeat every 10 s:")
    for backend, (pairs, epochs) in keep.items():
        print(f"  {backend:9} {pairs:7.1f} report+heartbeat pairs/s -> about {int(pairs * 10):,} workers")
    print("workers one server process sustains at one epoch every 10 s, sending what the worker protocol sends\n"
          "(a report, and a heartbeat only when the report's answer asks for one):")
    for backend, (pairs, epochs) in keep.items():
        print(f"  {backend:9} {epochs:7.1f} worker epochs/s -> about {int(epochs * 10):,} workers")


if __name__ == "__main__":
    main()
