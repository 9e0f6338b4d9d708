"""A real tuneserve server in a subprocess on a free loopback port, for the benchmarks."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_url: str, processes: int = 1) -> tuple[subprocess.Popen, str]:
    """`tuneserve server` on 127.0.0.1; returns the process and its base URL once /healthz answers."""
    port = free_port()
    env = {**os.environ, "TUNESERVE_DATABASE_URL": db_url, "TUNESERVE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(processes)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")
