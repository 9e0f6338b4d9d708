"""This tree's server against another revision's, alternating rounds: api_throughput's shapes and
report+heartbeat pairs, each side in a fresh PostgreSQL (or SQLite) database, with the same client.

Shapes: per-epoch and batched trials/s; report+heartbeat pairs/s (a heartbeat after every report, on
both sides: the raw cost of the two requests); keep-alive epochs/s (a report plus the heartbeat that
side's own worker protocol sends: after every report for a revision without `needs_heartbeat`, such
as c026e81, else only when the report's answer asks for one). The last two are different figures.

REV is checked out into a temporary git worktree with its own virtual environment (a pip install of
REV's project, kept under --cache and reused by later runs). Each server runs from its own tree
(c026e81 imports `service` as a top-level package from its working directory; later revisions
install `tuneserve_service`), with its own Python, so neither side sees the other's code. The load
generator is this tree's api_throughput.py (the wire protocol it speaks is the first release's).
Rounds alternate which side goes first. Prints every round, then each shape's median and spread
(min-max) per side and the ratio of medians (this tree / REV), with the load average of the box.

Usage: python benchmarks/compare_rev.py --against c026e81 [--rounds 3] [--trials 1500] [--backend postgres]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_throughput as bench  # noqa: E402
from _server import ROOT  # noqa: E402

from tuneserve_service.launch import ServerDidNotStart, free_port, wait_healthy  # noqa: E402

SHAPES = ("per-epoch", "batched", "pairs", "keepalive")


@dataclass
class Side:
    name: str
    tree: Path
    python: str
    module: str  # the module whose `server` subcommand starts uvicorn


def _run(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout.strip()


def build_rev(rev: str, cache: Path) -> Side:
    """REV in a git worktree under `cache` with its own venv (built once per commit)."""
    sha = _run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"])
    home = cache / f"rev-{sha[:12]}"
    tree, venv = home / "tree", home / "venv"
    if not (tree / "pyproject.toml").exists():
        home.mkdir(parents=True, exist_ok=True)
        _run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(tree), sha])
    python = str(venv / "bin" / "python")
    if not (venv / ".built").exists():
        print(f"building {rev} ({sha[:12]}) in {home}: venv + pip install of its project ...", flush=True)
        _run([sys.executable, "-m", "venv", str(venv)])
        # Since the client installs alone (issue 16), the server is the `server` extra.
        extra = "[server]" if "\nserver = [" in (tree / "pyproject.toml").read_text() else ""
        _run([python, "-m", "pip", "install", "-q", f"{tree}{extra}"])
        (venv / ".built").write_text(sha)
    module = "tuneserve_service.cli" if "tuneserve_service" in (tree / "pyproject.toml").read_text() else "service.cli"
    return Side(f"{rev}", tree, python, module)


def start(side: Side, url: str, processes: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "TUNESERVE_DATABASE_URL": url, "TUNESERVE_LOG_LEVEL": "warning"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen(
        [side.python, "-m", side.module, "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(processes)], cwd=side.tree, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, timeout=180)
    except ServerDidNotStart:
        proc.kill()
        raise
    return proc, base


def one_round(side: Side, backend: str, args) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = bench.fresh_database(backend, tmp)
        proc, base = start(side, url, args.processes)
        try:
            out = {}
            for shape in ("per-epoch", "batched"):
                r = asyncio.run(bench.run_shape(base, shape, args.trials, args.workers, args.limit_s))
                if r["duplicates"] or r["errors"]:
                    print(f"  !! {side.name} {shape}: {r['duplicates']} duplicates, {r['errors']} errors")
                out[shape] = r["trials_per_s"]
            out["pairs"] = asyncio.run(bench.keepalive_capacity(base, args.workers, args.pairs_s))
            out["keepalive"] = asyncio.run(bench.keepalive_capacity(base, args.workers, args.pairs_s, protocol=True))
            return out
        finally:
            proc.terminate()
            proc.wait(15)
            drop()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} [{min(values):.1f}-{max(values):.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", required=True, help="the revision to compare with (e.g. c026e81)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=1500)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--limit-s", type=float, default=60.0)
    ap.add_argument("--pairs-s", type=float, default=10.0, help="seconds of report+heartbeat pairs")
    ap.add_argument("--backend", default="postgres", choices=("postgres", "sqlite"))
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "tuneserve-compare"))
    args = ap.parse_args()
    other = build_rev(args.against, Path(args.cache))
    here = Side("this tree", ROOT, sys.executable, "tuneserve_service.cli")
    sides = (other, here)
    results: dict[str, dict[str, list[float]]] = {s.name: {k: [] for k in SHAPES} for s in sides}
    print(f"compare_rev: this tree vs {args.against}, {args.backend}, {args.processes} process(es), "
          f"{args.workers} workers, {args.trials} trials a shape, {args.rounds} rounds; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    for i in range(args.rounds):
        for side in (sides if i % 2 == 0 else sides[::-1]):
            r = one_round(side, args.backend, args)
            for k in SHAPES:
                results[side.name][k].append(r[k])
            print(f"round {i + 1} {side.name:10} per-epoch {r['per-epoch']:7.1f} trials/s  batched "
                  f"{r['batched']:7.1f} trials/s  pairs {r['pairs']:7.1f}/s  keep-alive epochs {r['keepalive']:7.1f}/s  (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    print(f"\n{'shape':10} {args.against + ' median [min-max]':>28} {'this tree median [min-max]':>28} "
          f"{'ratio':>7} {'ratio range':>13}")
    for k in SHAPES:
        a, b = results[other.name][k], results[here.name][k]
        ratio = statistics.median(b) / statistics.median(a)
        lo, hi = min(b) / max(a), max(b) / min(a)
        print(f"{k:10} {spread(a):>28} {spread(b):>28} {ratio:6.2f}x {lo:5.2f}-{hi:5.2f}x")
    print(f"(per-epoch and batched: completed trials/s; pairs: report+heartbeat pairs/s, a heartbeat after every "
          f"report on both sides; keepalive: worker epochs/s, each a report plus the heartbeat that side's own "
          f"worker protocol sends (after every report for a server without needs_heartbeat, else only when the "
          f"report's answer asks for one): not the pairs figure. Load average at the end {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%H:%M UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
