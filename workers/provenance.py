"""What a run is, for the trial's provenance (tuneserve.schemas.provenance.Provenance): the package
versions of this worker (python, torch, CUDA, cuDNN, numpy, tuneserve), the device, and which code
ran: a git commit with a dirty flag when the code lives in a git work tree, and a sha256 of it
always (a program's file; an objective's module; the built-in trainer's package, its .py files by
name). The objective adds its own facts to `context.provenance` before its first report (the
built-in trainer: seed, data subset, determinism flags; a program's runner: its command line and
code). The worker sends the whole with the attempt's first report (loop.ServerContext).

The environment is read once per process, the built-in trainer's code once too; a program's file
is hashed (and git asked about it, 3 short `git` calls) once per trial, not per epoch.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

GIT_TIMEOUT = 5.0


@functools.lru_cache(maxsize=8)
def environment(device: str) -> dict[str, Any]:
    """versions and device name of this process (cached: they do not change while it runs)."""
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    versions = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                "cudnn": str(cudnn) if cudnn is not None else None, "numpy": version("numpy"),
                "tuneserve": version("tuneserve"), "platform": platform.platform()}
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" and torch.cuda.is_available() else dev.type
    return {"versions": versions, "device": name}


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_ref(path: Path) -> dict[str, Any]:
    """{git_commit, git_dirty} of the work tree holding `path` ({} outside one, or without git).
    Dirty: a tracked file changed since the commit, or `path` itself is not tracked."""
    where = path if path.is_dir() else path.parent
    commit = _git(where, "rev-parse", "HEAD")
    if not commit:
        return {}
    changed = _git(where, "status", "--porcelain", "--untracked-files=no")
    tracked = path.is_dir() or _git(where, "ls-files", "--error-unmatch", "--", path.name) is not None
    return {"git_commit": commit.strip(), "git_dirty": bool(changed and changed.strip()) or not tracked}


def code_of_file(path: str | os.PathLike) -> dict[str, Any]:
    """A file's code reference: its path, sha256, and its git commit and dirty flag when in git."""
    p = Path(path).resolve()
    return {"path": str(p), "sha256": file_sha256(p), **git_ref(p)}


@functools.lru_cache(maxsize=1)
def builtin_code() -> dict[str, Any]:
    """The built-in trainer's code: its package's .py files hashed in name order (plus git)."""
    from tuneserve_workers import training

    package = Path(training.__file__).resolve().parent
    digest = hashlib.sha256()
    for f in sorted(package.glob("*.py")):
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return {"path": str(package), "sha256": digest.hexdigest(), **git_ref(package)}


def code_of_objective(objective: Any) -> dict[str, Any] | None:
    """The code of an objective callable: the built-in trainer's package, a user function's file."""
    from tuneserve_workers.training.run import train_cnn

    if objective is train_cnn:
        return builtin_code()
    try:
        source = inspect.getsourcefile(objective if inspect.isfunction(objective) else type(objective))
    except TypeError:
        source = None
    return code_of_file(source) if source else None


def for_run(*, device: str, worker_id: str, objective_name: str | None, objective: Any, params: dict[str, Any],
            attempt: int, extra: dict[str, Any]) -> dict[str, Any]:
    """The provenance a worker sends: the environment, the objective's code, the params as handed,
    then what the objective itself added (`extra`: context.provenance), which wins."""
    base: dict[str, Any] = {"attempt": attempt, "worker_id": worker_id, "objective": objective_name,
                            "params": params, **environment(device)}
    seed = params.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        base["seed"] = seed
    if "code" not in extra:  # a program's runner says which program ran
        code = code_of_objective(objective)
        if code:
            base["code"] = code
    # No command line for an objective run in-process: the worker's own argv may carry its token.
    return {**base, **extra}
