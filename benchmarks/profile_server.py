"""Where one server process spends its CPU under api_throughput's load: py-spy (a sampling profiler,
every thread, sampled only while it holds the GIL: Python CPU time, not waits) records `tuneserve server` on PostgreSQL while the per-epoch and
batched shapes and the report+heartbeat pairs run against it, then the samples are folded into the
functions of this project and of its libraries, by own time and by inclusive time.

Usage: python benchmarks/profile_server.py [--trials 1000] [--top 25] [--raw FILE]
(needs `pip install py-spy`; the report goes to stdout, the raw samples to --raw)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_throughput as bench  # noqa: E402
from _server import ROOT  # noqa: E402

from tuneserve_service.launch import ServerDidNotStart, free_port, wait_healthy  # noqa: E402

FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^()]*):\d+\)$")


def _where(file: str) -> str:
    """A short module-ish name for a frame's file: the package path after site-packages or the repo."""
    for marker in ("site-packages/", "/wt-", "/lib/python3"):
        if marker in file:
            tail = file.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/wt-" else tail
    return file


def fold(raw: Path) -> tuple[int, Counter, Counter, Counter]:
    """(samples, own samples by function, inclusive samples by function, own samples by package),
    leaving out start-up imports."""
    own, incl, pkg = Counter(), Counter(), Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        if "_find_and_load" in stack:  # start-up imports (the optimizers' warm-up): not the request path
            continue
        total += n
        frames = []
        for f in stack.split(";"):
            m = FRAME.match(f)
            frames.append(f"{m['fn']} ({_where(m['file'])})" if m else f)
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
        pkg[frames[-1].rsplit("(", 1)[-1].split("/", 1)[0].rstrip(")")] += n
    return total, own, incl, pkg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--rate", type=int, default=100, help="samples per second")
    ap.add_argument("--raw", default=None, help="keep the raw folded samples here")
    ap.add_argument("--shapes", default="per-epoch,batched,pairs",
                    help="which loads to profile, comma-separated (pairs alone shows the keep-alive path)")
    ap.add_argument("--pairs-seconds", type=float, default=10.0)
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = Path(args.raw or tempfile.mktemp(suffix=".txt", prefix="tuneserve-profile-"))
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = bench.fresh_database("postgres", tmp)
        port = free_port()
        env = {**os.environ, "TUNESERVE_DATABASE_URL": url, "TUNESERVE_LOG_LEVEL": "warning"}
        proc = subprocess.Popen(
            [spy, "record", "-f", "raw", "--gil", "--nonblocking", "-r", str(args.rate), "-o", str(raw), "--",
             sys.executable, "-m", "tuneserve_service.cli", "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(proc, base, timeout=180)
            shapes = args.shapes.split(",")
            for shape in ("per-epoch", "batched"):
                if shape in shapes:
                    r = asyncio.run(bench.run_shape(base, shape, args.trials, args.workers, 60.0))
                    print(f"{shape}: {r['trials_per_s']:.1f} trials/s ({r['completed']} trials)")
            if "pairs" in shapes:
                pairs = asyncio.run(bench.keepalive_capacity(base, args.workers, args.pairs_seconds))
                print(f"report+heartbeat pairs: {pairs:.1f}/s")
        except ServerDidNotStart:
            raise
        finally:
            # py-spy writes its file when its child exits: stop the server (py-spy's child), then py-spy.
            server = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            for pid in server:
                os.kill(int(pid), signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                proc.wait(15)
            drop()
    report(raw, args.rate, args.top)


def report(raw: Path, rate: int, top: int) -> None:
    total, own, incl, pkg = fold(raw)
    print(f"\n{total} samples at {rate}/s ({total / rate:.1f} s of Python CPU in the server process, "
          f"start-up imports left out)")
    print(f"\nown time, top {top}:")
    for f, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    print(f"\ninclusive time of this project's functions (service/), top {top}:")
    for f, n in [(f, n) for f, n in incl.most_common() if "(service/" in f][:top]:
        print(f"  {100 * n / total:5.1f}%  {f}")
    print(f"\ninclusive time of library functions on the request path, top {top}:")
    for f, n in [(f, n) for f, n in incl.most_common() if "(service/" not in f and "<" not in f][:top]:
        print(f"  {100 * n / total:5.1f}%  {f}")
    print("\nown time by package:")
    for p, n in pkg.most_common(20):
        print(f"  {100 * n / total:5.1f}%  {p}")
    print(f"\nraw samples: {raw}")


if __name__ == "__main__":
    main()
