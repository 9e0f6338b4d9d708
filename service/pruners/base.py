"""The pruner interface: decide from reported curves whether a running trial should stop.

Pruners are pure: they take value objects and return a Decision; no SQL, no web.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Curve:
    """One trial's reported values of the study metric, by step (epoch), in report order.

    `values` maps step -> metric value (only finite values; a NaN report ends a trial elsewhere).
    `state` is "running", "completed", "pruned", "failed" or "diverged".
    """

    trial_id: int
    values: dict[int, float]
    state: str = "running"


@dataclass(frozen=True)
class Decision:
    stop: bool
    reason: str = ""


class Pruner(Protocol):
    def decide(self, trial: Curve, others: list[Curve], goal: str) -> Decision:
        """`trial` is the running trial that just reported; `others` are the study's other trials
        (any state). `goal` is "minimize" or "maximize"."""
        ...


@dataclass(frozen=True)
class PrunerConfig:
    """Stored on the study as JSON: {"type": "median"|"asha"|"hyperband"|"none", ...options}."""

    type: str = "none"
    options: dict[str, Any] = field(default_factory=dict)
