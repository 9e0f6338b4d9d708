"""The learning-rate range test on the built-in trainer: one run of a configuration while the lr grows
exponentially batch by batch, recording the loss against the lr, until the loss has blown up.

Smith's range test (2015) as practitioners run it: lr_i = start * (end / start)^(i / (steps - 1)),
one mini-batch per lr, the raw loss kept together with its exponential moving average (beta 0.98,
bias-corrected so the first points are not pulled towards 0). The run stops early once the smoothed
loss exceeds `blowup` times its minimum so far, or the loss is NaN/inf: past that point the curve only
says "too high". The server reads the curve (service/craft/lr_range.py re-smooths the raw losses with
the same rule) and proposes the lr and its range; this module only measures.
`run_lr_range_objective` is what the worker daemon calls for a lease of kind lr_range: it runs any
objective that declared support (`@supports_lr_range`) and turns what it returned into the curve.

The configuration is trained as a trial would be (model, optimizer, momentum, weight decay, batch
size, gradient clipping, augmentation, the data subset of its fidelity) except that the lr schedule
and warmup are replaced by the exponential ramp, and there are no epochs: batches come from fresh
shuffles of the training set until `steps` batches are done.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tuneserve_workers.training.config import TrainConfig
from tuneserve_workers.training.data import Dataset, augment, epoch_batches, load_dataset
from tuneserve_workers.training.nets import build_cnn
from tuneserve_workers.training.contract import Context, Objective, Unsupported, objective_name
from tuneserve_workers.training.steps import make_optimizer, seed_everything

log = logging.getLogger("tuneserve.worker")

START_LR = 1e-7
END_LR = 10.0
STEPS = 200
BETA = 0.98        # EMA weight of the past; 0.98 is the usual choice for 100-300 steps
BLOWUP = 4.0       # stop once the smoothed loss is this many times its minimum
MIN_STEPS = 10     # never call a blow-up before this many batches (the EMA is still settling)


def lr_at(step: int, start_lr: float = START_LR, end_lr: float = END_LR, steps: int = STEPS) -> float:
    """The lr of mini-batch `step` (0-based): geometric from start_lr to end_lr over `steps` batches."""
    if steps < 2:
        raise ValueError("steps must be >= 2")
    return start_lr * (end_lr / start_lr) ** (step / (steps - 1))


class Smoother:
    """Bias-corrected exponential moving average of the loss, and the blow-up rule on it."""

    def __init__(self, beta: float = BETA, blowup: float = BLOWUP, min_steps: int = MIN_STEPS):
        self.beta, self.blowup, self.min_steps = beta, blowup, min_steps
        self.avg, self.n, self.best = 0.0, 0, math.inf

    def add(self, loss: float) -> float:
        self.n += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smoothed = self.avg / (1 - self.beta ** self.n)
        self.best = min(self.best, smoothed)
        return smoothed

    def blew_up(self, smoothed: float) -> bool:
        return self.n >= self.min_steps and smoothed > self.blowup * self.best


def lr_range_test(params: dict[str, Any], context: Context, data: Dataset | None = None, *,
                  start_lr: float = START_LR, end_lr: float = END_LR, steps: int = STEPS,
                  beta: float = BETA, blowup: float = BLOWUP, report_every: int = 25) -> dict[str, Any]:
    """Run the range test for `params` (a trial's params: the study's default configuration).

    Returns {"lr": [...], "loss": [...], "smoothed": [...], "steps": n, "stopped": why,
    "start_lr", "end_lr", "beta", "blowup", "fidelity"}: one entry per mini-batch done; a batch
    whose loss is NaN/inf ends the test and is not recorded. Every `report_every` batches the
    context gets {lr, smoothed_loss} at step = batches done, so a server can show progress and stop it
    (a False answer ends the test early, with `stopped` saying so); 0 disables reporting.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if not 0 <= beta < 1 or blowup <= 1:
        raise ValueError("beta must be in [0, 1) and blowup > 1")
    c = TrainConfig.from_params(params)
    dev = context.device
    seed_everything(c.seed)
    gen = torch.Generator(device=dev).manual_seed(c.seed)
    data = data.to(dev) if data is not None else load_dataset(c, dev)
    context.fidelity = dict(data.fidelity)
    channels, size, _ = data.image_shape
    model = build_cnn(c, channels, data.num_classes, size).to(dev)
    opt = make_optimizer(model, c)
    use_bf16 = dev.type == "cuda" and c.bf16
    smoother = Smoother(beta, blowup)
    curve: dict[str, list[float]] = {"lr": [], "loss": [], "smoothed": []}
    stopped = f"reached end_lr={end_lr:g}"
    batches: list[torch.Tensor] = []
    model.train()
    for step in range(steps):
        if not batches:
            batches = list(epoch_batches(data.y_train, c.batch_size, c.class_balanced, gen))
        idx = batches.pop(0)
        xb, yb = data.x_train[idx], data.y_train[idx]
        if c.crop_padding or c.hflip or c.rotate_degrees or c.shift_fraction:
            xb = augment(xb, c, gen)
        lr = lr_at(step, start_lr, end_lr, steps)
        for group in opt.param_groups:
            group["lr"] = lr
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            loss = F.cross_entropy(model(xb), yb, label_smoothing=c.label_smoothing)
        value = loss.item()  # one sync per batch: the stop rule needs the number now
        if not math.isfinite(value):
            stopped = f"loss={value} at lr={lr:.3g}"
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        opt.step()
        smoothed = smoother.add(value)
        for key, v in (("lr", lr), ("loss", value), ("smoothed", smoothed)):
            curve[key].append(v)
        if smoother.blew_up(smoothed):
            stopped = (f"blew up at lr={lr:.3g}: smoothed loss {smoothed:.4g} > {blowup:g} x its "
                       f"minimum {smoother.best:.4g}")
            break
        if report_every and (step + 1) % report_every == 0:
            if not context.report(step + 1, lr=lr, smoothed_loss=smoothed):
                stopped = f"stopped by the server after {step + 1} batches"
                break
    return {**curve, "steps": len(curve["lr"]), "stopped": stopped, "start_lr": start_lr, "end_lr": end_lr,
            "beta": beta, "blowup": blowup, "fidelity": dict(data.fidelity)}


# ---- any objective -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LrRangeOutcome:
    supported: bool
    curve: dict[str, list[float | None]] | None = None
    message: str = ""


def _number_or_none(value: Any) -> float | None:
    """A curve point as JSON can carry it: a NaN or infinite loss (the blow-up) becomes None."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def curve_of(result: Any) -> dict[str, list[float | None]]:
    """{"lr": [...], "loss": [...]} from what a range-test objective returned; TypeError/ValueError
    when it is not such a dict (a bug in the objective: the run fails with the traceback)."""
    if not isinstance(result, dict) or not isinstance(result.get("lr"), (list, tuple)) \
            or not isinstance(result.get("loss"), (list, tuple)):
        raise TypeError(f"an lr range test must return a dict with 'lr' and 'loss' lists (one entry per "
                        f"mini-batch), got {type(result).__name__}"
                        + (f" with keys {sorted(result)}" if isinstance(result, dict) else ""))
    if len(result["lr"]) != len(result["loss"]):
        raise ValueError(f"the range test's 'lr' and 'loss' differ in length: {len(result['lr'])} and "
                         f"{len(result['loss'])}")
    return {"lr": [_number_or_none(v) for v in result["lr"]], "loss": [_number_or_none(v) for v in result["loss"]]}


def run_lr_range_objective(objective: Objective, params: dict[str, Any], context: Context) -> LrRangeOutcome:
    """Run the range test that `context.lr_range` asks for through an objective. Unsupported: nothing
    runs and the outcome says why (the server marks the test failed). Exceptions (Diverged included:
    a user objective that reports a NaN) propagate as for a trial."""
    if context.lr_range is None:
        raise ValueError("run_lr_range_objective needs context.lr_range (an LrRangeRequest)")
    name = objective_name(objective)
    if not getattr(objective, "supports_lr_range", False):
        log.warning("event=lr_range_unsupported objective=%s", name)
        return LrRangeOutcome(False, None, f"objective {name} does not support the lr range test (decorate it "
                                           f"with supports_lr_range and follow context.lr_range)")
    try:
        result = objective(params, context)
    except Unsupported as exc:  # it looked at the request and declined (a program that reported no curve)
        return LrRangeOutcome(False, None, str(exc))
    stopped = result.get("stopped", "") if isinstance(result, dict) else ""
    return LrRangeOutcome(True, curve_of(result), str(stopped))
