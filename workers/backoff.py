"""`Backoff`: the daemon's own sleep policy between claims when there is no work, after the server
could not be reached, and between restarts of a slot. HTTP retries are the transport's
(tuneserve/_transport.py, the same full jitter with a floor); this is for the loop around them."""
from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with full jitter: sleep a random time in [0, min(cap, base * 2^n)]."""

    def __init__(self, base: float = 0.2, cap: float = 5.0):
        self.base, self.cap, self.attempt = base, cap, 0

    def next(self) -> float:
        delay = random.uniform(0, min(self.cap, self.base * 2 ** self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        # Never a zero sleep: a server that is down must not turn the worker into a busy loop.
        return max(delay, self.base / 4)

    def reset(self) -> None:
        self.attempt = 0
