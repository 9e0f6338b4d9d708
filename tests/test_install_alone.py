"""`pip install tuneserve` is the client alone. The wheel is built from a copy of the sources and
installed, with no extras, into a fresh virtualenv from the package index (this test needs PyPI, or
the index pip is configured with: without one it fails, it is never skipped). Then: none of the
server's, the worker's or the command line's dependencies came with it; `from tuneserve import
Client, report, summary` works there and the Client drives a live server through a study; and the
`tuneserve` console script names the extra to install instead of printing a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.wheel import build_wheel

# What the client needs, and what it must not bring: the server, the worker, the command line.
CLIENT_NEEDS = {"httpx", "pydantic", "tenacity"}
NOT_WITH_THE_CLIENT = {
    "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "psycopg-binary", "pydantic-settings",
    "hyperopt", "bayesian-optimization", "numpy", "scipy", "plotly", "scikit-learn", "torch", "jinja2",
    "prometheus-client", "python-slugify", "swagger-ui-bundle", "typer", "click", "rich", "pyyaml",
}

pytestmark = [pytest.mark.slow, pytest.mark.network]


def run(*argv: str, cwd: Path, ok: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed from the index, no extras; its python."""
    tmp = tmp_path_factory.mktemp("install-alone")
    wheel = build_wheel(tmp)
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", str(venv), cwd=tmp)
    python = venv / "bin" / "python"
    # The dependencies come from the index (PyPI), not from this checkout's environment.
    run(str(python), "-m", "pip", "install", "-q", str(wheel), cwd=tmp)
    return python


def test_the_client_installs_alone(client_venv, tmp_path):
    listed = run(str(client_venv), "-m", "pip", "list", "--format", "json", cwd=tmp_path).stdout
    names = {d["name"].lower().replace("_", "-") for d in json.loads(listed)}
    print("pip list in the client's venv:", ", ".join(sorted(names)))  # shown with -s, and on failure
    assert "tuneserve" in names and CLIENT_NEEDS <= names, sorted(names)
    brought = sorted(names & NOT_WITH_THE_CLIENT)
    assert not brought, f"`pip install tuneserve` brought {brought}"
    # The metadata says it too: every other requirement is behind an extra.
    requires = run(str(client_venv), "-c", "import importlib.metadata as m; print('\\n'.join(m.requires('tuneserve')))",
                   cwd=tmp_path).stdout.splitlines()
    plain = sorted(r.split(">")[0].split(";")[0].strip().lower() for r in requires if "extra ==" not in r)
    assert plain == sorted(CLIENT_NEEDS), plain


def test_the_installed_client_drives_a_live_server(client_venv, live_server, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import tuneserve
        from tuneserve import Client, report, summary
        assert tuneserve.__file__.startswith(sys.prefix), tuneserve.__file__  # the wheel, not the checkout
        report(step=1, val_loss=0.5)   # outside a worker: does nothing
        with Client({live_server.url!r}, token="") as client:
            client.create_study(name="alone", method="random", max_trials=2, seed=1,
                                metric={{"name": "val_loss", "goal": "minimize"}},
                                parameters={{"lr": {{"min": 0.001, "max": 0.1}}}})
            for value in (0.4, 0.2):
                (trial,) = client.ask("alone")
                assert trial.report(1, val_loss=value + 0.1)
                trial.complete(value)
            study = client.get_study("alone")
            print(study.state.value, study.counts.completed, study.best_trial.value)
        loaded = sorted(m for m in ("fastapi", "sqlalchemy", "typer", "torch", "numpy") if m in sys.modules)
        print("loaded:", loaded)
    """)
    done = run(str(client_venv), "-c", script, cwd=tmp_path)
    state, completed, best = done.stdout.splitlines()[0].split()
    assert (state, completed, float(best)) == ("finished", "2", 0.2)
    assert done.stdout.splitlines()[1] == "loaded: []"


def test_the_console_script_names_the_extra(client_venv, tmp_path):
    tuneserve = client_venv.parent / "tuneserve"
    for argv, extra in ((["study", "list"], "tuneserve[server]"), (["server"], "tuneserve[server]"),
                        (["worker", "--study", "s"], "tuneserve[worker]"), (["demo"], "tuneserve[server,worker]"),
                        ([], "tuneserve[server]")):
        done = run(str(tuneserve), *argv, cwd=tmp_path, ok=False)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert f"pip install '{extra}'" in done.stderr and "Traceback" not in done.stderr, (argv, done.stderr)
