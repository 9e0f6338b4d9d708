"""A scheduler's warning (SIGUSR1: Slurm `--signal=B:USR1@T` before a time limit or preemption) that
arrives while the worker is still starting (importing torch takes seconds): recorded from the first
lines of `tuneserve worker` on, instead of killing the process by SIGUSR1's default action, and acted
on once the loop starts (Worker.run drains at once: it claims nothing). The sbatch script also
ignores USR1 (`trap '' USR1`) until python takes over, so no window is left where it kills."""
from __future__ import annotations

import signal
import threading

_warned: list[int] = []


def _record(signum: int, frame: object) -> None:
    _warned.append(signum)


def install_early() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, _record)


def warned() -> bool:
    return bool(_warned)
