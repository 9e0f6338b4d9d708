"""A non-editable install (a wheel) carries its migrations and runs them: built from a copy of the
sources, installed with --no-deps into a fresh virtualenv that borrows this one's dependencies
through a .pth path line (so no network), and run from a folder outside the checkout."""
from __future__ import annotations

import site
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.wheel import build_wheel


def run(*argv: str, cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_its_migrations(tmp_path):
    wheel = build_wheel(tmp_path)
    src = tmp_path / "src"
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True).stdout
    assert "tuneserve_service/db/migrations/env.py" in names and "tuneserve_service/db/migrations/versions/0001_initial.py" in names
    assert "tuneserve_service/db/migrations/script.py.mako" in names and "tuneserve/report.py" in names
    # Every module of the checkout is in the wheel (a package added later is not silently left out).
    installed = {"service": "tuneserve_service", "workers": "tuneserve_workers", "tuneserve": "tuneserve"}
    modules = {installed[top] + "/" + str(p.relative_to(src / top)) for top in installed for p in (src / top).rglob("*.py")}
    missing = sorted(m for m in modules if m not in names)
    assert not missing, f"left out of the wheel: {missing}"

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel),
        cwd=tmp_path)
    # This venv's packages as a plain path line: its .pth files (our editable install) are not run.
    purelib = run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip()
    Path(purelib, "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    db = tmp_path / "installed.db"
    out = run(str(python), "-c", textwrap.dedent(f"""
        import tuneserve_service, tuneserve
        from tuneserve_service.db.migrate import migrations_dir, upgrade
        upgrade("sqlite:///{db}")
        print(tuneserve_service.__file__)
        print(migrations_dir())
    """), cwd=tmp_path)
    service_file, migrations = out.split()
    assert service_file.startswith(str(venv)), f"imported the checkout, not the wheel: {service_file}"
    assert migrations.startswith(str(venv)) and migrations.endswith("tuneserve_service/db/migrations")
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        (head,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"studies", "trials", "trial_reports", "trial_logs", "workers"} <= tables
    heads = run(str(python), "-c", "from alembic.script import ScriptDirectory; from tuneserve_service.db.migrate import "
                "alembic_config; print(ScriptDirectory.from_config(alembic_config('')).get_current_head())",
                cwd=tmp_path).strip()
    assert head == heads
