"""Build the project's wheel from a clean copy of its sources (no caches, no venv), for the tests
that install it: tests/test_packaging.py (migrations ship inside) and tests/test_install_alone.py
(the client alone)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "service", "workers", "tuneserve", "migrations")


def build_wheel(tmp: Path) -> Path:
    """The wheel, built with --no-deps and without build isolation (no network) into tmp/dist."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp / "dist"), str(src)], cwd=tmp, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}\n{done.stderr}"
    (wheel,) = (tmp / "dist").glob("tuneserve-*.whl")
    return wheel
