"""The demo's study shows no fault label that contradicts the curves it cites (issue 17).

A real server on 127.0.0.1 and a real CPU worker train the built-in CNN on digits (the demo's space,
4 epochs, half the data) for a handful of trials, some enqueued to provoke faults (an lr far too
high, one far too low). Every stored diagnosis is then checked against the raw stored reports, not
against the rules: no overfitting while the raw validation loss is at its minimum at the last
report; every figure the evidence calls "last" equals the last report; no lr_too_high on a run whose
loss fell monotonically; no divergence without a non-finite or exploded loss; "still improving" only
at a new minimum; the variant changes one knob of the trial's own params.
"""
from __future__ import annotations

import math
import time

import httpx
import pytest

from tests.support.worker_run import start_worker, stop_worker
from tuneserve_service.cli.demo import PARAMETERS as DEMO

pytestmark = pytest.mark.usefixtures("one_torch_thread")
API = "/api/v1"
# The demo's space, a wider lr range (so the faults can be enqueued) and half of digits per epoch.
PARAMETERS = {**DEMO, "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 5.0},
              "data_fraction": {"value": 0.5}}
ENQUEUED = [
    {"optimizer": "sgd", "lr": 4.0, "weight_decay": 1e-5, "width": 16, "batch_size": 32, "dropout": 0.0},
    {"optimizer": "sgd", "lr": 1e-5, "weight_decay": 1e-4, "width": 8, "batch_size": 128, "dropout": 0.1},
    {"optimizer": "adam", "lr": 0.003, "weight_decay": 1e-5, "width": 32, "batch_size": 32, "dropout": 0.0},
]
TRIALS = 5
CHANCE = math.log(10)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-9)


def series(reports: list[dict], name: str) -> list[tuple[int, float]]:
    out = []
    for r in reports:
        v = r["metrics"].get(name)
        if isinstance(v, (int, float)):
            out.append((r["step"], float(v)))
        elif isinstance(v, str):  # "NaN" / "Infinity" as stored
            out.append((r["step"], float(v.replace("Infinity", "inf"))))
    return out


def contradictions(trial: dict) -> list[str]:
    d, reports = trial["diagnosis"], trial["reports"] or []
    if not d or not reports:
        return []
    label, ev, out = d["label"], d["evidence"], []
    train, val = series(reports, "train_loss"), series(reports, "val_loss")
    main = train or val
    last_step = reports[-1]["step"]
    finite_val = [v for _, v in val if math.isfinite(v)]
    if label == "overfitting" and val and math.isfinite(val[-1][1]) and val[-1][1] <= min(finite_val):
        out.append(f"overfitting while val_loss is at its minimum at the last report ({val[-1][1]})")
    for key, (name, rows) in {"val_last": ("val_loss", val), "train_last": ("train_loss", train),
                              "last": ("the main loss", main)}.items():
        if ev.get(key) is not None and rows and math.isfinite(rows[-1][1]) and not close(ev[key], rows[-1][1]):
            out.append(f"evidence {key} = {ev[key]} but the last report's {name} is {rows[-1][1]}")
    if "last_step" in ev and ev["last_step"] != last_step:
        out.append(f"evidence last_step = {ev['last_step']} but the last report is step {last_step}")
    losses = [v for _, v in train]
    if label == "lr_too_high" and len(losses) >= 2 and all(b < a for a, b in zip(losses, losses[1:])):
        out.append(f"lr_too_high on a training loss that fell monotonically: {losses}")
    if label == "diverged" and trial["state"] != "diverged":
        every = [v for name in ("train_loss", "val_loss") for _, v in series(reports, name)]
        if all(math.isfinite(v) and v <= 100 * CHANCE for v in every):
            out.append("diverged with every loss finite and below 100 ln C")
    if ev.get("still_improving") and val and not (val[-1][1] <= min(finite_val)):
        out.append("still_improving while the last val_loss is not its minimum")
    if d.get("provisional") and trial["state"] not in ("running", "waiting"):
        out.append("a provisional diagnosis on an ended trial")
    variant = d.get("variant")
    if variant:
        change = variant["params_change"]
        if len(change) != 1 or next(iter(change)) not in trial["params"]:
            out.append(f"the variant changes {change}, not one knob of the trial's params")
    return out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_stored_label_contradicts_the_raw_curves(live_server, tmp_path):
    url = live_server.url
    with httpx.Client(base_url=url + API, timeout=30) as c:
        r = c.post("/studies", json={"name": "demo", "method": "random", "metric": {"name": "val_loss", "goal": "minimize"},
                                     "parameters": PARAMETERS, "max_trials": TRIALS, "seed": 0, "lease_seconds": 30,
                                     "objective": "builtin:cnn"})
        assert r.status_code == 201, r.text
        for params in ENQUEUED:
            assert c.post("/studies/demo/enqueue", json={"params": params}).status_code == 201
        log = tmp_path / "worker.log"
        proc = start_worker(url, "demo", log, "w-demo")
        try:
            deadline = time.monotonic() + 150
            while True:
                counts = c.get("/studies/demo").json()["counts"]
                if sum(counts[s] for s in ("completed", "pruned", "failed", "diverged")) >= TRIALS:
                    break
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
        finally:
            stop_worker(proc)
        items = c.get("/studies/demo/trials", params={"limit": 100}).json()["items"]
        trials = [c.get(f"/trials/{t['id']}").json() for t in items]
    labels = {t["number"]: (t["state"], (t["diagnosis"] or {}).get("label"), (t["diagnosis"] or {}).get("rule"))
              for t in trials}
    assert all(t["diagnosis"] for t in trials if t["state"] != "failed"), labels
    found = {t["number"]: contradictions(t) for t in trials}
    assert not any(found.values()), (found, labels)
    # The enqueued faults were noticed: the far too high lr is not called healthy.
    assert labels[0][1] not in (None, "healthy"), labels
