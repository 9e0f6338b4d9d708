"""A small study trained by a real worker process (CPU, digits): what the dashboard's browser tests
and the metrics test look at."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tuneserve.client import JsonClient

ROOT = Path(__file__).resolve().parents[2]
# Real training kept tiny: half of digits, 8 filters, a fraction of a second per epoch.
PARAMETERS = {
    "dataset": {"value": "digits"}, "width": {"value": 8}, "data_fraction": {"value": 0.5},
    "batch_size": {"value": 32}, "epochs": {"value": 3},
    "lr": {"distribution": "log_uniform_values", "min": 0.003, "max": 0.1},
    "optimizer": {"values": ["adam", "sgd"]},
}


def start_worker(url: str, study: str, log: Path, worker_id: str) -> subprocess.Popen:
    """`python -m tuneserve_workers.cli` on the CPU for `study`, one torch thread, its output in `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "tuneserve_workers.cli", "--server", url, "--study", study, "--device", "cpu",
         "--worker-id", worker_id, "--idle-max", "0.5"],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen) -> None:
    """SIGTERM (it drains), then SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_study(url: str, name: str, log_dir: Path, trials: int = 3, epochs: int = 3, timeout: float = 180.0) -> dict:
    """Create a random-search study of `trials` trials, run one worker until every trial has ended,
    stop it (SIGTERM), and return the study's read."""
    with JsonClient(url, retry_seconds=5) as api:
        api.create_study(name=name, method="random", max_trials=trials, lease_seconds=30, seed=5,
                         objective="builtin:cnn", parameters={**PARAMETERS, "epochs": {"value": epochs}},
                         description="trained by a real worker in the tests")
        log = log_dir / f"worker-{name}.log"
        proc = start_worker(url, name, log, f"w-{name}")
        try:
            deadline = time.monotonic() + timeout
            while True:
                study = api.get_study(name)
                c = study["counts"]
                if c["completed"] + c["pruned"] + c["failed"] + c["diverged"] >= trials:
                    return study
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the worker did not finish {trials} trials:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        finally:
            stop_worker(proc)
