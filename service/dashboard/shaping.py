"""Pure data shaping for the dashboard's charts: which trials to draw, best-so-far, downsampling,
parameter metadata and columns. No SQL and no web here: plain values in, plain values out.

The browser never receives every report of a big study. Charts that draw one line or one point
per trial get a bounded selection (the best trials, every running one, and an even sample of the
rest, in that order of priority), and each line is downsampled to a bounded number of points that
keeps its first and last points and its extremes.
"""
from __future__ import annotations

import json
import math
from operator import attrgetter
from typing import Any, Iterable, NamedTuple, Sequence

from tuneserve_service.space import SearchSpace
from tuneserve.schemas.enums import TrialState


class TrialPoint(NamedTuple):
    """What the selection needs of a trial (store rows have the same attributes)."""

    id: int
    number: int
    state: str
    value: float | None
    last_step: int | None = None


def is_better(a: float, b: float, goal: str) -> bool:
    return a < b if goal == "minimize" else a > b


def best_so_far(values: Sequence[float | None], states: Sequence[str], goal: str) -> list[float | None]:
    """The best completed value among trials up to each position (None before the first one)."""
    out: list[float | None] = []
    best: float | None = None
    for v, st in zip(values, states):
        if st == TrialState.COMPLETED and v is not None and (best is None or is_better(v, best, goal)):
            best = v
        out.append(best)
    return out


def _stride_sample(items: list[TrialPoint], count: int) -> list[TrialPoint]:
    """`count` items spread evenly over the list (deterministic: the same study gives the same sample)."""
    if count <= 0:
        return []
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def pick_trials(points: Iterable[TrialPoint], goal: str, limit: int, *, best_share: float = 0.4,
                states: Iterable[str] | None = None) -> list[TrialPoint]:
    """At most `limit` trials to draw: the best valued ones first (best_share of the budget), then
    the running ones, then an even sample of the rest by trial number. Returned in number order."""
    wanted = set(states) if states is not None else None
    pool = [p for p in points if wanted is None or p.state in wanted]
    if len(pool) <= limit:
        return sorted(pool, key=lambda p: p.number)
    valued = [p for p in pool if p.value is not None and p.state == "completed"]
    # A stable sort of a list in number order: ties keep the lower trial number first.
    valued.sort(key=attrgetter("value"), reverse=goal != "minimize")
    chosen: dict[int, TrialPoint] = {p.id: p for p in valued[: int(limit * best_share)]}
    for p in pool:
        if len(chosen) >= limit:
            break
        if p.state == TrialState.RUNNING:
            chosen.setdefault(p.id, p)
    rest = [p for p in pool if p.id not in chosen]
    for p in _stride_sample(rest, limit - len(chosen)):
        chosen[p.id] = p
    return sorted(chosen.values(), key=lambda p: p.number)


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most about `max_points` points of a line: the first and last, and in each of
    max_points / 2 buckets the lowest and highest y in x order (so spikes and the minimum survive)."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    buckets = max(1, (max_points - 2) // 2)
    keep = {0, n - 1}
    size = (n - 2) / buckets
    for b in range(buckets):
        lo, hi = 1 + int(b * size), 1 + int((b + 1) * size)
        if hi <= lo:
            continue
        segment = range(lo, min(hi, n - 1))
        keep.add(min(segment, key=lambda i: ys[i]))
        keep.add(max(segment, key=lambda i: ys[i]))
    idx = sorted(keep)
    return [xs[i] for i in idx], [ys[i] for i in idx]


def param_meta(space_json: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The searched parameters (constants left out) as the charts need them."""
    out = []
    for dim in SearchSpace.from_json(space_json).dimensions:
        if dim.kind == "constant":
            continue
        meta: dict[str, Any] = {"name": dim.name, "kind": dim.kind, "log": dim.is_log,
                                "distribution": dim.distribution}
        if dim.kind == "categorical":
            meta["values"] = [_jsonable(v) for v in dim.values]
        else:
            bounds = dim.value_bounds()
            if bounds is not None:
                meta["min"], meta["max"] = bounds
        out.append(meta)
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def category_label(v: Any) -> str:
    """How a categorical value is shown and matched in the browser (strings as they are, any other
    JSON value as its JSON text)."""
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)  # what json.dumps gives, without its cost per cell
    return json.dumps(_jsonable(v))


def finite(v: Any) -> float | None:
    """A number fit for JSON, or None (NaN and infinities are stored as strings in report metrics)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def param_columns(meta: list[dict[str, Any]], params: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """One column per parameter over the given trials' flat params: numbers as numbers (None when
    missing or not a number), categoricals as their labels."""
    cols: dict[str, list[Any]] = {}
    for m in meta:
        name = m["name"]
        if m["kind"] == "categorical":
            cols[name] = [category_label(p[name]) if name in p else None for p in params]
        else:
            cols[name] = [finite(p.get(name)) for p in params]
    return cols
