"""What the worker bookkeeping adds to a claim: the objective filter and the `workers` row upsert
(service/store/workers.py), measured in-process on one database, interleaved so machine load hits
both sides alike.

Each round claims a block of waiting trials three ways, in turn: as an old client (no objective;
the filter only), as a worker naming its objective (filter + upsert, throttled to one write per
worker every 5 s), and with the bookkeeping switched off (the claim as it was). Prints the median
milliseconds per claim of each and the ratios. All work stays on this machine's databases.

Usage: python benchmarks/claim_bookkeeping.py [--backends postgres,sqlite] [--rounds 15] [--block 40]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuneserve_service.db.engine import Database  # noqa: E402
from tuneserve_service.db.migrate import upgrade  # noqa: E402
from tuneserve_service.domain.core import protocol  # noqa: E402
from tuneserve_service.domain.core import studies as study_domain  # noqa: E402
from tuneserve.schemas.studies import StudyCreate  # noqa: E402
from tuneserve_service.store import workers as worker_store  # noqa: E402
from tests.support.databases import create_pg_database, drop_pg_database  # noqa: E402


def prepare(db: Database, trials: int) -> None:
    with db.transaction() as s:
        study_domain.create_study(s, StudyCreate(
            name="bench", method="random", objective="builtin:cnn", max_trials=trials, seed=0,
            parameters={"lr": {"min": 0.001, "max": 0.1}}))
    with db.transaction() as s:
        for _ in range(trials):
            study_domain.enqueue(s, "bench", {"lr": 0.01})


def timed_block(db: Database, block: int, objective: str | None, worker: str) -> float:
    started = time.perf_counter()
    for _ in range(block):
        assert protocol.claim(db, worker, None, objective) is not None
    return (time.perf_counter() - started) * 1000 / block


def measure(url: str, rounds: int, block: int) -> dict[str, float]:
    upgrade(url)
    db = Database(url, pool_size=4)
    prepare(db, rounds * block * 3)
    real = worker_store.record_seen
    times: dict[str, list[float]] = {"old client": [], "worker": [], "off": []}
    try:
        for _ in range(rounds):
            times["old client"].append(timed_block(db, block, None, "old"))
            times["worker"].append(timed_block(db, block, "builtin:cnn", "w"))
            worker_store.record_seen = lambda *a, **k: None
            try:
                times["off"].append(timed_block(db, block, "*", "off"))  # "*": no filter either
            finally:
                worker_store.record_seen = real
    finally:
        db.dispose()
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="postgres,sqlite")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--block", type=int, default=40)
    args = ap.parse_args()
    print(f"claim_bookkeeping: {args.rounds} rounds x {args.block} claims per way, waiting trials, one process")
    print(f"{'backend':9} {'off ms':>8} {'old client ms':>14} {'worker ms':>10} {'old/off':>8} {'worker/off':>11}")
    for backend in args.backends.split(","):
        if backend == "postgres":
            url = create_pg_database()
            try:
                r = measure(url, args.rounds, args.block)
            finally:
                drop_pg_database(url)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                r = measure(f"sqlite:///{tmp}/bench.db", args.rounds, args.block)
        print(f"{backend:9} {r['off']:8.3f} {r['old client']:14.3f} {r['worker']:10.3f} "
              f"{r['old client'] / r['off']:8.2f} {r['worker'] / r['off']:11.2f}")


if __name__ == "__main__":
    main()
