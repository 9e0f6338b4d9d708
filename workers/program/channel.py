"""The report channel between a worker and the program it runs: a Unix socket, JSON lines.

Each line a program sends is parsed here (on the connection's thread) and handed to the worker's
main thread through `inbox` as a `Message`; the connection waits for the main thread's answer
before it reads the next line, so a program that reports is held back while the server decides,
exactly like the built-in trainer. A line that is not a valid message is answered
`{"error": ...}` at once. The protocol itself is documented in tuneserve/report.py.
"""
from __future__ import annotations

import json
import os
import queue
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

MAX_LINE = 1_048_576  # a report is a few hundred bytes; a megabyte line is a broken program


@dataclass
class Message:
    kind: str                                   # "report" | "summary"
    step: int | None
    metrics: dict[str, float]
    _answer: "queue.Queue[dict[str, Any]]" = field(default_factory=lambda: queue.Queue(maxsize=1))

    def answer(self, reply: dict[str, Any]) -> None:
        self._answer.put(reply)


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"metric {name!r} must be a number, got {value!r}")
    return float(value)


def parse_line(line: bytes) -> Message:
    """A Message from one line, or ValueError saying what is wrong with it."""
    try:
        doc = json.loads(line)
    except ValueError as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError("each line must be a JSON object")
    if "summary" in doc:
        metrics = doc["summary"]
        kind, step = "summary", None
    elif "step" in doc:
        step = doc["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        metrics, kind = doc.get("metrics", {}), "report"
    else:
        raise ValueError('a line needs "step" and "metrics", or "summary"')
    if not isinstance(metrics, dict) or not all(isinstance(k, str) and k for k in metrics):
        raise ValueError("metrics must be an object of name -> number")
    clean = {k: _number(k, v) for k, v in metrics.items()}
    return Message(kind, step, {k: v for k, v in clean.items() if v is not None})


class ReportChannel:
    """Listens on `<directory>/report.sock` (mode 0600) until `close()`."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "report.sock")
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.closed = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        os.chmod(self.path, 0o600)
        self.server.listen(16)
        self.server.settimeout(0.2)
        self.connections: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self.acceptor = threading.Thread(target=self._accept, name="report-accept", daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.sockets.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), name="report-conn", daemon=True)
            self.connections.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        with conn, conn.makefile("rb") as reader:
            while not self.closed.is_set():
                try:
                    line = reader.readline(MAX_LINE + 1)
                except OSError:
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    if len(line) > MAX_LINE:
                        raise ValueError(f"line longer than {MAX_LINE} bytes")
                    message = parse_line(line)
                except ValueError as err:
                    reply: dict[str, Any] = {"error": str(err)}
                else:
                    self.inbox.put(message)
                    reply = self._wait(message)
                try:
                    conn.sendall((json.dumps(reply, allow_nan=True) + "\n").encode())
                except OSError:
                    return

    def _wait(self, message: Message) -> dict[str, Any]:
        while True:
            try:
                return message._answer.get(timeout=0.2)
            except queue.Empty:
                if self.closed.is_set():
                    return {"continue": False, "reason": "the trial has ended"}

    def close(self, join_timeout: float = 2.0) -> None:
        """Stop accepting; connections still open get a stop answer and end."""
        self.closed.set()
        try:
            self.server.close()
            self.acceptor.join(join_timeout)
            for conn in self.sockets:
                # A process that outlived the program (a data loader child) may still hold its end.
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        finally:
            for t in self.connections:
                t.join(join_timeout)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

