"""`tuneserve study sanity`, `study lr-range-test`, `study narrow` and what `study status` and
`study trials` show of the gates, against a real server; a client plays the worker."""
from __future__ import annotations

import httpx
import numpy as np

from tests.test_cli import cli  # noqa: F401  (the fixture: a CliRunner over the app)
from tuneserve._defaults import API_PREFIX

SWEEP = """\
name: gated
method: random
metric: {name: val_loss, goal: minimize}
run_cap: 4
seed: 3
sanity: {samples: 16, max_epochs: 5}
lr_range_test: true
parameters:
  lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
  width: {values: [8, 16]}
"""


def _play_gates(url: str) -> None:
    with httpx.Client(base_url=url + API_PREFIX, timeout=30) as c:
        lease = c.post("/trials/claim", json={"worker_id": "w", "study": "gated"}).json()
        assert lease["kind"] == "sanity"
        for step, (loss, acc) in enumerate([(2.3, 0.1), (0.9, 0.7), (0.05, 1.0)], start=1):
            metrics = {"train_loss": loss, "train_acc": acc, **({"initial_loss": 2.3, "num_classes": 10} if step == 1 else {})}
            c.post(f"/trials/{lease['trial_id']}/report", json={"lease_token": lease["lease_token"], "step": step,
                                                               "metrics": metrics}).raise_for_status()
        c.post(f"/trials/{lease['trial_id']}/complete",
               json={"lease_token": lease["lease_token"], "outcome": {"supported": True}}).raise_for_status()
        lease = c.post("/trials/claim", json={"worker_id": "w", "study": "gated"}).json()
        assert lease["kind"] == "lr_range"
        lrs = np.geomspace(1e-6, 10.0, 120)
        x = np.log10(lrs / 0.03)
        loss = 2.3 - 1.8 / (1 + np.exp(-3 * (x + 1.0))) + np.where(x > 0, 4 * x ** 2, 0)
        c.post(f"/trials/{lease['trial_id']}/complete",
               json={"lease_token": lease["lease_token"],
                     "outcome": {"curve": {"lr": lrs.tolist(), "loss": loss.tolist()}}}).raise_for_status()


def test_gates_from_the_command_line(cli, live_server, tmp_path):
    url = live_server.url
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP)
    assert cli("study", "create", str(sweep), "-s", url).exit_code == 0
    r = cli("study", "status", "gated", "-s", url)
    assert "gate: ordinary trials wait for the sanity check to end" in r.output
    assert "sanity check: pending" in r.output and "lr range test: pending" in r.output

    _play_gates(url)
    r = cli("study", "status", "gated", "-s", url)
    assert r.exit_code == 0, r.output
    assert "gate:" not in r.output
    assert "sanity check: passed: after 3 epochs on 16 samples the training loss went from 2.3 to 0.05" in r.output
    assert "lr range test: done: suggested lr" in r.output
    assert "advice: the range test suggests lr" in r.output

    r = cli("study", "trials", "gated", "-s", url)
    assert "-1 (sanity)" in r.output and "-2 (lr_range)" in r.output

    r = cli("study", "narrow", "gated", "-s", url)
    assert r.exit_code == 0, r.output
    assert "narrowed lr: [0.0001, 0.1] -> [" in r.output
    r = cli("study", "narrow", "gated", "--undo", "-s", url)
    assert r.exit_code == 0 and "restored lr to [0.0001, 0.1]" in r.output
    r = cli("study", "narrow", "gated", "--undo", "-s", url)
    assert r.exit_code == 1 and "no narrowing is in force" in r.output

    r = cli("study", "lr-range-test", "gated", "--steps", "50", "-s", url)
    assert r.exit_code == 0 and "lr range test: pending" in r.output
    r = cli("study", "sanity", "gated", "-s", url)
    assert r.exit_code == 1 and "its lr range test is pending" in r.output
