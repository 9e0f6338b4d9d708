"""The objective loader: `builtin:cnn`, `module:function` or `path/to/file.py:function` to a callable
`(params, context) -> float | dict`, and (re-exported) the objective contract of contract.py, so
`from tuneserve_workers.training.objective import Context, load_objective` keeps working.

The loader lives apart from the contract because it knows the built-in trainer (run.py), and the
trainers import the contract: contract <- run <- objective runs one way.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from tuneserve_workers.training.contract import (
    Context,
    Diverged,
    LocalContext,
    LrRangeRequest,
    Objective,
    SanityRequest,
    Unsupported,
    metric_value,
    objective_name,
    supports_lr_range,
    supports_sanity,
)
from tuneserve_workers.training.run import train_cnn

__all__ = ["Context", "Diverged", "LocalContext", "LrRangeRequest", "Objective", "SanityRequest", "Unsupported",
           "load_objective", "metric_value", "objective_name", "supports_lr_range", "supports_sanity"]


def load_objective(spec: str) -> Objective:
    """`builtin:cnn`, `package.module:function`, or `path/to/file.py:function`."""
    if spec in ("builtin:cnn", "builtin", "cnn"):
        return train_cnn
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"objective must be 'builtin:cnn' or 'module:function', got {spec!r}")
    if module_name.endswith(".py"):
        path = os.path.abspath(module_name)
        mod_spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
        if mod_spec is None or mod_spec.loader is None:
            raise ValueError(f"cannot load objective file {path}")
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` would: the user's module beside them
        module = importlib.import_module(module_name)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(f"{module_name} has no callable {func_name!r}")
    return func
