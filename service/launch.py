"""Starting a server process on this machine: a free loopback port, and waiting until it answers.

Shared by the demo (service/cli/demo.py), the benchmarks (benchmarks/_server.py) and the end-to-end
tests (tests/support/live_server.py), which each start the server their own way.
"""
from __future__ import annotations

import os
import random
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx


class ServerDidNotStart(RuntimeError):
    """The process exited, or /healthz did not answer 200 in time."""


# Ports handed out come from below Linux's ephemeral range (32768-60999 by default), so no outgoing
# connection (to PostgreSQL, an HTTP client) can take one between the pick and the server's bind, and
# each is reserved by a file for an hour, so two processes started side by side (pytest-xdist
# workers, a demo beside a benchmark) never pick the same one: the kernel's port 0 gave one port to
# two test servers; the second failed to bind while the first answered both tests' /healthz.
_PORTS = range(20000, 32000)
_RESERVED = Path(tempfile.gettempdir()) / "tuneserve-ports"
_RESERVATION_S = 3600.0


def free_port() -> int:
    """A loopback port that binds now and that no other caller of free_port was given in the last hour."""
    _RESERVED.mkdir(exist_ok=True)
    rng = random.Random()  # not a study stream: any spread of ports will do
    for _ in range(200):
        port = rng.choice(_PORTS)
        mark = _RESERVED / str(port)
        try:
            if time.time() - mark.stat().st_mtime < _RESERVATION_S:
                continue
            mark.unlink(missing_ok=True)  # an old reservation: the port is free to take again
        except FileNotFoundError:
            pass
        try:
            os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue  # another process reserved it just now
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use by something else: keep the mark, try another
        return port
    with socket.socket() as s:  # every try was taken: the kernel's choice
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
