#!/usr/bin/env python
"""A plain training script: argparse in, a small CNN on scikit-learn's 8x8 digits, per-epoch metrics
out. It knows nothing of sweeps; `sweep.yaml` beside it runs it unchanged, as `wandb agent` would:

    tuneserve study create examples/digits_cnn/sweep.yaml
    tuneserve worker --study digits-cnn

Run by hand it trains once and prints its metrics:

    python examples/digits_cnn/train.py --lr 0.05 --epochs 5 --batch_norm

Under a tuneserve worker, `report` sends each epoch's metrics to the worker (and says whether to go
on); anywhere else it does nothing. A few seconds per run on one CPU core.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

try:
    from tuneserve import report, summary
except ImportError:  # not installed: train and print, report nowhere
    def report(step, **metrics):
        return True

    def summary(**metrics):
        return None


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", type=float, default=5e-4)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--width", type=int, default=16, help="filters of the first conv layer")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch_norm", action="store_true", help="a flag: the sweep passes it with ${args_no_boolean_flags}")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=os.environ.get("TUNESERVE_DEVICE", "cpu"))
    return p.parse_args()


class Net(nn.Module):
    def __init__(self, width: int, dropout: float, batch_norm: bool):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), norm(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), norm(2 * width), nn.ReLU(),
            nn.MaxPool2d(2),                                    # 8x8 -> 4x4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * width * 16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def data(device: str, seed: int):
    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None] / 16.0
    x_train, x_val, y_train, y_val = train_test_split(x, digits.target, test_size=0.2, random_state=0,
                                                      stratify=digits.target)
    mean, std = x_train.mean(), x_train.std()               # normalise with train statistics
    as_tensor = lambda a, dtype: torch.tensor(a, dtype=dtype, device=device)  # noqa: E731
    return ((as_tensor((x_train - mean) / std, torch.float32), as_tensor(y_train, torch.long)),
            (as_tensor((x_val - mean) / std, torch.float32), as_tensor(y_val, torch.long)))


def train_epoch(model, opt, x, y, batch_size, generator) -> float:
    model.train()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    total = 0.0
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return total / len(x)


@torch.no_grad()
def evaluate(model, x, y) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    (x_train, y_train), (x_val, y_val) = data(args.device, args.seed)
    model = Net(args.width, args.dropout, args.batch_norm).to(args.device)
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    print(f"training {sum(p.numel() for p in model.parameters())} parameters on {args.device}: {vars(args)}")
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        train_loss = train_epoch(model, opt, x_train, y_train, args.batch_size, generator)
        val_loss, val_acc = evaluate(model, x_val, y_val)
        print(f"epoch {epoch}: train_loss {train_loss:.4f} val_loss {val_loss:.4f} val_acc {val_acc:.3f} "
              f"({time.perf_counter() - started:.2f}s)", flush=True)
        if not report(epoch, train_loss=train_loss, val_loss=val_loss, val_acc=val_acc):
            print("told to stop")
            return
    summary(val_loss=val_loss, val_acc=val_acc)


if __name__ == "__main__":
    main()
