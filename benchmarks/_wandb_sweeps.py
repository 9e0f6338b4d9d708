"""Load W&B's open-source `sweeps` package for the W&B comparison benchmarks (dev only).

`--sweeps-src PATH` names either a checkout of github.com/wandb/sweeps (a folder with
src/sweeps/) or a bare git mirror of it, whose HEAD is then unpacked into a temporary folder.
W&B's package also needs jsonschema and jsonref (`pip install jsonschema jsonref`, the `bench`
extra has them). Nothing in the service or the tests imports it.
"""
from __future__ import annotations

import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path


def load_sweeps(path: str):
    """Import W&B's `sweeps` package from `path`; returns the module."""
    root = Path(path)
    if not (root / "src" / "sweeps").is_dir():
        if not (root / "HEAD").exists():
            raise SystemExit(f"{path}: neither a checkout of W&B's sweeps (src/sweeps) nor a bare git mirror")
        archive = subprocess.run(["git", "-C", str(root), "archive", "HEAD"], check=True, capture_output=True).stdout
        root = Path(tempfile.mkdtemp(prefix="wandb-sweeps-"))
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(root, filter="data")
    sys.path.insert(0, str(root / "src"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # its pydantic v1-style Config
        try:
            return importlib.import_module("sweeps")
        except ModuleNotFoundError as err:
            raise SystemExit(f"W&B's sweeps package needs {err.name}: pip install jsonschema jsonref") from None
