"""A rerun reproduces a CPU trial (issue 19 item 5), end to end: a live server, a real CPU worker
process, the built-in trainer on a tiny digits model for 3 epochs with dropout and augmentation;
the trial is rerun through the API (into its finished study, and into another study), and the
stored per-epoch train and val losses of the reruns equal the original's to 1e-6. Each trial's
provenance is what the worker sent: the same versions, code hash, seed and data subset."""
from __future__ import annotations

import pytest

from tests.helpers import wait_for
from tests.test_worker_daemon import api, server, workers  # noqa: F401  (fixtures)

SPACE = {"width": {"value": 8}, "data_fraction": {"value": 0.5}, "batch_size": {"value": 32},
         "epochs": {"value": 3}, "dropout": {"value": 0.3}, "crop_padding": {"value": 1},
         "lr": {"min": 0.01, "max": 0.1}}


def losses(api, trial_id: int) -> list[tuple[int, float, float]]:
    trial = api.get_trial(trial_id)
    return [(r["step"], r["metrics"]["train_loss"], r["metrics"]["val_loss"]) for r in trial["reports"]]


def completed(api, trial_id: int):
    return lambda: api.get_trial(trial_id)["state"] == "completed"


@pytest.mark.slow  # about 20 s on the loaded 2-core box: a worker process, three 3-epoch trials
def test_a_rerun_reproduces_the_per_epoch_losses_on_cpu(api, workers):
    """On SQLite only (the server fixture without database_url): what is checked is the worker's;
    the rerun route on both backends is tests/test_rerun.py's."""
    for name in ("orig", "again"):
        api.create_study(name=name, method="random", max_trials=1, lease_seconds=30, seed=4, parameters=SPACE)
    api.request("POST", "/studies/orig/enqueue", json={"params": {"lr": 0.05, "seed": 11}})
    w = workers("w-rerun")   # serves any study: the original, then both reruns
    first = api.trials("orig")["items"][0]["id"]
    wait_for(completed(api, first), 120, "the original trial")
    same = api.rerun(first)["id"]
    other = api.rerun(first, study="again")["id"]
    wait_for(lambda: completed(api, same)() and completed(api, other)(), 120, "both reruns")
    assert w.proc.poll() is None

    original = losses(api, first)
    assert [s for s, _, _ in original] == [1, 2, 3]
    for rerun in (same, other):
        again = losses(api, rerun)
        assert [s for s, _, _ in again] == [1, 2, 3]
        for (_, t0, v0), (_, t1, v1) in zip(original, again):
            assert t1 == pytest.approx(t0, abs=1e-6) and v1 == pytest.approx(v0, abs=1e-6)
        read = api.get_trial(rerun)
        assert read["rerun_of"] == first and read["params"] == api.get_trial(first)["params"]
    p0, p1 = api.get_trial(first)["provenance"], api.get_trial(other)["provenance"]
    assert p0["seed"] == p1["seed"] == 11 and p0["objective"] == "builtin:cnn"
    for key in ("versions", "code", "fidelity", "determinism", "params", "device"):
        assert p0[key] == p1[key], key
    assert p0["fidelity"]["data_fraction"] == 0.5 and len(p0["code"]["sha256"]) == 64
    assert p0["determinism"]["num_threads"] == 1  # OMP_NUM_THREADS=1 (see the README on threads)
    final = api.get_trial(first)["metrics"]
    assert final["param_count"] > 0 and final["flops"] > 0 and final["latency_ms"] > 0
