"""Dashboard at scale: a 20,000-trial / 200,000-report study, each chart-data endpoint timed over
HTTP, and the study page's time to interactive in headless Chromium, on SQLite and PostgreSQL.

The study is written straight into the database (bulk inserts of the models' tables, no HTTP): 14,000
completed trials with 13 reported epochs, 3,000 pruned (4), 1,000 failed (3), 400 diverged (5), 200
running (5) and 1,400 waiting; 8 parameters (two log-scaled, three categorical); every report
carries the seven metrics the built-in trainer sends. Then a real server (`tuneserve server`, one
process) answers: each endpoint is called once cold and `--calls` times warm (median and p90), and
the study page is loaded `--loads` times in Chromium (time from navigation to the page marking
itself ready: every chart drawn and the table filled).

    nice -n 10 python benchmarks/dashboard.py                  # both backends, 20,000 trials
    python benchmarks/dashboard.py --backends sqlite --trials 2000 --loads 1   # a quick look
Targets: each endpoint <= 300 ms, the page interactive in <= 3 s.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._server import cpu_seconds, start_server  # noqa: E402
from tuneserve_service.db.engine import Database  # noqa: E402
from tuneserve_service.db.migrate import upgrade  # noqa: E402
from tuneserve_service.db.models import Trial, TrialReport  # noqa: E402
from tuneserve_service.domain.core import studies as study_domain  # noqa: E402
from tuneserve.schemas.studies import StudyCreate  # noqa: E402
from tests.support.databases import create_pg_database, drop_pg_database  # noqa: E402

PG_ADMIN = os.environ.get("TUNESERVE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STUDY = "scale"
PARAMETERS = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "weight_decay": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-2},
    "dropout": {"min": 0.0, "max": 0.6},
    "momentum": {"min": 0.5, "max": 0.99},
    "depth": {"distribution": "int_uniform", "min": 2, "max": 6},
    "width": {"values": [16, 32, 64, 128]},
    "batch_size": {"values": [32, 64, 128, 256]},
    "optimizer": {"values": ["sgd", "nesterov", "adam", "adamw"]},
    "dataset": {"value": "cifar10"},
}
# (state, trials, reported steps each) per 20,000 trials: 200,000 reports in all.
MIX = [("completed", 14_000, 13), ("pruned", 3_000, 4), ("failed", 1_000, 3), ("diverged", 400, 5),
       ("running", 200, 5), ("waiting", 1_400, 0)]


def draw_params(rng: np.random.Generator) -> dict:
    return {
        "lr": float(10 ** rng.uniform(-4, 0)), "weight_decay": float(10 ** rng.uniform(-6, -2)),
        "dropout": float(rng.uniform(0, 0.6)), "momentum": float(rng.uniform(0.5, 0.99)),
        "depth": int(rng.integers(2, 7)), "width": int(rng.choice([16, 32, 64, 128])),
        "batch_size": int(rng.choice([32, 64, 128, 256])),
        "optimizer": str(rng.choice(["sgd", "nesterov", "adam", "adamw"])), "dataset": "cifar10",
    }


def final_loss(p: dict) -> float:
    return (0.4 * abs(math.log10(p["lr"]) + 2) + 0.15 * abs(math.log10(p["weight_decay"]) + 4)
            + 0.3 * p["dropout"] + (0.1 if p["optimizer"] == "sgd" else 0) + 0.8 / math.log2(p["width"]))


def build(url: str, trials: int, seed: int = 0) -> None:
    """The study through the domain, then its trials and reports as bulk inserts."""
    db = Database(url, pool_size=2)
    with db.transaction() as s:
        study = study_domain.create_study(s, StudyCreate(
            name=STUDY, method="tpe", parameters=PARAMETERS, max_trials=trials, seed=seed,
            pruner={"type": "median", "grace_period": 3}, description="benchmark: 20k trials"))
        sid = study.id
        s.execute(text("UPDATE studies SET next_number = :n WHERE id = :id"), {"n": trials, "id": sid})
    scale = trials / 20_000
    plan = [(state, int(round(n * scale)), steps) for state, n, steps in MIX]
    plan[0] = ("completed", trials - sum(n for _, n, _ in plan[1:]), plan[0][2])
    states = [(state, steps) for state, n, steps in plan for _ in range(n)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    rng.shuffle(states)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    trial_rows, curves = [], []
    for number, (state, steps) in enumerate(states):
        p = draw_params(np.random.default_rng(np.random.SeedSequence([seed, number])))
        target = final_loss(p)
        values = [target + 2.3 * math.exp(-step / 3) for step in range(1, steps + 1)]
        if state == "diverged" and values:
            values[-1] = float("nan")
        began = start + timedelta(seconds=30 * number)
        ended = state not in ("running", "waiting")
        trial_rows.append(dict(
            study_id=sid, number=number, state=state, params=p, method="tpe", attempt=0,
            worker_id=None if state == "waiting" else f"gpu-{number % 16}",
            value=(values[-1] if state in ("completed", "pruned") else None), metrics={},
            last_step=steps or None, stop_reason="median: below the median" if state == "pruned" else None,
            stop_step=steps if state == "pruned" else None,
            fail_kind={"failed": "oom", "diverged": "diverged"}.get(state),
            fail_reason={"failed": "CUDA out of memory", "diverged": "non-finite val_loss"}.get(state),
            created_at=began, started_at=None if state == "waiting" else began,
            finished_at=began + timedelta(seconds=20 + steps * 3) if ended else None,
            lease_expires_at=None,
        ))
        curves.append(values)
    with db.transaction() as s:
        for i in range(0, len(trial_rows), 2000):
            s.execute(insert(Trial.__table__), trial_rows[i:i + 2000])
    with db.transaction() as s:
        ids = dict(s.execute(text("SELECT number, id FROM trials WHERE study_id = :s"), {"s": sid}).all())
    batch = []
    for number, values in enumerate(curves):
        for step, v in enumerate(values, start=1):
            finite = math.isfinite(v)
            metrics = {"val_loss": v if finite else "NaN", "train_loss": (v - 0.1) if finite else "NaN",
                       "val_acc": 1 / (1 + v) if finite else 0.1, "train_acc": 1 / (1 + v * 0.9) if finite else 0.1,
                       "lr": 0.01, "grad_norm": 3.0 / step, "update_ratio": 1e-3}
            batch.append(dict(trial_id=ids[number], step=step, value=v if finite else None, metrics=metrics,
                              created_at=start))
        if len(batch) >= 20_000:
            with db.transaction() as s:
                s.execute(insert(TrialReport.__table__), batch)
            batch = []
    if batch:
        with db.transaction() as s:
            s.execute(insert(TrialReport.__table__), batch)
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    db.dispose()


def endpoints(trial_id: int) -> list[tuple[str, str]]:
    b = f"/dashboard/api/studies/{STUDY}"
    return [
        ("studies list", "/dashboard/api/studies"),
        ("study summary (polled)", b),
        ("history (all trials)", f"{b}/history"),
        ("learning curves", f"{b}/curves"),
        ("params (parcoords, slices)", f"{b}/params"),
        ("importance", f"{b}/importance"),
        ("trial table, first page", f"{b}/trials?order=desc&limit=50"),
        ("trial table, filtered+sorted", f"{b}/trials?state=completed&value_max=1.2&param=lr:0.001:0.1"
                                          f"&param=optimizer=adam&sort=params.weight_decay&limit=50&offset=50"),
        ("trial page data", f"/dashboard/api/trials/{trial_id}"),
    ]


def time_endpoints(base: str, calls: int, pid: int) -> list[dict]:
    out = []
    with httpx.Client(base_url=base, timeout=120) as c:
        trial_id = c.get(f"/api/v1/studies/{STUDY}/trials", params={"state": "completed", "limit": 1}).json()["items"][0]["id"]
        for label, path in endpoints(trial_id):
            t0 = time.perf_counter()
            r = c.get(path)
            cold = (time.perf_counter() - t0) * 1000
            r.raise_for_status()
            times = []
            cpu0 = cpu_seconds(pid)
            for _ in range(calls):
                t0 = time.perf_counter()
                c.get(path).raise_for_status()
                times.append((time.perf_counter() - t0) * 1000)
            cpu = (cpu_seconds(pid) - cpu0) * 1000 / calls
            times.sort()
            out.append({"endpoint": label, "cold_ms": cold, "median_ms": statistics.median(times), "cpu_ms": cpu,
                        "p90_ms": times[min(len(times) - 1, int(math.ceil(0.9 * len(times))) - 1)],
                        "kb": len(r.content) / 1024})
    return out


def time_page(base: str, loads: int) -> list[float]:
    from tests.support.browser import chromium, find_chromium, wait_ready

    if find_chromium()[2]:
        print(f"  (no page timing: {find_chromium()[2]})")
        return []
    times = []
    with chromium() as driver:
        for _ in range(loads):
            driver.get(f"{base}/dashboard/studies/{STUDY}")
            times.append(wait_ready(driver, timeout=120))
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            if errors:
                print("  console errors:", errors)
    return times


def run_backend(backend: str, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="tuneserve-dash-bench-"))
    url = f"sqlite:///{tmp / 'bench.db'}" if backend == "sqlite" else create_pg_database(PG_ADMIN, "tuneserve_bench")
    try:
        upgrade(url)
        t0 = time.perf_counter()
        build(url, args.trials)
        print(f"{backend}: built {args.trials} trials in {time.perf_counter() - t0:.1f} s", flush=True)
        proc, base = start_server(url)
        try:
            rows = time_endpoints(base, args.calls, proc.pid)
            page = time_page(base, args.loads)
        finally:
            proc.terminate()
            proc.wait(30)
        return {"backend": backend, "endpoints": rows, "page_ms": page}
    finally:
        if backend == "postgres":
            drop_pg_database(url, PG_ADMIN)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--trials", type=int, default=20_000)
    ap.add_argument("--calls", type=int, default=9, help="warm calls per endpoint")
    ap.add_argument("--loads", type=int, default=3, help="study page loads in Chromium")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    results = [run_backend(b, args) for b in args.backends.split(",") if b]
    print(f"\n{args.trials} trials, {sum(n * s for _, n, s in MIX) * args.trials // 20_000} reports; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; warm calls: {args.calls}\n")
    print("wall: median / p90 (first, cold) ms; cpu: server CPU ms per warm call\n")
    print("| endpoint | " + " | ".join(f"{r['backend']} wall | {r['backend']} cpu" for r in results) + " | size KB |")
    print("|---|" + "---|---|" * len(results) + "---|")
    for i, row in enumerate(results[0]["endpoints"]):
        cells = [f"{r['endpoints'][i]['median_ms']:.0f} / {r['endpoints'][i]['p90_ms']:.0f} "
                 f"({r['endpoints'][i]['cold_ms']:.0f}) | {r['endpoints'][i]['cpu_ms']:.0f}" for r in results]
        print(f"| {row['endpoint']} | " + " | ".join(cells) + f" | {row['kb']:.0f} |")
    for r in results:
        if r["page_ms"]:
            print(f"study page time to interactive, {r['backend']}: "
                  + ", ".join(f"{t / 1000:.2f} s" for t in r["page_ms"]) + " (first load has a cold browser cache)")
    worst = max(e["p90_ms"] for r in results for e in r["endpoints"])
    worst_cpu = max(e["cpu_ms"] for r in results for e in r["endpoints"])
    print(f"\nslowest endpoint: p90 {worst:.0f} ms wall, {worst_cpu:.0f} ms server CPU (target <= 300); "
          f"slowest page load: {max((t for r in results for t in r['page_ms']), default=float('nan')) / 1000:.2f} s (target <= 3)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
