"""What a trial's provenance costs (issue 19 item 5): the latency of a first report with and without
the `provenance` field over a live server, alternated, and of a program's code reference (sha256 and
three git calls). `python benchmarks/provenance_overhead.py [DATABASE_URL]` (default: a fresh SQLite)."""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.live_server import LiveServer  # noqa: E402
from tuneserve._defaults import API_PREFIX  # noqa: E402
from tuneserve_workers.provenance import code_of_file, for_run  # noqa: E402
from tuneserve_workers.training.run import train_cnn  # noqa: E402

url = sys.argv[1] if len(sys.argv) > 1 else None
tmp = Path(tempfile.mkdtemp())
live = LiveServer(url or f"sqlite:///{tmp/'b.db'}").start()
prov = for_run(device="cpu", worker_id="b", objective_name="builtin:cnn", objective=train_cnn,
               params={"lr": 0.1, "seed": 1}, attempt=0, extra={"seed": 1, "dataset": "digits",
               "fidelity": {"data_fraction": 0.5, "subset_digest": "x" * 16}})
print("provenance bytes", len(json.dumps(prov)))
N = int(sys.argv[2]) if len(sys.argv) > 2 else 150
with httpx.Client(base_url=live.url + API_PREFIX, timeout=30) as c:
    name = f"b{int(time.time())}"
    c.post("/studies", json={"name": name, "method": "random", "metric": {"name": "val_loss", "goal": "minimize"},
                             "parameters": {"lr": {"min": 0.01, "max": 1.0}}, "max_trials": 2 * N, "seed": 1})
    times = {"plain": [], "provenance": []}
    for i in range(2 * N):
        kind = "provenance" if i % 2 else "plain"
        lease = c.post("/trials/claim", json={"worker_id": "b", "study": name}).json()
        body = {"lease_token": lease["lease_token"], "step": 1, "metrics": {"val_loss": 1.0}}
        if kind == "provenance":
            body["provenance"] = prov
        t = time.perf_counter()
        r = c.post(f"/trials/{lease['trial_id']}/report", json=body)
        times[kind].append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
        c.post(f"/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"], "value": 1.0})
live.stop()
for k, v in times.items():
    print(k, "median ms %.2f" % statistics.median(v), "p90 %.2f" % sorted(v)[int(0.9 * len(v))])
t = time.perf_counter()
for _ in range(20):
    code_of_file(ROOT / "examples/digits_cnn/train.py")
print("code_of_file (sha256 + 3 git calls) ms %.1f" % ((time.perf_counter() - t) / 20 * 1000))
