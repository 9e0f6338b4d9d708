"""A real uvicorn server in a subprocess on a loopback port, for end-to-end tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tuneserve_service.launch import ServerDidNotStart, free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


class LiveServer:
    """`start()` spawns uvicorn on 127.0.0.1 and waits for /healthz; `stop()` then `start()` again
    restarts it on the same port (for outage tests)."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None, port: int | None = None,
                 log_path: Path | None = None):
        self.database_url = database_url
        self.port = port or free_port()
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = log_path

    @classmethod
    def on_sqlite(cls, folder: Path, **kwargs) -> "LiveServer":
        """A server over `folder`/tuneserve.db, logging to `folder`/server.log."""
        return cls(f"sqlite:///{folder / 'tuneserve.db'}", log_path=folder / "server.log", **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> "LiveServer":  # a loaded 2-core CI box can be slow to import
        env = {**os.environ, "TUNESERVE_DATABASE_URL": self.database_url, "TUNESERVE_REAPER_INTERVAL": "0.5",
               **self.env}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "tuneserve_service.main:create_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log",
             # The slow-header deadline lives in the protocol (service/serving.py).
             "--http", "tuneserve_service.serving:GuardedHttpProtocol"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(self.proc, self.url, timeout)
        except ServerDidNotStart as err:
            self.stop()
            raise RuntimeError(f"{err} (log: {self.log_path})") from err
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye (a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "LiveServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
