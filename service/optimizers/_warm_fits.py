"""The botorch engine's fitted GP hyper-parameters, kept in the process, two ways:

- **the same data again** (`same_data_key`, `fitted`, `remember`): a fit is a function of its data
  alone (the engine seeds a fit's retries from the data), so a second suggestion on the same
  history takes the first one's hyper-parameters instead of fitting again, with the same answer.
  That is what the draw-ahead does (core/draw_ahead.py: after each answer, two more suggestions
  on the same results, with the answered trial pending). On by default.
- **warm starts** (below): the next fit of a study starts where its previous one ended.

Warm starts: the next fit of the same study starts where the previous one ended instead of at the
priors.

The engine's `suggest` is not told which study it serves, so a study is recognised by what it always
shares with its earlier suggestions: its space (names, families and the encoded box's width), the
outcome option, and its first result (the observations arrive in trial order). Two studies that
share all of that (a refine child whose history starts with its parent's) share an entry; nothing
is wrong then either, since an entry is only a starting point for the fit, never a fitted model:
the fit still runs on the current data, and a shape that does not match is ignored.

An entry is used only by a fit on at least as many results as the one that stored it (a study's
history only grows), and the cache is bounded (least recently used out first).

With it, an answer depends on what this process fitted before, not only on the seed and the history:
that is why the engine's `warm_fit_maxiter` is off by default (the optimizer contract suite checks
that the same seed and history give the same answer).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Sequence

MAX_STUDIES = 256
MAX_SAME_DATA = 64

_lock = threading.Lock()
_fits: OrderedDict[tuple, tuple[int, dict[str, Any]]] = OrderedDict()
_same: OrderedDict[tuple, dict[str, Any]] = OrderedDict()


def same_data_key(X: Any, Y: Any, *options: Any) -> tuple:
    """The key of a fit: its inputs and targets (tensors, exactly) and the options it ran with."""
    digest = hashlib.sha1(X.detach().numpy().tobytes() + b"|" + Y.detach().numpy().tobytes()).hexdigest()
    return (tuple(X.shape), digest, *options)


def fitted(key: tuple) -> dict[str, Any] | None:
    """The hyper-parameters a fit on exactly this data ended with in this process, else None."""
    with _lock:
        hit = _same.get(key)
        if hit is not None:
            _same.move_to_end(key)
        return hit


def remember(key: tuple, params: dict[str, Any]) -> None:
    with _lock:
        _same[key] = params
        _same.move_to_end(key)
        while len(_same) > MAX_SAME_DATA:
            _same.popitem(last=False)


def study_key(dims: Sequence[Any], width: int, output: str, completed: Sequence[Any]) -> tuple | None:
    """The cache key of a study (see the module's docstring); None before it has a result."""
    if not completed:
        return None
    first = completed[0]
    return (tuple((d.name, d.distribution) for d in dims), width, output,
            tuple(sorted((k, repr(v)) for k, v in first.params.items())), repr(first.value))


def load(key: tuple | None, n_results: int) -> dict[str, Any] | None:
    """The hyper-parameters stored for `key` by a fit on at most `n_results` results, else None."""
    if key is None:
        return None
    with _lock:
        hit = _fits.get(key)
        if hit is None or hit[0] > n_results:
            return None
        _fits.move_to_end(key)
        return hit[1]


def store(key: tuple | None, n_results: int, params: dict[str, Any]) -> None:
    if key is None:
        return
    with _lock:
        _fits[key] = (n_results, params)
        _fits.move_to_end(key)
        while len(_fits) > MAX_STUDIES:
            _fits.popitem(last=False)


def clear() -> None:
    with _lock:
        _fits.clear()
        _same.clear()
