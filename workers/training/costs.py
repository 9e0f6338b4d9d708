"""What a trained model costs: its size, its compute, its inference latency and the memory training
took. The built-in trainer (run.py) reports these so a study can weigh accuracy against cost.

- `param_count`: trainable and frozen parameters (numel of `model.parameters()`).
- `flops`: floating-point operations of one forward pass on one image, counted by torch's own
  `torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products, 2 FLOPs per
  multiply-add; batch norm, ReLU, pooling and the loss are not counted). MACs are flops / 2.
- `latency_ms`: inference latency per image on the training device: batch 1, eval mode, no grad,
  the trainer's autocast, after `WARMUP` untimed passes; the median of `REPS` timed passes, each
  bracketed by `torch.cuda.synchronize()` on CUDA.
- `peak_memory_mb`: on CUDA, `torch.cuda.max_memory_allocated` since the run started (the peak
  counter is reset there); on CPU, the growth of the process's peak resident set (VmHWM) over its
  resident set when the run started, with the kernel's high-water mark reset at the start
  (`/proc/self/clear_refs`, Linux); where that is unavailable, the growth of `ru_maxrss`, which
  cannot go below an earlier trial's peak in the same process and so may read 0.

None of this touches a random number generator, so measuring never changes the training.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
from contextlib import nullcontext
from typing import Callable

import torch
from torch import nn

WARMUP = 5
REPS = 30
MB = 2.0 ** 20


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(model: nn.Module, example: torch.Tensor, autocast: Callable = nullcontext) -> int:
    """FLOPs of one forward pass on `example` (one image, batch dimension included), in eval mode:
    batch norm neither updates its statistics nor depends on the batch, and dropout draws nothing."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast(), FlopCounterMode(display=False) as counter:
            model(example)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def latency_ms(model: nn.Module, example: torch.Tensor, autocast: Callable = nullcontext,
               warmup: int = WARMUP, reps: int = REPS) -> float:
    """Median milliseconds of one forward pass on `example` (one image), after `warmup` passes."""
    on_cuda = example.device.type == "cuda"
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad(), autocast():
            for i in range(warmup + reps):
                if on_cuda:
                    torch.cuda.synchronize(example.device)
                t0 = time.perf_counter()
                model(example)
                if on_cuda:
                    torch.cuda.synchronize(example.device)
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        model.train(was_training)
    return statistics.median(times)


class PeakMemory:
    """The peak memory of a run: start() at its beginning, peak_mb() whenever (see the module doc)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.baseline_kb = 0
        self.how = "cuda_max_memory_allocated" if device.type == "cuda" else "rss_peak_growth"

    def start(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        if not _reset_rss_peak():
            self.how = "ru_maxrss_growth"
        self.baseline_kb = _status_kb("VmRSS") if self.how == "rss_peak_growth" else _maxrss_kb()
        return self

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / MB
        peak = _status_kb("VmHWM") if self.how == "rss_peak_growth" else _maxrss_kb()
        return max(0, peak - self.baseline_kb) / 1024.0


def _reset_rss_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmHWM") > 0
    except OSError:
        return False


def _status_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _maxrss_kb() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS, KiB on Linux
