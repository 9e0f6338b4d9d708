"""A real tuneserve server in a subprocess on a free loopback port, for the benchmarks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuneserve_service.launch import ServerDidNotStart, free_port, wait_healthy  # noqa: E402


def start_server(db_url: str, processes: int = 1, timeout: float = 30.0, env_extra: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`tuneserve server` on 127.0.0.1; returns the process and its base URL once /healthz answers."""
    port = free_port()
    env = {**os.environ, "TUNESERVE_DATABASE_URL": db_url, "TUNESERVE_LOG_LEVEL": "warning", **(env_extra or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneserve_service.cli", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(processes)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, timeout=timeout)
    except ServerDidNotStart:
        proc.kill()
        raise
    return proc, base


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): what a request costs the server,
    whatever else the machine is running."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
