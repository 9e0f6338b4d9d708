"""Coarse to fine end to end: a real server, a real worker (the built-in trainer on digits, tiny), a
staged study created from a YAML file with the CLI, followed by the worker from its first stage to
its last; then `study status`, `study trials`, `study refine`, `study repeat` and the export."""
from __future__ import annotations

import csv
import io
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tuneserve_service.cli import app
from tests.support.worker_run import start_worker, stop_worker

STAGED = """\
name: digits-c2f
method: random
seed: 4
objective: builtin:cnn
lease_seconds: 30
metric: {name: val_loss, goal: minimize}
parameters:
  dataset: {value: digits}
  width: {value: 8}
  batch_size: {value: 32}
  lr: {distribution: log_uniform_values, min: 0.003, max: 0.3}
  optimizer: {values: [adam, sgd]}
stages:
  - {trials: 3, epochs: 1, data_fraction: 0.3}
  - {refine: {top_k: 2}, trials: 2, epochs: 2, repeat_top: {top_k: 1, seeds: 2}}
"""


@pytest.fixture
def cli(monkeypatch):
    runner = CliRunner()
    # Wide enough that the trial table does not wrap. The console read COLUMNS when it was made, in
    # whichever earlier test of this process imported the CLI first, so set its width itself.
    from tuneserve_service.cli._api import out

    monkeypatch.setattr(out, "width", 200)

    def run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})

    return run


def wait_for(predicate, what: str, proc: subprocess.Popen, log: Path, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")


@pytest.mark.one_backend("sqlite")
def test_a_worker_follows_a_staged_study_to_its_last_stage(cli, live_server, tmp_path):
    url = live_server.url
    sweep = tmp_path / "c2f.yaml"
    sweep.write_text(STAGED)
    r = cli("study", "create", str(sweep), "-s", url)
    assert r.exit_code == 0 and "created study digits-c2f" in r.output, r.output
    api = httpx.Client(base_url=url + "/api/v1", timeout=30)
    log = tmp_path / "worker.log"
    worker = start_worker(url, "digits-c2f", log, "w-c2f")
    try:
        def last_stage_done():
            study = api.get("/studies/digits-c2f").json()
            return study if study["stages"][-1]["state"] == "finished" else None

        study = wait_for(last_stage_done, "both stages to finish", worker, log)
    finally:
        stop_worker(worker)
    assert [(s["study"], s["state"], s["ended"]) for s in study["stages"]] == [
        ("digits-c2f", "finished", 3), ("digits-c2f-stage-1", "finished", 4)]
    first = api.get("/studies/digits-c2f/trials").json()["items"]
    second = api.get("/studies/digits-c2f-stage-1/trials").json()["items"]
    seed = study["fidelity"]["data_seed"]
    assert all(t["state"] == "completed" and t["fidelity"] == {"epochs": 1, "data_fraction": 0.3, "data_seed": seed}
               and t["last_step"] == 1 for t in first)
    assert all(t["state"] == "completed" and t["fidelity"] == {"epochs": 2, "data_fraction": 1.0, "data_seed": seed}
               and t["last_step"] == 2 for t in second)
    assert [t["method"] for t in second] == ["enqueued", "enqueued", "repeat", "repeat"]
    assert "study=digits-c2f-stage-1" in log.read_text()  # the worker, started on stage 0, ran stage 1

    r = cli("study", "status", "digits-c2f", "-s", url)
    assert r.exit_code == 0, r.output
    assert "fidelity: 1 epoch, 30% data" in r.output and "children: digits-c2f-stage-1 (stage, finished)" in r.output
    assert "stage 0: 3 trials at 1 epoch, 30% data" in r.output
    assert "→ stage 1: 2 trials at 2 epochs, 100% data, refine top 2, repeat top 1 x 2 | digits-c2f-stage-1: finished, 4/4 ended" in r.output
    r = cli("study", "status", "digits-c2f-stage-1", "-s", url)
    assert r.exit_code == 0 and "parent: digits-c2f (stage, finished)" in r.output, r.output
    best = api.get("/studies/digits-c2f-stage-1").json()["best_configuration"]
    assert best["count"] == 3 and f"best configuration: {best['mean']:.6g} ± {best['std']:.2g} (n=3)" in r.output
    r = cli("study", "trials", "digits-c2f-stage-1", "-s", url)
    assert r.exit_code == 0 and r.output.count("2 ep, 100%") == 4, r.output

    r = cli("study", "refine", "digits-c2f-stage-1", "--top-k", "2", "--max-trials", "3", "--epochs", "3",
            "--data-fraction", "0.5", "--name", "c2f-refined", "-s", url)
    assert r.exit_code == 0, r.output
    assert "created study c2f-refined, refined from digits-c2f-stage-1 (3 epochs, 50% data, budget 3 trials)" in r.output
    assert "lr: [" in r.output and "runs first" in r.output
    refined = api.get("/studies/c2f-refined").json()
    assert refined["parent"]["name"] == "digits-c2f-stage-1" and refined["counts"]["waiting"] == 2
    r = cli("study", "refine", "digits-c2f-stage-1", "--top-k", "9", "-s", url)
    assert r.exit_code == 1 and "top_k: must be <= " in r.output

    r = cli("study", "repeat", "digits-c2f", "--top-k", "1", "--seeds", "2", "-s", url)
    assert r.exit_code == 0 and "enqueued 2 repeat trials in digits-c2f (trials 3-4); budget now 5" in r.output, r.output
    out = tmp_path / "trials.csv"
    assert cli("study", "export", "digits-c2f-stage-1", "-o", str(out), "-s", url).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [row["fidelity.epochs"] for row in rows] == ["2"] * 4 and rows[0]["fidelity.data_fraction"] == "1.0"
    api.close()


@pytest.mark.one_backend("sqlite")
def test_watch_follows_a_staged_study_to_its_last_stage(cli, live_server):
    url = live_server.url
    doc = {"name": "watched", "method": "random", "seed": 1,
           "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}},
           "stages": [{"trials": 2, "data_fraction": 0.5}, {"refine": {"top_k": 1}, "trials": 2}]}
    httpx.post(f"{url}/api/v1/studies", json=doc).raise_for_status()

    def drive():  # a client serving the staged study by its first stage's name, slowly
        with httpx.Client(base_url=url + "/api/v1", timeout=30) as c:
            for _ in range(4):
                time.sleep(0.4)
                lease = c.post("/trials/claim", json={"worker_id": "w", "study": "watched"}).json()
                c.post(f"/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"],
                                                                      "value": lease["params"]["lr"]})

    runner = threading.Thread(target=drive)
    runner.start()
    try:
        r = cli("study", "status", "watched", "--watch", "--interval", "0.2", "-s", url)
    finally:
        runner.join(60)
    assert r.exit_code == 0, r.output
    assert "watched-stage-1" in r.output and "→ stage 1: 2 trials at 100% data" in r.output
    assert "watched-stage-1: finished, 2/2 ended" in r.output
