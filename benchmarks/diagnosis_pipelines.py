"""Planted user objectives for the sanity gate: a plain PyTorch training script on digits, as a user
would write it, and three copies with a classic bug each. The built-in trainer cannot express these
bugs (it refuses lr 0, and it always steps the model it trains on the loss of its output), so they
are user objectives, loaded as `benchmarks/diagnosis_pipelines.py:<name>` like any other.

  healthy          normalised inputs, cross-entropy on the model's output, SGD with momentum
  lr_zero          the same with the learning rate set to 0
  frozen_weights   the optimizer was built over a copy of the model, so the model never changes
  detached_loss    cross-entropy on detached outputs plus an L2 term (so backward still runs):
                   the weights shrink but nothing pulls them towards the labels

Each takes part in the gate: with `context.sanity` set it fits that many stratified samples and
calls `context.sanity_done`; otherwise it trains on the whole training split and returns val_loss.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tuneserve_workers.training.data import digits
from tuneserve_workers.training.objective import Context, supports_sanity
from tuneserve_workers.training.sanity import FIT_ACC, input_figures, stratified_sample


def _model(width: int, classes: int) -> nn.Module:
    # 8x8 digits: conv, pool to 4x4, conv, then a linear layer over the whole map.
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(width * 16, classes))


def _run(params: dict[str, Any], context: Context, bug: str | None) -> dict[str, float]:
    torch.manual_seed(int(params.get("seed", 0)))
    data = digits()
    mean, std = data.x_train.mean(), data.x_train.std()
    x, y = (data.x_train - mean) / std, data.y_train
    x_val, y_val = (data.x_val - mean) / std, data.y_val
    epochs = int(params.get("epochs", 20))
    if context.sanity is not None:
        keep = torch.from_numpy(stratified_sample(y.numpy(), context.sanity.samples, seed=0))
        x, y, epochs = x[keep], y[keep], context.sanity.max_epochs
    model = _model(int(params.get("width", 32)), data.num_classes)
    lr = 0.0 if bug == "lr_zero" else float(params.get("lr", 0.05))
    stepped = copy.deepcopy(model) if bug == "frozen_weights" else model
    opt = torch.optim.SGD(stepped.parameters(), lr=lr, momentum=0.9)
    metrics: dict[str, float] = {}
    for epoch in range(1, epochs + 1):
        out = model(x)
        loss = F.cross_entropy(out.detach() if bug == "detached_loss" else out, y)
        if bug == "detached_loss":
            loss = loss + 5e-4 * sum((p ** 2).sum() for p in model.parameters())
        opt.zero_grad()
        loss.backward()
        grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
        before = [p.detach().clone() for p in model.parameters()]
        opt.step()
        with torch.no_grad():
            update = math.sqrt(sum(((p - b) ** 2).sum().item() for p, b in zip(model.parameters(), before)))
            weight = math.sqrt(sum((b ** 2).sum().item() for b in before))
            val_loss = F.cross_entropy(model(x_val), y_val).item()
        metrics = {"train_loss": loss.item(), "train_acc": (out.argmax(1) == y).float().mean().item(),
                   "val_loss": val_loss, "lr": lr, "update_ratio": update / weight,
                   "grad_norm": torch.stack(grads).norm().item() if grads else 0.0}
        if epoch == 1:
            metrics.update(initial_loss=metrics["train_loss"], num_classes=data.num_classes)
        if not context.report(epoch, **metrics):
            break
        if context.sanity is not None and metrics["train_acc"] >= FIT_ACC:
            break
    if context.sanity is not None:
        context.sanity_done(**input_figures(x))
    return {"val_loss": metrics.get("val_loss", math.nan)}


@supports_sanity
def healthy(params: dict[str, Any], context: Context) -> dict[str, float]:
    return _run(params, context, None)


@supports_sanity
def lr_zero(params: dict[str, Any], context: Context) -> dict[str, float]:
    return _run(params, context, "lr_zero")


@supports_sanity
def frozen_weights(params: dict[str, Any], context: Context) -> dict[str, float]:
    return _run(params, context, "frozen_weights")


@supports_sanity
def detached_loss(params: dict[str, Any], context: Context) -> dict[str, float]:
    return _run(params, context, "detached_loss")


def no_sanity_support(params: dict[str, Any], context: Context) -> dict[str, float]:
    """An objective that never heard of the gate."""
    return _run(params, context, None)
