"""The fault suite at full size: one table row per scenario and backend.

Scenarios (tests/support/faults.py; the CI tests in tests/test_faults_live.py run them small):
  load                64 workers x 2,000 trials, no fault
  db outage           the same, with the database gone for 15 s about a second in (PostgreSQL: the
                      servers' connections terminated and new ones refused; SQLite: the file locked)
  server kill -9      the same, with the server killed (SIGKILL) and restarted
  worker paused       every 5th trial of each worker stalls past its 2 s lease before completing
  max_concurrent C    two server processes on one database, C = 1, 4, 8, workers claiming and asking
                      through both; running trials sampled every 100 ms
  auth                good, wrong, revoked, non-ASCII and other workers' tokens, then a study run
  bodies              oversized (declared and chunked), slow-body, slow-header, 5000-deep JSON and
                      3000-deep YAML requests while workers run

Each row: duplicated, lost, budget exact, 5xx (503 inside the outage / any other), the most trials
running at once (sampled / held by the workers) against the limit, seconds, and whether the row
passed. Exit status 1 when any row failed. All traffic goes to 127.0.0.1.

Usage: python benchmarks/faults.py [--backends postgres,sqlite] [--workers 64] [--trials 2000]
       [--outage 15] [--scenarios load,outage,kill9,paused,cap,auth,bodies] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import faults  # noqa: E402

HEADER = (f"{'scenario':34} {'backend':8} {'size':9} {'dup':>4} {'lost':>5} {'budget':>6} {'503 out.':>8} "
          f"{'other 5xx':>9} {'max run':>9} {'limit':>5} {'secs':>6} {'ok':>3}  notes")


def row(o: faults.Outcome) -> str:
    running = f"{o.max_running}/{o.max_running_client}"
    return (f"{o.scenario[:34]:34} {o.backend:8} {o.size:9} {o.duplicated:4d} {o.lost:5d} "
            f"{'exact' if o.budget_exact else 'NO':>6} {o.fivexx_in_outage:8d} {o.fivexx_other:9d} {running:>9} "
            f"{'-' if o.limit is None else o.limit:>5} {o.seconds:6.1f} {'yes' if o.ok else 'NO':>3}  {o.notes}"
            + (f" FAILED: {o.failed_checks}" if o.failed_checks else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="postgres,sqlite")
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--outage", type=float, default=15.0)
    ap.add_argument("--cap-trials", type=int, default=200, help="trials per max_concurrent study")
    ap.add_argument("--scenarios", default="load,outage,kill9,paused,cap,auth,bodies")
    ap.add_argument("--quick", action="store_true", help="CI-like sizes (16 workers, 300 trials, 5 s outage)")
    args = ap.parse_args()
    if args.quick:
        args.workers, args.trials, args.outage, args.cap_trials = 16, 300, 5.0, 60
    chosen = args.scenarios.split(",")
    w, n = args.workers, args.trials
    print(f"faults: {w} workers x {n} trials, {args.outage:g} s outage, {os.cpu_count()} CPUs (servers, databases "
          f"and workers share them)\n", flush=True)
    print(HEADER, flush=True)
    outcomes = []
    for backend in args.backends.split(","):
        runs = []
        if "load" in chosen:
            runs.append(lambda: faults.scenario_load(backend, w, n))
        if "outage" in chosen:
            runs.append(lambda: faults.scenario_load(backend, w, n, outage_s=args.outage))
        if "kill9" in chosen:
            runs.append(lambda: faults.scenario_load(backend, w, n, kill9=True))
        if "paused" in chosen:
            runs.append(lambda: faults.scenario_paused_worker(backend, 16, max(60, n // 10)))
        if "cap" in chosen:
            for cap, method in ((1, "tpe"), (4, "gp"), (8, "random")):
                runs.append(lambda cap=cap, method=method: faults.scenario_max_concurrent(
                    backend, cap, 16, args.cap_trials, method=method))
        if "auth" in chosen:
            runs.append(lambda: faults.scenario_auth(backend, 8, 200))
        if "bodies" in chosen:
            runs.append(lambda: faults.scenario_bodies(backend, 8, 300))
        for run in runs:
            t0 = time.monotonic()
            try:
                outcome = run()
            except Exception as err:  # noqa: BLE001 - one broken scenario should not hide the others
                print(f"scenario failed to run on {backend} after {time.monotonic() - t0:.0f} s: {err!r}", flush=True)
                outcomes.append(None)
                continue
            outcomes.append(outcome)
            print(row(outcome), flush=True)
    failed = [o for o in outcomes if o is None or not o.ok]
    print(f"\n{len(outcomes) - len(failed)}/{len(outcomes)} rows passed "
          "(0 duplicated, 0 lost, budget exact, no 5xx but 503 in an outage, max running <= limit)")
    print("max run = most trials in state running, sampled every 100 ms / most leases the workers held at once; "
          "a reservation counts as running from the moment its number is taken")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
