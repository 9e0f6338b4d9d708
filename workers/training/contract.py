"""What an objective is and what it is handed: the `Context` (report, device, stop, and the requests
of the special runs: the sanity check, the learning-rate range test), the errors it may raise, and
how its result is read. Every trainer (run.py, sanity.py, lr_range.py) imports this and nothing
imports them back; objective.py adds the loader, which needs the built-in trainer.

The worker daemon subclasses Context to send reports to the server; `LocalContext` runs an objective
with no server at all (tests, benchmarks, a notebook).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

Objective = Callable[[dict[str, Any], "Context"], "float | dict[str, Any]"]


class Diverged(Exception):
    """A loss or metric went NaN or infinite: the trial ends as diverged, never as an error."""

    def __init__(self, reason: str, metrics: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.metrics = metrics or {}


@dataclass(frozen=True)
class SanityRequest:
    """This run is the study's sanity check: fit `samples` training examples (stratified) until
    training accuracy reaches 99% or the loss falls below 1% of its start, or `max_epochs`; try the
    learning rates in `lrs` in order when given. A subprocess program reads the same from the
    environment (`to_env`)."""

    samples: int
    max_epochs: int
    lrs: tuple[float, ...] = ()

    ENV = ("TUNESERVE_SANITY_SAMPLES", "TUNESERVE_SANITY_MAX_EPOCHS", "TUNESERVE_SANITY_LRS")

    def to_env(self) -> dict[str, str]:
        samples, epochs, lrs = self.ENV
        return {samples: str(self.samples), epochs: str(self.max_epochs),
                **({lrs: ",".join(repr(lr) for lr in self.lrs)} if self.lrs else {})}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "SanityRequest | None":
        samples, epochs, lrs = cls.ENV
        if samples not in environ:
            return None
        return cls(int(environ[samples]), int(environ[epochs]),
                   tuple(float(x) for x in environ.get(lrs, "").split(",") if x))


@dataclass(frozen=True)
class LrRangeRequest:
    """This run is the study's learning-rate range test: train the params' configuration while the lr
    grows geometrically from `start_lr` to `end_lr` over `steps` mini-batches (one lr per batch, no
    schedule or warmup), and return {"lr": [...], "loss": [...]}, one raw loss per batch done (see
    tuneserve_workers.training.lr_range.lr_range_test). A subprocess program reads the same from the
    environment (`to_env`) and reports `lr` and `loss` per mini-batch (step = batch index)."""

    start_lr: float
    end_lr: float
    steps: int

    ENV = ("TUNESERVE_LR_RANGE_START_LR", "TUNESERVE_LR_RANGE_END_LR", "TUNESERVE_LR_RANGE_STEPS")

    def to_env(self) -> dict[str, str]:
        start, end, steps = self.ENV
        return {start: repr(float(self.start_lr)), end: repr(float(self.end_lr)), steps: str(self.steps)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "LrRangeRequest | None":
        start, end, steps = cls.ENV
        if start not in environ:
            return None
        return cls(float(environ[start]), float(environ[end]), int(environ[steps]))


class Unsupported(Exception):
    """Raised by an objective handed a special run (context.sanity or context.lr_range) it cannot
    run, e.g. a program that did not opt in: the run ends with outcome supported=false and this
    message, which should say how to opt in."""


def supports_sanity(objective: Objective) -> Objective:
    """Mark an objective that takes part in the sanity gate: when `context.sanity` is set it runs the
    sanity check (see SanityRequest) instead of a trial, reports per epoch as usual (train_loss,
    train_acc; initial_loss and num_classes at step 1 when it can) and calls `context.sanity_done()`."""
    objective.supports_sanity = True  # type: ignore[attr-defined]
    return objective


def supports_lr_range(objective: Objective) -> Objective:
    """Mark an objective that takes part in the learning-rate range test: when `context.lr_range` is
    set it runs the ramp (see LrRangeRequest) instead of a trial and returns a dict with at least
    "lr" and "loss" lists, one entry per mini-batch (as lr_range_test does)."""
    objective.supports_lr_range = True  # type: ignore[attr-defined]
    return objective


class Context:
    """Handed to every objective. `report(step, **metrics)` returns False when the trial should stop
    (the server's pruner, a stopped study, a draining worker); `device` is the assigned device;
    `sanity` is None, or a SanityRequest when this run is the study's sanity check; `lr_range` is
    None, or an LrRangeRequest when this run is the study's learning-rate range test."""

    def __init__(self, device: torch.device | str = "cpu", params: dict[str, Any] | None = None,
                 trial_id: int | None = None, sanity: SanityRequest | None = None,
                 lr_range: LrRangeRequest | None = None):
        self.device = torch.device(device)
        self.params = params or {}
        self.trial_id = trial_id
        self.history: list[tuple[int, dict[str, float]]] = []
        self.stop_reason: str | None = None
        self.sanity = sanity
        self.lr_range = lr_range
        self.sanity_figures: dict[str, float] | None = None
        # What the run trained on when it was a subset (the trainer fills it).
        self.fidelity: dict[str, Any] = {}
        # What a rerun needs to know beyond the params (seed, data, determinism flags, a program's
        # command line and code hash): the objective adds to it before its first report; the worker
        # sends it with that report (workers/provenance.py).
        self.provenance: dict[str, Any] = {}

    def sanity_done(self, **figures: float) -> None:
        """Say the sanity check ran (figures beyond the reports are optional, e.g. `input_std`)."""
        self.sanity_figures = {k: float(v) for k, v in figures.items()}

    def report(self, step: int, **metrics: float) -> bool:
        clean = {k: float(v) for k, v in metrics.items()}
        bad = {k: v for k, v in clean.items() if not math.isfinite(v)}
        if bad:
            # Raised rather than returned so a user objective that ignores the answer still stops.
            raise Diverged(f"non-finite {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}", clean)
        self.history.append((step, clean))
        return self._send(step, clean)

    def should_stop(self) -> bool:
        return self.stop_reason is not None

    def _send(self, step: int, metrics: dict[str, float]) -> bool:
        return not self.should_stop()


class LocalContext(Context):
    """A context with no server: reports are kept in `history`; `stop_after` simulates a pruner."""

    def __init__(self, device: torch.device | str = "cpu", params: dict[str, Any] | None = None,
                 stop_after: int | None = None, on_report: Callable[[int, dict[str, float]], None] | None = None,
                 sanity: SanityRequest | None = None, lr_range: LrRangeRequest | None = None):
        super().__init__(device, params, sanity=sanity, lr_range=lr_range)
        self.stop_after = stop_after
        self.on_report = on_report

    def _send(self, step: int, metrics: dict[str, float]) -> bool:
        if self.on_report is not None:
            self.on_report(step, metrics)
        if self.stop_after is not None and len(self.history) >= self.stop_after:
            self.stop_reason = "stop_after"
        return not self.should_stop()


def objective_name(objective: Objective) -> str:
    """`module:qualname` of a function (what logs and special-run messages call it)."""
    qualname = getattr(objective, "__qualname__", None) or type(objective).__qualname__
    return f"{getattr(objective, '__module__', '?')}:{qualname}"


def metric_value(result: float | dict[str, Any], metric: str) -> tuple[float | None, dict[str, Any]]:
    """An objective's return value as (value of the study metric or None, extra metrics)."""
    if isinstance(result, dict):
        metrics = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        value = metrics.get(metric)
        return (float(value) if value is not None else None), metrics
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        return float(result), {metric: float(result)}
    raise TypeError(f"objective returned {type(result).__name__}; expected a float or a dict of metrics")
