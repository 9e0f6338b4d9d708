"""tuneserve for users: the typed REST client and the report helper for training programs.

    from tuneserve import Client                 # the API: studies, ask/tell, trials, logs
    from tuneserve import report, summary        # inside a program a worker runs (stdlib only)

`Client` and the error types are imported on first use, so a training script that only reports
does not import httpx or pydantic.
"""
from __future__ import annotations

from typing import Any

from tuneserve.report import in_trial, report, summary

__all__ = ["Client", "Trial", "JsonClient", "JsonTrial", "DEFAULT_SERVER", "report", "summary", "in_trial", "TuneserveError", "ApiError",
           "InvalidRequest", "Unauthorized", "NotFound", "Conflict", "LeaseLost", "ServerUnavailable"]

_LAZY = {"Client": "tuneserve.client", "Trial": "tuneserve.client", "JsonClient": "tuneserve.client",
         "JsonTrial": "tuneserve.client", "DEFAULT_SERVER": "tuneserve._defaults"}
_ERRORS = ("TuneserveError", "ApiError", "InvalidRequest", "Unauthorized", "NotFound", "Conflict",
           "LeaseLost", "ServerUnavailable")


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _ERRORS:
        return getattr(importlib.import_module("tuneserve.errors"), name)
    raise AttributeError(f"module 'tuneserve' has no attribute {name!r}")
