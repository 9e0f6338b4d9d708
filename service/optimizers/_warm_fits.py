"""The botorch engine's last fitted GP hyper-parameters per study, kept in the process, so that the next
fit of the same study starts where the previous one ended instead of at the priors.

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

import threading
from collections import OrderedDict
from typing import Any, Sequence

MAX_STUDIES = 256

_lock = threading.Lock()
_fits: OrderedDict[tuple, tuple[int, dict[str, Any]]] = OrderedDict()


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
