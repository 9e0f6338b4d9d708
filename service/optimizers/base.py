"""The optimizer interface: plain value objects in, plain value objects out.

Every method (random, grid, tpe, tpe_hyperopt, gp) implements `Optimizer.suggest`. Optimizers never see a database
session or a web request: the suggest flow in `tuneserve_service.domain` reads the history, builds these value
objects, calls `suggest` with no transaction open, and writes the result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tuneserve_service.space import SearchSpace


@dataclass(frozen=True)
class Observation:
    """A finished trial as the optimizer sees it.

    `params` is flat (dotted names -> values). `value` is the study metric as reported, in the
    study's own direction (the optimizer is told the goal). `state` is one of
    "completed", "pruned", "diverged", "failed". Diverged and failed trials have value None and must
    be treated as worse than the worst completed value, never ignored.
    """

    params: dict[str, Any]
    value: float | None
    state: str = "completed"
    # Studies with several objectives or constraints (service/domain/core/objectives.py): the
    # objective vector as reported (each in its own goal's direction; None: not every objective
    # reported, or a failed trial) and each constraint's value (<= 0 holds; None: not reported).
    values: tuple[float, ...] | None = None
    constraints: tuple[float | None, ...] | None = None


@dataclass(frozen=True)
class Suggestion:
    params: dict[str, Any]          # flat: dotted names -> values, every dimension present
    method: str                     # which engine actually produced it ("tpe", or "random" on fallback)
    # How it was made (phase, history size, pending count, redraws, a repeat): read by the contract
    # tests and benchmarks to check an engine's path; the service does not store it.
    info: dict[str, Any] = field(default_factory=dict)


class Optimizer(Protocol):
    name: str

    def suggest(
        self,
        space: SearchSpace,
        completed: list[Observation],
        pending: list[dict[str, Any]],
        count: int,
        seed: int,
        goal: str = "minimize",
    ) -> list[Suggestion]:
        """Return `count` suggestions (fewer only when the space is exhausted, e.g. a finished grid).

        `pending` are the flat params of trials still running (or waiting): suggestions must avoid
        them. `seed` is already varied per call by the caller (study seed + trial number), so the
        same seed and history give the same answer. `goal` is "minimize" or "maximize".
        """
        ...


class SpaceExhausted(Exception):
    """Raised by an optimizer that has nothing left to suggest (a grid that is fully used)."""
