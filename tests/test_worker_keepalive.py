"""The worker's keep-alive (issue 21), against a real server: a worker that reports within every
third of its lease sends no heartbeats (one renewal for the first provisional diagnosis), and one
whose epochs outlast a third of the lease renews through POST /leases/renew and keeps its trial."""
from __future__ import annotations

import re
import threading
import time

import pytest

from tests.support.live_server import LiveServer
from tuneserve.client import JsonClient
from tuneserve_workers.loop import Worker


@pytest.fixture
def server(tmp_path):
    live = LiveServer(f"sqlite:///{tmp_path / 'keepalive.db'}", log_path=tmp_path / "server.log")
    live.start()
    yield live
    live.stop()


def run_worker(url: str, study: str, objective) -> None:
    worker = Worker(url, objective, worker_id="w", study=study, exit_when_done=True, idle_cap=0.2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the worker did not finish its study"


def metrics_text(url: str) -> str:
    import httpx
    return httpx.get(url + "/metrics").text


def count(text: str, route: str) -> int:
    return sum(int(float(m)) for m in re.findall(
        r'tuneserve_http_requests_total\{[^}]*route="' + re.escape(route) + r'"[^}]*\} (\S+)', text))


def study(client: JsonClient, name: str, lease_seconds: float) -> None:
    client.create_study(name=name, method="random", parameters={"x": {"min": 0.0, "max": 1.0}}, max_trials=1,
                        lease_seconds=lease_seconds, metric={"name": "val_loss", "goal": "minimize"})


def test_a_worker_reporting_often_sends_no_heartbeats(server):
    client = JsonClient(server.url, retry_seconds=5)
    # A beat every 2 s unless a report renewed the lease. Reports come every 0.25 s for 6 s: a worker
    # that did not fold its beats into reports would send about 3, and only a report held up for
    # over 1.75 s lets one through (a 3 s lease, a 0.75 s margin, flaked on a loaded CI box).
    study(client, "often", lease_seconds=6.0)

    def objective(params, ctx):
        for step in range(1, 25):
            time.sleep(0.25)
            ctx.report(step, val_loss=1.0 / step, train_loss=1.0 / step)
        return 1.0 / 24

    run_worker(server.url, "often", objective)
    text = metrics_text(server.url)
    assert count(text, "/api/v1/trials/{trial_id}/heartbeat") == 0
    assert count(text, "/api/v1/leases/renew") == 1  # the first provisional diagnosis, then none
    assert count(text, "/api/v1/trials/{trial_id}/report") == 24
    (trial,) = client.trials("often")["items"]
    assert trial["state"] == "completed" and trial["attempt"] == 0


def test_epochs_longer_than_a_third_of_the_lease_are_renewed(server):
    client = JsonClient(server.url, retry_seconds=5)
    study(client, "slow", lease_seconds=3.0)  # a renewal every second: 2 s of margin on a loaded box

    def objective(params, ctx):
        for step in (1, 2):
            time.sleep(3.5)  # longer than the whole lease: only renewals keep it
            ctx.report(step, val_loss=1.0 / step)
        return 0.5

    run_worker(server.url, "slow", objective)
    text = metrics_text(server.url)
    assert count(text, "/api/v1/leases/renew") >= 4 and count(text, "/api/v1/trials/{trial_id}/heartbeat") == 0
    (trial,) = client.trials("slow")["items"]
    assert trial["state"] == "completed" and trial["attempt"] == 0 and trial["value"] == 0.5
