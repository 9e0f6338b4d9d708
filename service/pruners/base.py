"""The pruner interface: decide from reported curves whether a running trial should stop.

Pruners are pure: they take value objects and return a PruneVerdict; no SQL, no web.

Conventions every pruner shares:
  - A step is the resource a trial has used, as the worker reports it: the number of epochs done
    (1, 2, 3, ...). Rungs, grace periods and W&B's min_iter/max_iter are read in these units.
  - Pruners reason on a *loss*: the study metric itself when the goal is "minimize", its negation
    when it is "maximize", so lower is always better inside a pruner and reasons quote the metric
    in its own direction.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

GOALS = ("minimize", "maximize")


@dataclass(frozen=True)
class Curve:
    """One trial's reported values of the study metric, by step (epoch), in report order.

    `values` maps step -> metric value (only finite values; a NaN report ends a trial elsewhere).
    `state` is "running", "completed", "pruned", "failed" or "diverged".
    """

    trial_id: int
    values: dict[int, float]
    state: str = "running"

    def losses(self, goal: str) -> list[tuple[int, float]]:
        """(step, loss) pairs in step order; non-finite values are skipped, not trusted."""
        sign = loss_sign(goal)
        return [(s, sign * v) for s, v in sorted(self.values.items()) if math.isfinite(v)]

    def until(self, step: int) -> Curve:
        """This curve as it stood when `step` was reported: what a batch of reports should be
        decided on one report at a time, so that no rung is skipped."""
        return Curve(self.trial_id, {s: v for s, v in self.values.items() if s <= step}, self.state)


@dataclass(frozen=True)
class PruneVerdict:
    """A pruner's judgement of one trial: stop it or not, and why. Not the wire `Decision` a worker
    receives (tuneserve.schemas.trials.Decision): the protocol turns a verdict into one."""

    stop: bool
    reason: str = ""
    step: int | None = None  # the reported step the decision was made at (set by the caller)


class Pruner(Protocol):
    def decide(self, trial: Curve, others: list[Curve], goal: str) -> PruneVerdict:
        """`trial` is the running trial that just reported; `others` are the study's other trials
        (any state). `goal` is "minimize" or "maximize"."""
        ...


@dataclass(frozen=True)
class PrunerConfig:
    """Stored on the study as JSON: {"type": "median"|"asha"|"hyperband"|"none", ...options}.

    Build one with `tuneserve_service.pruners.registry.parse_pruner` / `pruner_from_wandb`, which validate
    and fill every default, so a stored config keeps meaning the same thing if defaults change.
    """

    type: str = "none"
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: options flattened next to "type" (what a JSON column holds)."""
        return {"type": self.type, **self.options}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | dict[str, Any] | None) -> PrunerConfig:
        """Inverse of to_json/to_dict. Does not validate: `build_pruner` does, on use."""
        if data is None:
            return cls()
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise ValueError("pruner: stored config must be a JSON object")
        options = {k: v for k, v in data.items() if k != "type"}
        return cls(type=str(data.get("type", "none")), options=options)


class NoPruner:
    """The pruner of a study without early termination: every trial runs to its end."""

    def decide(self, trial: Curve, others: list[Curve], goal: str) -> PruneVerdict:
        check_goal(goal)
        return PruneVerdict(False, "no pruner")


def check_goal(goal: str) -> None:
    if goal not in GOALS:
        raise ValueError(f"goal: must be one of {', '.join(GOALS)}, got {goal!r}")


def loss_sign(goal: str) -> float:
    check_goal(goal)
    return 1.0 if goal == "minimize" else -1.0


# --- option validation shared by the pruners' from_options ------------------------------------
# Messages name the option as the user wrote it ("early_terminate.eta") and the rule it broke,
# because they reach the user unchanged as a 422.


def reject_unknown(options: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"{where}.{unknown[0]}: unknown option; valid options are {', '.join(sorted(allowed))}"
        )


def int_option(options: dict[str, Any], name: str, where: str, *, minimum: int,
               default: int | None = None, required: bool = False) -> int | None:
    value = options.get(name)
    if value is None:
        if required:
            raise ValueError(f"{where}.{name}: required (an integer >= {minimum})")
        return default
    # bool is an int in Python, but `eta: true` is a typo, not a 1.
    is_integral = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())
    if not is_integral or int(value) < minimum:
        raise ValueError(f"{where}.{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def bool_option(options: dict[str, Any], name: str, where: str, *, default: bool) -> bool:
    value = options.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValueError(f"{where}.{name}: must be true or false, got {value!r}")
    return value


def choice_option(options: dict[str, Any], name: str, where: str, *, choices: tuple[str, ...],
                  default: str) -> str:
    value = options.get(name)
    if value is None:
        return default
    if value not in choices:
        raise ValueError(f"{where}.{name}: must be one of {', '.join(choices)}, got {value!r}")
    return value


def aliased(options: dict[str, Any], name: str, alias: str, where: str) -> dict[str, Any]:
    """Accept `alias` as another spelling of `name` (Ray's and Optuna's words differ), not both."""
    if alias not in options:
        return options
    if name in options:
        raise ValueError(f"{where}.{alias}: same as {name}; give only one of them")
    options = dict(options)
    options[name] = options.pop(alias)
    return options
