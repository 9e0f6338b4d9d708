"""Starting a server process on this machine: a free loopback port, and waiting until it answers.

Shared by the demo (service/cli/demo.py), the benchmarks (benchmarks/_server.py) and the end-to-end
tests (tests/support/live_server.py), which each start the server their own way.
"""
from __future__ import annotations

import socket
import subprocess
import time

import httpx


class ServerDidNotStart(RuntimeError):
    """The process exited, or /healthz did not answer 200 in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, base_url: str, timeout: float, poll: float = 0.1) -> None:
    """Return once GET {base_url}/healthz answers 200; raise ServerDidNotStart when `proc` exits
    first or `timeout` seconds pass (the process is left running: the caller stops it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerDidNotStart(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(poll)
    raise ServerDidNotStart(f"the server did not answer /healthz in {timeout:g} s")
