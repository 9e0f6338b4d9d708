"""A trial as the craft's planners see it: the one value object refine, stages and repeats read."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneserve_service.craft.fidelity import Fidelity


@dataclass(frozen=True)
class TrialResult:
    """`params` flat (dotted names); `value` the study metric in its own direction (None when the
    trial has none); `state` a TrialState value; `fidelity` what it ran at (None: the study's only
    fidelity)."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str = "completed"
    fidelity: Fidelity | None = None
