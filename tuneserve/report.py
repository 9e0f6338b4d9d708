"""Report from a training program that a tuneserve worker runs: `report(step, **metrics) -> bool`.

A worker running a sweep's `program` passes the path of a Unix socket in TUNESERVE_REPORT_SOCKET.
The protocol is one JSON object per line, each answered by one JSON line (any language can speak it):

    -> {"step": 3, "metrics": {"train_loss": 0.41, "val_loss": 0.52}}
    <- {"continue": true}                      or {"continue": false, "reason": "pruned: ..."}
    -> {"summary": {"val_loss": 0.50, "val_acc": 0.91}}      final metrics (optional)
    <- {"ok": true}
    <- {"error": "..."}                        the line was not understood (nothing was stored)

This module is that protocol for Python, with the standard library only. Outside a worker (the
script run by hand) `report` does nothing and returns True, so the same script runs either way.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
from typing import Any

SOCKET_ENV = "TUNESERVE_REPORT_SOCKET"


class _Channel:
    """One connection per process (re-opened after a fork), one request at a time."""

    def __init__(self, path: str):
        self.path, self.pid = path, os.getpid()
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.reader = None

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(self.path)
                self.reader = self.sock.makefile("rb")
            self.sock.sendall((json.dumps(message, allow_nan=True) + "\n").encode())
            line = self.reader.readline()
            if not line:
                raise ConnectionError("the worker closed the report channel")
            return json.loads(line)


_channel: _Channel | None = None
_warned = False


def in_trial() -> bool:
    """True when this process runs under a tuneserve worker (a report channel is open)."""
    return bool(os.environ.get(SOCKET_ENV))


def _ask(message: dict[str, Any]) -> dict[str, Any] | None:
    global _channel, _warned
    path = os.environ.get(SOCKET_ENV)
    if not path:
        return None
    if _channel is None or _channel.path != path or _channel.pid != os.getpid():
        _channel = _Channel(path)
    try:
        answer = _channel.ask(message)
    except (OSError, ValueError) as exc:
        if not _warned:
            print(f"tuneserve: the worker's report channel is gone ({exc}); stopping", file=sys.stderr)
            _warned = True
        return {"continue": False, "reason": "worker gone"}
    if "error" in answer:
        raise ValueError(f"tuneserve worker refused the report: {answer['error']}")
    return answer


def report(step: int, **metrics: float) -> bool:
    """Send one step's metrics (step = epochs done, from 1); True to go on, False when the trial
    should stop (a pruner's decision, a stopped study, a draining worker). The worker also sends
    SIGTERM when it stops a trial, so a program that ignores the answer is stopped all the same."""
    answer = _ask({"step": int(step), "metrics": {name: float(value) for name, value in metrics.items()}})
    return True if answer is None else bool(answer.get("continue", True))


def summary(**metrics: float) -> None:
    """Final metrics of the run; the study metric among them becomes the trial's value (otherwise
    the last reported value of the study metric is)."""
    _ask({"summary": {name: float(value) for name, value in metrics.items()}})
