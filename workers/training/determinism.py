"""The trainer's determinism settings for one run, set on entry and restored on exit, and what they
were (for the trial's provenance).

On CPU the built-in trainer is deterministic as it is: every random draw comes from the trial's
`seed` (model init and dropout from torch's global generator, seeded first; the data order and
augmentation from a torch.Generator of the same seed), and the CPU kernels it uses reduce in a fixed
order for a given thread count. On CUDA, the default favours speed: cuDNN benchmarks and picks
convolution algorithms per run (`cudnn.benchmark`), and some backward kernels accumulate with atomics.
The `deterministic` knob trades that speed away: benchmark off, `cudnn.deterministic` on,
`torch.use_deterministic_algorithms(True, warn_only=True)` (an op with no deterministic kernel
warns rather than fails) and `CUBLAS_WORKSPACE_CONFIG=:4096:8` when unset (it only takes effect if
no cuBLAS handle exists yet in the process: set it in the worker's environment to be sure).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import torch


@contextmanager
def run_settings(device: torch.device, deterministic: bool) -> Iterator[dict[str, Any]]:
    """Set the run's flags; yields what they are (recorded in the trial's provenance)."""
    cudnn = torch.backends.cudnn
    before = (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    on_cuda = device.type == "cuda"
    try:
        if on_cuda:
            cudnn.benchmark = not deterministic
            cudnn.deterministic = deterministic
        if deterministic:
            if on_cuda:
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield {"deterministic": deterministic, "cudnn_benchmark": bool(cudnn.benchmark) and on_cuda,
               "cudnn_deterministic": bool(cudnn.deterministic),
               "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
               "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
               "num_threads": torch.get_num_threads()}
    finally:
        cudnn.benchmark, cudnn.deterministic = before[0], before[1]
        torch.use_deterministic_algorithms(before[2], warn_only=before[3])
