"""The training steps every trainer shares (the built-in objective in run.py, the sanity check in
sanity.py, the range test in lr_range.py): seeding, the optimizer and lr schedule of a config, one
epoch of training, evaluation, and what counts as an exploded loss. Imports no trainer.

On CUDA the steps run under bf16 autocast in channels_last with the data resident on the GPU; host
syncs happen once per epoch (and every `SYNC_EVERY` steps to catch a diverging loss early), never
per batch.
"""
from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tuneserve_workers.training.config import TrainConfig
from tuneserve_workers.training.contract import Diverged
from tuneserve_workers.training.data import Dataset, augment, epoch_batches

SYNC_EVERY = 50  # steps between checks of the running loss for NaN/inf
# Cross-entropy starts near ln(C); a loss 100x that has exploded even when clipping and batch norm
# keep it finite (lr = 1000 does exactly that), and no schedule brings such a run back.
EXPLODED = 100.0


def exploded(loss: float, num_classes: int) -> bool:
    return not math.isfinite(loss) or loss > EXPLODED * math.log(max(num_classes, 2))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model: nn.Module, c: TrainConfig) -> torch.optim.Optimizer:
    # Batch norm and bias parameters are not weight-decayed: decaying them only fights the norm.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if c.optimizer in ("sgd", "nesterov"):
        return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.optimizer == "nesterov")
    if c.optimizer == "adam":
        return torch.optim.Adam(groups, lr=c.lr)
    return torch.optim.AdamW(groups, lr=c.lr)


class LrSchedule:
    """lr for each step: linear warmup, then constant / step / cosine / reduce-on-plateau."""

    def __init__(self, c: TrainConfig, steps_per_epoch: int):
        self.c, self.steps_per_epoch, self.plateau_scale = c, steps_per_epoch, 1.0
        self.best, self.stale = math.inf, 0

    def lr(self, epoch: int, step: int) -> float:
        c = self.c
        t = epoch + step / self.steps_per_epoch  # fractional epochs done
        if c.lr_schedule == "step":
            scale = c.lr_factor ** (epoch // max(1, c.lr_step_epochs))
        elif c.lr_schedule == "cosine":
            scale = 0.5 * (1 + math.cos(math.pi * t / c.epochs))
        else:
            scale = self.plateau_scale  # constant keeps 1.0 forever
        warm = min(1.0, (t + 1 / self.steps_per_epoch) / c.warmup_epochs) if c.warmup_epochs > 0 else 1.0
        return c.lr * scale * warm

    def end_epoch(self, val_loss: float) -> None:
        if self.c.lr_schedule != "plateau":
            return
        if val_loss < self.best * (1 - 1e-4):
            self.best, self.stale = val_loss, 0
        else:
            self.stale += 1
            if self.stale > self.c.lr_patience:
                self.plateau_scale *= self.c.lr_factor
                self.stale = 0


def train_epoch(model, opt, data: Dataset, c: TrainConfig, sched: LrSchedule, epoch: int,
                gen: torch.Generator, autocast) -> dict[str, float]:
    model.train()
    dev = data.x_train.device
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    norm_sum = torch.zeros((), device=dev)
    seen, before, initial = 0, None, None
    batches = epoch_batches(data.y_train, c.batch_size, c.class_balanced, gen)
    for i, idx in enumerate(batches):
        xb, yb = data.x_train[idx], data.y_train[idx]
        if c.crop_padding or c.hflip or c.rotate_degrees or c.shift_fraction:
            xb = augment(xb, c, gen)
        if c.channels_last and dev.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        lr = sched.lr(epoch, i)
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast():
            out = model(xb)
            loss = F.cross_entropy(out, yb, label_smoothing=c.label_smoothing)
        if epoch == 0 and i == 0:  # the loss before any update: one host sync per trial
            initial = check_initial_loss(loss.item(), data.num_classes, lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in model.parameters() if p.grad is not None]
        if c.grad_clip > 0:
            norm_sum += nn.utils.clip_grad_norm_(params, c.grad_clip)
        else:  # measured for the report only; no clipping kernels
            norm_sum += nn.utils.get_total_norm([p.grad for p in params])
        if i == len(batches) - 1:  # update-to-weight ratio, measured on the epoch's last step
            before = [p.detach().clone() for p in params]
        opt.step()
        loss_sum += loss.detach() * len(idx)
        correct += (out.argmax(1) == yb).sum()
        seen += len(idx)
        if (i + 1) % SYNC_EVERY == 0 and exploded(loss_sum.item() / seen, data.num_classes):
            running = loss_sum.item() / seen
            first = f", initial_loss={initial:.4g}" if initial is not None else ""
            raise Diverged(f"train_loss={running:.4g} at epoch {epoch + 1} step {i + 1} (lr={lr:.3g}, "
                           f"num_classes={data.num_classes}{first})",
                           {"train_loss": running, "lr": lr, "epoch": epoch + 1, "num_classes": data.num_classes,
                            **({"initial_loss": initial} if initial is not None else {})})
    with torch.no_grad():
        update = torch.stack([(p.detach() - b).norm() for p, b in zip(params, before)]).norm()
        weight = torch.stack([b.norm() for b in before]).norm()
    return {"train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen,
            "grad_norm": norm_sum.item() / len(batches), "update_ratio": (update / weight).item(),
            "lr": lr, "images": seen, **({"initial_loss": initial} if initial is not None else {})}


def check_initial_loss(loss: float, num_classes: int, lr: float) -> float:
    """The loss before the first update, which should be about ln(C). Not finite there means no
    update did it: the inputs (or the loss) hold NaN or inf, whatever the learning rate."""
    if not math.isfinite(loss):
        raise Diverged(f"initial_loss={loss} before the first update (NaN or inf in the inputs?); "
                       f"num_classes={num_classes} lr={lr:.3g}",
                       {"initial_loss": loss, "num_classes": num_classes, "lr": lr, "epoch": 1})
    return loss


@torch.no_grad()
def evaluate(model, data: Dataset, c: TrainConfig, autocast) -> dict[str, float]:
    model.eval()
    loss_sum = torch.zeros((), device=data.x_val.device)
    correct = torch.zeros((), device=data.x_val.device, dtype=torch.long)
    for xb, yb in zip(data.x_val.split(c.eval_batch_size), data.y_val.split(c.eval_batch_size)):
        if c.channels_last and xb.device.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast():
            out = model(xb)
        loss_sum += F.cross_entropy(out.float(), yb, reduction="sum")
        correct += (out.argmax(1) == yb).sum()
    n = len(data.y_val)
    return {"val_loss": loss_sum.item() / n, "val_acc": correct.item() / n}
