"""GET /metrics against real servers: after a study that a real worker trained, the counters and the
database-backed gauges match what is stored (SQLite and PostgreSQL); and with several server
processes (prometheus-client's multiprocess mode) every scrape sums all of them."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tuneserve_service.db.migrate import upgrade
from tuneserve_service.launch import free_port, wait_healthy
from tuneserve_service.observability.metrics import prepare_multiprocess_dir
from tests.support.worker_run import run_study
from tuneserve.client import JsonClient

ROOT = Path(__file__).resolve().parents[1]


def scrape(url: str) -> dict[str, list]:
    """Samples by name, parsed with prometheus-client's own text parser."""
    text = httpx.get(url + "/metrics", timeout=30).text
    samples: dict[str, list] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name].append(s)
    return samples


def value(samples, name: str, **labels) -> float:
    found = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


@pytest.mark.one_backend("postgres")
def test_counters_match_the_trials_a_real_worker_ran(live_server, tmp_path):
    study = run_study(live_server.url, "metered", tmp_path, trials=3)
    with JsonClient(live_server.url) as api:
        stored = [api.get_trial(t["id"]) for t in api.trials("metered")["items"]]
    m = scrape(live_server.url)

    assert value(m, "tuneserve_trial_claims_total") == sum(t["attempt"] + 1 for t in stored if t["started_at"])
    assert value(m, "tuneserve_trial_reports_total") == sum(len(t["reports"]) for t in stored) == 9
    for state in ("completed", "pruned", "failed", "diverged"):
        assert value(m, "tuneserve_trials_ended_total", state=state) == study["counts"][state], state
        assert value(m, "tuneserve_trials", study="metered", state=state) == study["counts"][state], state
    assert study["counts"]["completed"] == 3
    assert value(m, "tuneserve_suggest_duration_seconds_count", method="random") >= 1
    assert value(m, "tuneserve_workers_seen") == 1  # the one worker, which ended a trial just now
    assert value(m, "tuneserve_database_up") == 1

    routes = {s.labels["route"] for s in m["tuneserve_http_requests_total"]}
    assert "/api/v1/trials/{trial_id}/complete" in routes and "/api/v1/trials/claim" in routes
    assert not any(any(ch.isdigit() for ch in r.replace("api/v1", "")) for r in routes), routes  # templates, not ids
    ok_completes = value(m, "tuneserve_http_requests_total", route="/api/v1/trials/{trial_id}/complete",
                         method="POST", status="200")
    assert ok_completes == 3
    assert value(m, "tuneserve_http_request_duration_seconds_count",
                 route="/api/v1/trials/{trial_id}/complete", method="POST") == 3


def counter_files(directory: str) -> list[Path]:
    return sorted(Path(directory).glob("counter_*.db"))


def test_several_processes_are_summed_in_every_scrape(tmp_path):
    url = f"sqlite:///{tmp_path / 'multi.db'}"
    upgrade(url)
    metrics_dir = prepare_multiprocess_dir(str(tmp_path / "prom"))
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # set for the servers only, not this test process
    port = free_port()
    env = {**os.environ, "TUNESERVE_DATABASE_URL": url, "TUNESERVE_AUTO_MIGRATE": "false",
           "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tuneserve_service.main:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2", "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdout=open(tmp_path / "server.log", "wb"), stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, timeout=90)
        with httpx.Client(base_url=base, timeout=30) as c:
            c.post("/api/v1/studies", json={"name": "mp", "parameters": {"x": {"min": 0.0, "max": 1.0}},
                                            "max_trials": 50}).raise_for_status()
        n = 60

        def hit(_):
            with httpx.Client(base_url=base, timeout=30) as c:  # a new connection each: spreads over processes
                assert c.get("/api/v1/studies/mp").status_code == 200

        deadline = time.monotonic() + 60
        while len(counter_files(metrics_dir)) < 2:  # each process makes its file when it imports the app
            assert time.monotonic() < deadline, "the second server process did not start"
            time.sleep(0.2)
        time.sleep(1.0)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(hit, range(n)))
        per_process = [sum(v for key, v, *_ in MmapedDict.read_all_values_from_file(str(path))
                           if "tuneserve_http_requests_total" in key and '"/api/v1/studies/{name}"' in key)
                       for path in counter_files(metrics_dir)]
        assert sum(per_process) == n and all(v > 0 for v in per_process), per_process  # both answered some
        for _ in range(6):  # whichever process answers the scrape, it reports the sum
            m = scrape(base)
            assert value(m, "tuneserve_http_requests_total", route="/api/v1/studies/{name}",
                         method="GET", status="200") == n
            assert value(m, "tuneserve_http_requests_total", route="/api/v1/studies",
                         method="POST", status="201") == 1
            assert len(m["tuneserve_database_up"]) == 1  # the database is read once per scrape
            assert value(m, "tuneserve_trials", study="mp", state="waiting") == 0
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
