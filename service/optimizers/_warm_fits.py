"""The botorch engine's fitted GP hyper-parameters, kept in the process by the exact data they were
fitted on (`key`: the inputs and targets as tensors, exactly, and the options of the fit).

A fit is a function of what it is keyed by: the engine seeds a fit's retries from its data, and a
warm-started fit starts from the cold fit of a *checkpoint* of the same history (`checkpoint`), whose
data is part of the key. So an entry is the fit a fresh process would make, and a hit gives the answer
a miss gives ("same seed and history give the same answer", tests/test_optimizer_contract.py). Two
uses:

- **the same data again**: a second suggestion on the same results (the draw-ahead's, core/draw_ahead.py:
  after each answer, two more suggestions on the same results with the answered trial pending) takes
  the first one's hyper-parameters instead of fitting again.
- **the checkpoint's cold fit**: the fit on n results starts from the cold fit of the history's first
  `checkpoint(n, every)` results. In a running study that is the fit the study made when it had that
  many results, found here; in a fresh process (a restart, a replay) it is computed, the same.

The cache is bounded (least recently used out first); a miss costs time, never a different answer.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

MAX_FITS = 64

_lock = threading.Lock()
_fits: OrderedDict[tuple, dict[str, Any]] = OrderedDict()


def key(X: Any, Y: Any, *options: Any) -> tuple:
    """The key of a fit: its inputs and targets (tensors, exactly) and the options it ran with."""
    digest = hashlib.sha1(X.detach().numpy().tobytes() + b"|" + Y.detach().numpy().tobytes()).hexdigest()
    return (tuple(X.shape), digest, *options)


def checkpoint(n: int, every: int) -> int:
    """How many of the first results of a history of `n` make its checkpoint: n rounded down to a
    multiple of `every` (n itself when it is one: the fit is then cold)."""
    return n - n % every if every > 1 else n


def fitted(k: tuple) -> dict[str, Any] | None:
    """The hyper-parameters a fit keyed `k` ended with in this process, else None."""
    with _lock:
        hit = _fits.get(k)
        if hit is not None:
            _fits.move_to_end(k)
        return hit


def remember(k: tuple, params: dict[str, Any]) -> None:
    with _lock:
        _fits[k] = params
        _fits.move_to_end(k)
        while len(_fits) > MAX_FITS:
            _fits.popitem(last=False)


def clear() -> None:
    with _lock:
        _fits.clear()
