"""What a fleet needs from the server (issue 18), in-process on every backend: a worker registers
where it runs and a reader gets it back (a worker-role token may register), and /metrics exports
the open trials per study that KEDA scales workers on (budget not yet drawn included)."""
from __future__ import annotations

import re

from tuneserve_service.cli._workers import describe

SPACE = {"x": {"min": 0.0, "max": 1.0}}


def test_a_worker_registers_where_it_runs(client):
    identity = {"host": "gpu07", "scheduler": "slurm", "job_id": "100_3.1", "gpu": "NVIDIA H100", "device": "cuda:0"}
    r = client.put("/api/v1/workers/slurm-100_3.1-gpu07", json=identity)
    assert r.status_code == 200, r.text
    back = client.get("/api/v1/workers/slurm-100_3.1-gpu07").json()
    given = lambda read: {k: v for k, v in read["identity"].items() if v is not None}  # noqa: E731
    assert given(back) == identity and back["id"] == "slurm-100_3.1-gpu07"
    # A later claim by the same worker keeps the identity.
    client.post("/api/v1/studies", json={"name": "s", "max_trials": 2, "parameters": SPACE})
    lease = client.post("/api/v1/trials/claim", json={"worker_id": "slurm-100_3.1-gpu07", "study": "s"}).json()
    assert given(client.get("/api/v1/workers/slurm-100_3.1-gpu07").json()) == identity
    trial = client.get(f"/api/v1/trials/{lease['trial_id']}").json()
    assert trial["worker_id"] == "slurm-100_3.1-gpu07"
    assert describe(identity) == "host gpu07, slurm job 100_3.1, gpu NVIDIA H100"
    # The dashboard's trial page gets it with the trial's data (no second request that could 404).
    page = client.get(f"/dashboard/api/trials/{lease['trial_id']}").json()
    assert {k: v for k, v in page["ran_on"].items() if v is not None} == identity
    other = client.post("/api/v1/trials/claim", json={"worker_id": "never-registered", "study": "s"}).json()
    assert client.get(f"/dashboard/api/trials/{other['trial_id']}").json()["ran_on"] is None
    assert client.get("/api/v1/workers/nobody").status_code == 404
    assert client.put("/api/v1/workers/w", json={"host": "h", "password": "x"}).status_code == 422


def test_open_trials_per_study_for_the_autoscaler(client):
    client.post("/api/v1/studies", json={"name": "queue", "max_trials": 5, "parameters": SPACE})
    client.post("/api/v1/studies", json={"name": "open-ended", "parameters": SPACE})

    def open_trials() -> dict[str, float]:
        text = client.get("/metrics").text
        return {m.group(1): float(m.group(2)) for m in
                re.finditer(r'^tuneserve_study_open_trials\{study="([^"]+)"\} (\S+)$', text, re.M)}

    assert open_trials() == {"queue": 5.0, "open-ended": 1.0}  # nothing drawn yet: the whole budget
    lease = client.post("/api/v1/trials/claim", json={"worker_id": "w", "study": "queue"}).json()
    assert open_trials()["queue"] == 5.0  # 1 running + 4 not yet drawn
    client.post(f"/api/v1/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"], "value": 1.0})
    assert open_trials()["queue"] == 4.0
    client.post("/api/v1/studies/queue/stop")
    assert "queue" not in open_trials()  # a stopped study needs no worker: KEDA scales to zero


def test_trial_show_says_where_the_trial_ran(live_server):
    import httpx
    from typer.testing import CliRunner

    from tuneserve_service.cli import app

    with httpx.Client(base_url=live_server.url + "/api/v1", timeout=30) as c:
        c.post("/studies", json={"name": "shown", "max_trials": 1, "parameters": SPACE}).raise_for_status()
        c.put("/workers/slurm-7_1.0-n1", json={"host": "n1", "scheduler": "slurm", "job_id": "7_1"}).raise_for_status()
        lease = c.post("/trials/claim", json={"worker_id": "slurm-7_1.0-n1", "study": "shown"}).json()
    r = CliRunner().invoke(app, ["trial", "show", str(lease["trial_id"]), "--server", live_server.url],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "ran on: host n1, slurm job 7_1, device cpu" in r.output
