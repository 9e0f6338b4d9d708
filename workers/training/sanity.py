"""The sanity check on the worker: the built-in trainer's sanity run, and running any objective's.

`run_sanity` trains the built-in CNN on a stratified handful of training examples with nothing that
hinders fitting (no dropout, weight decay, label smoothing or augmentation, a constant lr) until
training accuracy reaches 99% or the loss falls below 1% of where it started, or `max_epochs`. It
reports every epoch like a trial (plus initial_loss, num_classes and the inputs' spread at step 1),
calls `context.sanity_done(**figures)` and returns the figures. The server judges them with
tuneserve_service.diagnosis.sanity_verdict; workers never import the service.

`run_sanity_objective` is what the worker daemon calls for a sanity lease: it runs an objective
that declared support (`@supports_sanity`), and says so, once per objective, when one did not (or
raised Unsupported: a program that never reported sanity_done).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tuneserve_workers.training.config import TrainConfig
from tuneserve_workers.training.data import Dataset, load_dataset
from tuneserve_workers.training.nets import build_cnn
from tuneserve_workers.training.contract import Context, Diverged, Objective, Unsupported, objective_name
from tuneserve_workers.training.steps import LrSchedule, exploded, make_optimizer, seed_everything, train_epoch

log = logging.getLogger("tuneserve.worker")

FIT_ACC = 0.99          # training accuracy that counts as fitted
FIT_LOSS_SHARE = 0.01   # or a training loss at 1% of its start


def stratified_sample(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` indices (all of them when there are fewer), spread over the classes in proportion
    to their size, every class at least once while count allows; deterministic for a seed."""
    n = len(y)
    if count >= n:
        return np.arange(n)
    rng = np.random.default_rng(np.random.SeedSequence([seed, count]))
    classes, sizes = np.unique(y, return_counts=True)
    share = sizes / n * count
    take = np.minimum(sizes, np.floor(share).astype(int))
    if count >= len(classes):
        take = np.maximum(take, 1)
    while take.sum() > count:
        take[np.argmax(take)] -= 1
    order = np.argsort(-(share - take), kind="stable")  # the most under-served classes first
    i = 0
    while take.sum() < count:  # count < n, so some class always has room
        c = order[i % len(order)]
        take[c] += take[c] < sizes[c]
        i += 1
    picks = [rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in zip(classes, take) if k]
    return rng.permutation(np.concatenate(picks))


def sanity_config(params: dict[str, Any], max_epochs: int) -> TrainConfig:
    """The trial's config with everything that hinders fitting switched off."""
    return dataclasses.replace(
        TrainConfig.from_params(params), data_fraction=1.0, dropout=0.0, weight_decay=0.0, label_smoothing=0.0,
        crop_padding=0, hflip=False, rotate_degrees=0.0, shift_fraction=0.0, class_balanced=False,
        lr_schedule="constant", warmup_epochs=0.0, epochs=max_epochs)


def run_sanity(params: dict[str, Any], context: Context, samples: int | None = None,
               max_epochs: int | None = None, lrs: tuple[float, ...] | None = None,
               data: Dataset | None = None) -> dict[str, float]:
    """The built-in trainer's sanity run; arguments default to `context.sanity`. With several
    learning rates, each gets a fresh model (steps keep counting) until one fits; the figures are
    those of the first that fitted, else of the one that got furthest."""
    request = context.sanity
    samples = samples or (request.samples if request else 64)
    max_epochs = max_epochs or (request.max_epochs if request else 100)
    c = sanity_config(params, max_epochs)
    lrs = tuple(lrs or (request.lrs if request else ()) or (c.lr,))
    dev = context.device
    full = data.to(dev) if data is not None else load_dataset(c, dev)
    keep = torch.from_numpy(stratified_sample(full.y_train.cpu().numpy(), samples, c.seed)).to(dev)
    x, y = full.x_train[keep], full.y_train[keep]
    subset = Dataset(x, y, x, y, full.num_classes)
    inputs = input_figures(x)
    attempts, step = [], 0
    for lr in lrs:
        figures, step = _attempt(dataclasses.replace(c, lr=lr), subset, context, step, inputs)
        attempts.append(figures)
        if figures["reached"] or context.should_stop():
            break
    best = next((a for a in attempts if a["reached"]),
                min(attempts, key=lambda a: (-a.get("best_acc", 0.0), a.get("best_loss", math.inf))))
    figures = {**best, "samples": float(len(y)), "attempts": float(len(attempts))}
    context.sanity_done(**figures)
    return figures


def input_figures(x: torch.Tensor) -> dict[str, float]:
    """`input_nonfinite`: the share of input values that are NaN or inf; `input_std`: each pixel's
    spread across the samples (those without a bad value), averaged: 0 when every input is the
    same image. No spread figure when fewer than two samples are clean."""
    x = x.float().flatten(1)
    finite = torch.isfinite(x)
    out = {"input_nonfinite": 1.0 - finite.float().mean().item()}
    clean = x[finite.all(dim=1)]
    if len(clean) >= 2:
        out["input_std"] = clean.std(dim=0).mean().item()
    return out


def _attempt(c: TrainConfig, data: Dataset, context: Context, offset: int,
             inputs: dict[str, float]) -> tuple[dict[str, float], int]:
    dev = context.device
    seed_everything(c.seed)
    gen = torch.Generator(device=dev).manual_seed(c.seed)
    channels, size, _ = data.image_shape
    model = build_cnn(c, channels, data.num_classes, size).to(dev)
    opt = make_optimizer(model, c)
    sched = LrSchedule(c, steps_per_epoch=math.ceil(len(data.y_train) / c.batch_size))
    use_bf16 = dev.type == "cuda" and c.bf16
    autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16)  # noqa: E731
    losses, accs, ratios = [], [], []
    figures: dict[str, float] = {"lr": c.lr, "num_classes": float(data.num_classes), **inputs,
                                 "diverged": 0.0, "reached": 0.0}
    step = offset
    for epoch in range(c.epochs):
        try:
            m = train_epoch(model, opt, data, c, sched, epoch, gen, autocast)
            if "initial_loss" in m:
                figures["initial_loss"] = m["initial_loss"]
            if exploded(m["train_loss"], data.num_classes):
                raise Diverged(f"train_loss={m['train_loss']:.4g} at epoch {epoch + 1}", m)
            report = {k: m[k] for k in ("train_loss", "train_acc", "grad_norm", "update_ratio", "lr")}
            if epoch == 0:
                report.update(initial_loss=m["initial_loss"], num_classes=data.num_classes, **inputs)
            step = offset + epoch + 1
            go_on = context.report(step, **report)
        except Diverged as exc:
            figures.update(diverged=1.0, diverged_step=float(offset + epoch + 1))
            for name in ("initial_loss", "train_loss"):
                if name in exc.metrics:
                    figures["initial_loss" if name == "initial_loss" else "final_loss"] = float(exc.metrics[name])
            break
        losses.append(m["train_loss"])
        accs.append(m["train_acc"])
        ratios.append(m["update_ratio"])
        if m["train_acc"] >= FIT_ACC or m["train_loss"] <= FIT_LOSS_SHARE * figures["initial_loss"]:
            figures["reached"] = 1.0
            break
        if not go_on:
            break
    if losses:
        figures.update(first_loss=losses[0], final_loss=figures.get("final_loss", losses[-1]), best_loss=min(losses),
                       final_acc=accs[-1], best_acc=max(accs), update_ratio=statistics.median(ratios),
                       epochs=float(len(losses)))
    else:
        figures["epochs"] = 0.0
    return figures, step


# ---- any objective -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SanityOutcome:
    supported: bool
    figures: dict[str, float] = field(default_factory=dict)
    message: str = ""


_TOLD: set[str] = set()


def run_sanity_objective(objective: Objective, params: dict[str, Any], context: Context) -> SanityOutcome:
    """Run the sanity check through an objective. Unsupported: nothing runs, a warning is logged
    once per objective, and the outcome says why (the server marks the gate skipped). A divergence
    is a result (figures with diverged=1), not an error; other exceptions propagate as for a trial."""
    name = objective_name(objective)
    if not getattr(objective, "supports_sanity", False):
        message = (f"objective {name} does not support the sanity check (decorate it with "
                   f"tuneserve_workers.training.objective.supports_sanity and follow context.sanity)")
        if name not in _TOLD:
            _TOLD.add(name)
            log.warning("event=sanity_unsupported objective=%s", name)
        return SanityOutcome(False, {}, message)
    try:
        objective(params, context)
    except Unsupported as exc:  # it looked at the request and declined (a program that did not opt in)
        return SanityOutcome(False, {}, str(exc))
    except Diverged as exc:
        figures = {**(context.sanity_figures or {}), "diverged": 1.0,
                   **{k: float(v) for k, v in exc.metrics.items() if isinstance(v, (int, float))}}
        if context.history:
            figures.setdefault("diverged_step", float(context.history[-1][0] + 1))
        return SanityOutcome(True, figures, exc.reason)
    if context.sanity_figures is None:
        return SanityOutcome(False, {}, f"objective {name} declares sanity support but never called "
                             f"context.sanity_done(): it ran as an ordinary trial")
    return SanityOutcome(True, dict(context.sanity_figures))
