"""What runs a study's trials, as the study and the worker both name it.

A study's `objective` is `program` when its document has a `program` or `command` (W&B's keys: a
worker runs that command line), `builtin:cnn`, a `module:function` name, or "" (any function worker:
studies made before objectives were matched). A worker sends the same name when it claims, and is
only handed trials of studies with the same objective (or "" when it runs a function).
"""
from __future__ import annotations

PROGRAM = "program"
BUILTIN_CNN = "builtin:cnn"
_ALIASES = {"builtin": BUILTIN_CNN, "cnn": BUILTIN_CNN, "builtin:cnn": BUILTIN_CNN}


def normalize_objective(name: str | None) -> str:
    """The canonical spelling: `builtin` and `cnn` are `builtin:cnn`; anything else as given."""
    name = (name or "").strip()
    return _ALIASES.get(name, name)
