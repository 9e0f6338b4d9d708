"""Sweep programs end to end: a real uvicorn server, a real `tuneserve worker --study` process, and
real programs: the example argparse script run unchanged by its sweep YAML, a crash, and a stop."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.support.live_server import LiveServer
from tuneserve import Client

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(tmp_path):
    live = LiveServer(f"sqlite:///{tmp_path / 'tuneserve.db'}", log_path=tmp_path / "server.log")
    live.start()
    yield live
    live.stop()


@pytest.fixture
def api(server):
    with Client(server.url, retry_seconds=10) as client:
        yield client


class Worker:
    def __init__(self, url: str, tmp_path: Path, study: str, *extra: str):
        self.log_path = tmp_path / "worker.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tuneserve_workers.cli", "--server", url, "--study", study, "--device", "cpu",
             "--worker-id", "pw", "--idle-max", "0.5", "--runs-dir", str(tmp_path / "runs"), *extra],
            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not stop:\n{self.log}")


def wait_until(predicate, timeout: float, what: str, worker: Worker | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited while waiting for {what}:\n{worker.log}")
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f":\n{worker.log}" if worker else ""))


def test_the_example_script_runs_unchanged_from_its_sweep_yaml(api, server, tmp_path):
    sweep = yaml.safe_load((ROOT / "examples/digits_cnn/sweep.yaml").read_text())
    # Smaller for a test on a busy 2-core machine; the script and its command are as shipped.
    sweep.update(run_cap=2)
    sweep.pop("early_terminate")
    sweep["parameters"].update(epochs={"value": 2}, width={"values": [8]})
    study = api.create_study(sweep)
    assert study.objective == "program" and study.program == "examples/digits_cnn/train.py"
    assert study.runner_warning is not None  # no worker yet
    worker = Worker(server.url, tmp_path, "digits-cnn", "--log-interval", "1")
    try:
        wait_until(lambda: api.get_study("digits-cnn").runnable_by_workers == 1, 120, "the worker to claim", worker)
        wait_until(lambda: api.get_study("digits-cnn").counts.completed == 2, 300, "2 completed trials", worker)
    finally:
        assert worker.stop() == 0
    assert "event=objective worker=pw study=digits-cnn objective=program" in worker.log
    for item in api.trials("digits-cnn").items:
        trial = api.get_trial(item.id)
        assert trial.state == "completed" and trial.worker_id == "pw"
        assert [r.step for r in trial.reports] == [1, 2]
        assert set(trial.reports[-1].metrics) == {"train_loss", "val_loss", "val_acc"}
        # No summary sent by a stopped run; this one sends summary(val_loss=last) and completes with it.
        assert trial.value == pytest.approx(trial.reports[-1].metrics["val_loss"])
        log = api.trial_log(trial.id)
        first = log.text.splitlines()[0]
        assert first.startswith(f"# tuneserve: trial {trial.id} attempt 0: /usr/bin/env python examples/digits_cnn/train.py")
        assert ("--batch_norm" in first) == trial.params["batch_norm"]  # ${args_no_boolean_flags}
        assert f"--lr={trial.params['lr']}" in first and "--batch_norm=" not in first
        assert "epoch 2: train_loss" in log.text and not log.truncated
        assert (tmp_path / "runs" / "digits-cnn" / f"trial-{trial.id}-0" / "output.log").read_text() == log.text
        # The provenance names the program's command line and code (tests/test_rerun.py for the rest).
        p = trial.provenance
        assert p.objective == "program" and p.command[:3] == ["/usr/bin/env", "python", "examples/digits_cnn/train.py"]
        assert p.code.path == str(ROOT / "examples/digits_cnn/train.py") and len(p.code.sha256) == 64


SLOW_OR_CRASH = """
    import argparse, signal, sys, time
    from tuneserve import report
    p = argparse.ArgumentParser()
    p.add_argument("--mode")
    a = p.parse_args()
    if a.mode == "crash":
        print("about to fail")
        raise ValueError("planted failure")
    signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(143)))
    for step in range(1, 1000):
        print(f"step {step}", flush=True)
        report(step, val_loss=1.0 / step)   # the answer is ignored on purpose: the signal stops it
        time.sleep(0.2)
"""


def test_a_crash_fails_with_stderr_and_a_stop_ends_the_program(api, server, tmp_path):
    program = tmp_path / "slow_or_crash.py"
    program.write_text(textwrap.dedent(SLOW_OR_CRASH))
    api.create_study(name="ctl", program=str(program), method="random", max_trials=2, lease_seconds=10,
                     metric={"name": "val_loss", "goal": "minimize"},
                     parameters={"mode": {"values": ["crash", "slow"]}})
    crash = api.enqueue("ctl", {"mode": "crash"})
    slow = api.enqueue("ctl", {"mode": "slow"})
    worker = Worker(server.url, tmp_path, "ctl", "--kill-grace", "2", "--log-interval", "0.5")
    try:
        failed = wait_until(lambda: (t := api.get_trial(crash.id)).state == "failed" and t, 180, "the crash", worker)
        assert failed.fail_kind == "error"
        assert failed.fail_reason.startswith("the program exited with status 1; stderr:")
        assert failed.fail_reason.rstrip().endswith("ValueError: planted failure")
        assert "about to fail" in api.trial_log(crash.id).text
        wait_until(lambda: (api.get_trial(slow.id).last_step or 0) >= 2, 120, "the slow trial's reports", worker)
        # The log of a running trial is uploaded as it grows.
        wait_until(lambda: "step 3" in _log_text(api, slow.id), 60, "the running trial's log", worker)
        assert api.get_trial(slow.id).state == "running"
        api.stop_study("ctl")
        pruned = wait_until(lambda: (t := api.get_trial(slow.id)).state == "pruned" and t, 60, "the stop", worker)
        assert pruned.stop_reason == "study is stopped"
        assert "got SIGTERM" in api.trial_log(slow.id).text
        assert re.search(rf"event=pruned worker=pw trial={slow.id}", worker.log)
    finally:
        assert worker.stop() == 0


TOGETHER = """
    import json, os, sys, time
    from pathlib import Path
    from tuneserve import summary
    meet = Path(sys.argv[1])
    (meet / os.environ["TUNESERVE_TRIAL_ID"]).write_text(os.environ["TUNESERVE_DEVICE"])
    deadline = time.time() + 120
    while len(list(meet.iterdir())) < 2:   # both slots' programs must be running at once
        if time.time() > deadline:
            sys.exit("the other slot's program never started")
        time.sleep(0.1)
    print(json.dumps({k: os.environ[k] for k in ("TUNESERVE_TRIAL_ID", "TUNESERVE_DEVICE", "CUDA_VISIBLE_DEVICES")}))
    summary(val_loss=float(os.environ["TUNESERVE_TRIAL_ID"]))
"""


def test_each_slot_runs_its_own_program_process(api, server, tmp_path):
    program = tmp_path / "together.py"
    program.write_text(textwrap.dedent(TOGETHER))
    meet = tmp_path / "meet"
    meet.mkdir()
    api.create_study(name="slots", command=["${env}", "${interpreter}", str(program), str(meet)],
                     method="random", max_trials=2, metric={"name": "val_loss", "goal": "minimize"},
                     parameters={"x": {"min": 0.0, "max": 1.0}})
    worker = Worker(server.url, tmp_path, "slots", "--slots", "2")
    try:
        wait_until(lambda: api.get_study("slots").counts.completed == 2, 240, "both slots' trials", worker)
    finally:
        assert worker.stop() == 0
    trials = [api.get_trial(t.id) for t in api.trials("slots").items]
    assert {t.worker_id for t in trials} == {"pw-s0", "pw-s1"}
    for t in trials:
        assert t.value == float(t.id)
        assert f'"TUNESERVE_TRIAL_ID": "{t.id}", "TUNESERVE_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""' in api.trial_log(t.id).text


def _log_text(api, trial_id: int) -> str:
    try:
        return api.trial_log(trial_id).text
    except Exception:  # noqa: BLE001 - no log uploaded yet (404)
        return ""


def test_sigterm_drains_a_program_trial_back_to_the_queue(api, server, tmp_path):
    program = tmp_path / "slow_or_crash.py"
    program.write_text(textwrap.dedent(SLOW_OR_CRASH))
    api.create_study(name="drain", program=str(program), method="random", max_trials=1, lease_seconds=10,
                     metric={"name": "val_loss", "goal": "minimize"}, parameters={"mode": {"values": ["slow"]}})
    worker = Worker(server.url, tmp_path, "drain", "--kill-grace", "2")
    trial = wait_until(lambda: next((t for t in api.trials("drain").items if (t.last_step or 0) >= 2), None),
                       120, "two reports", worker)
    assert worker.stop() == 0  # SIGTERM: the next report is answered stop, then SIGTERM to the program
    after = api.get_trial(trial.id)
    assert after.state == "waiting" and after.attempt == 0  # released, not failed: another worker redoes it
    assert "got SIGTERM" in api.trial_log(trial.id).text
    assert re.search(rf"event=released worker=pw trial={trial.id}", worker.log)
