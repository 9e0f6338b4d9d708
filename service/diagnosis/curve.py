"""A trial's per-step reports as numeric series, whatever shape they arrive in.

Reports come as (step, metrics) pairs, as {"step", "metrics"} dicts (the API's ReportRead), or as
rows with .step and .metrics (the ORM). Stored metrics keep NaN and infinities as the strings
"NaN", "Infinity" and "-Infinity" (JSON has no such numbers); they are numbers again here.
A failed trial's reason also carries figures (`train_loss=nan at epoch 1 (lr=10, grad_norm=...)`,
or the server's `non-finite val_loss (nan) at step 3`): `reason_figures` reads them back.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

_NON_FINITE = {"nan": math.nan, "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf,
               "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


def to_float(value: Any) -> float | None:
    """A metric value as a float (NaN and infinities included), or None when it is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _NON_FINITE.get(value.strip().lower())
    try:  # numpy scalars and the like
        return float(value)
    except (TypeError, ValueError):
        return None


def is_loss(name: str) -> bool:
    return name == "loss" or name.endswith("_loss")


def _pair(report: Any) -> tuple[int, Mapping[str, Any]]:
    if isinstance(report, Mapping):
        return int(report["step"]), report.get("metrics") or {}
    if isinstance(report, (tuple, list)):
        return int(report[0]), report[1] or {}
    return int(report.step), report.metrics or {}


@dataclass(frozen=True)
class Curve:
    """Reports sorted by step, one per step (the last one wins), values as floats."""

    steps: tuple[int, ...]
    rows: tuple[dict[str, float], ...]

    @classmethod
    def from_reports(cls, reports: Iterable[Any]) -> "Curve":
        by_step: dict[int, dict[str, float]] = {}
        for report in reports:
            step, metrics = _pair(report)
            row = by_step.setdefault(step, {})
            for name, value in metrics.items():
                number = to_float(value)
                if number is not None:
                    row[str(name)] = number
        steps = tuple(sorted(by_step))
        return cls(steps, tuple(by_step[s] for s in steps))

    def __len__(self) -> int:
        return len(self.steps)

    def series(self, name: str, finite: bool = True) -> list[tuple[int, float]]:
        """(step, value) for every report holding `name` (finite values only, unless asked)."""
        return [(s, r[name]) for s, r in zip(self.steps, self.rows)
                if name in r and (not finite or math.isfinite(r[name]))]

    def values(self, name: str) -> list[float]:
        return [v for _, v in self.series(name)]

    def first(self, name: str) -> float | None:
        for r in self.rows:
            if name in r:
                return r[name]
        return None

    def first_non_finite(self) -> tuple[int, str, float] | None:
        """The first report where a loss is NaN or infinite: (step, metric, value)."""
        for step, row in zip(self.steps, self.rows):
            for name in sorted(row):
                if is_loss(name) and not math.isfinite(row[name]):
                    return step, name, row[name]
        return None


_NUMBER = r"[-+]?(?:nan|inf(?:inity)?|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)"
_PAIR = re.compile(rf"\b([a-z][a-z0-9_]*)=({_NUMBER})", re.IGNORECASE)
_SERVER = re.compile(rf"non-finite ([a-z][a-z0-9_]*) \(({_NUMBER})\) at step (\d+)", re.IGNORECASE)
_AT = re.compile(r"\bat (epoch|step) (\d+)", re.IGNORECASE)


def reason_figures(reason: str | None) -> dict[str, float]:
    """The `name=value` figures in a fail reason, plus `epoch`/`step` from "at epoch N"; a flag
    `before_update` when the reason says the loss was bad before the first update."""
    if not reason:
        return {}
    out: dict[str, float] = {}
    match = _SERVER.search(reason)
    if match:
        out[match.group(1)] = float(match.group(2))  # float() reads nan, inf and infinity too
        out["step"] = float(match.group(3))
    for name, text in _PAIR.findall(reason):
        out.setdefault(name, float(text))
    for unit, n in _AT.findall(reason):
        out.setdefault(unit.lower(), float(n))
    if "before the first update" in reason or "before any update" in reason:
        out["before_update"] = 1.0
    return out
