"""Several objectives and constraints end to end against a real uvicorn server on both backends: a
two-objective study run by a real `tuneserve worker` process whose program reports several metrics,
a three-objective constrained study and a constrained single-objective study driven by the SDK
(`tuneserve.Client`), and the command line's `study pareto`, `study status` and `study export`."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneserve import Client
from tuneserve_service.cli import app

ROOT = Path(__file__).resolve().parents[1]
XY = {"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}}

# A sweep program that reports two objectives and a cost each step, and its final metrics.
PROGRAM = """
    import argparse
    from tuneserve import report, summary
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    p.add_argument("--y", type=float)
    a = p.parse_args()
    g = 1 + 9 * a.y
    f1, f2 = a.x, g * (1 - (a.x / g) ** 0.5)
    report(1, f1=f1 + 0.5, f2=f2 + 0.5, cost=a.y)
    report(2, f1=f1, f2=f2, cost=a.y)
    summary(f1=f1, f2=f2)
"""


def cli(*args: str) -> str:
    r = CliRunner().invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    return r.output


def dominated(p: list[float], q: list[float], goals: list[str]) -> bool:
    """Whether q dominates p."""
    s = [1 if g == "minimize" else -1 for g in goals]
    return all(a * k <= b * k for a, b, k in zip(q, p, s)) and q != p


def check_front(front, goals):
    values = [t.values for t in front.trials]
    assert front.front, "an empty front"
    for f in front.front:
        assert f.rank == 1 and f.feasible
        assert not any(dominated(f.values, q, goals) for q, t in zip(values, front.trials) if t.feasible)


@pytest.mark.one_backend("postgres")
def test_a_worker_program_reporting_two_objectives(live_server, tmp_path):
    program = tmp_path / "zdt.py"
    program.write_text(textwrap.dedent(PROGRAM))
    with Client(live_server.url, retry_seconds=10) as api:
        study = api.create_study(name="zdt", program=str(program), method="tpe", max_trials=4, seed=2,
                                 metrics=[{"name": "f1", "goal": "minimize"}, {"name": "f2", "goal": "minimize"}],
                                 constraints=[{"name": "cost", "max": 0.8}], parameters=XY, lease_seconds=20)
        assert [o.name for o in study.objectives] == ["f1", "f2"] and study.metric.name == "f1"
        log = tmp_path / "worker.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "tuneserve_workers.cli", "--server", live_server.url, "--study", "zdt",
             "--device", "cpu", "--worker-id", "mo", "--idle-max", "0.5", "--runs-dir", str(tmp_path / "runs")],
            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while (s := api.get_study("zdt")).state != "finished":
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        assert s.counts.completed == 4, log.read_text()[-3000:]
        front = api.pareto("zdt")
        check_front(front, ["minimize", "minimize"])
        for t in front.trials:   # the final report's values, the constraint on the reported cost
            trial = api.get_trial(t.trial_id)
            x, y = trial.params["x"], trial.params["y"]
            g = 1 + 9 * y
            assert t.values == pytest.approx([x, g * (1 - (x / g) ** 0.5)])
            assert t.feasible == (y <= 0.8) and t.violation == pytest.approx(max(y - 0.8, 0.0))
        assert {p.trial_id for p in front.front} == {p["trial_id"] for p in s.pareto_front}

    shown = cli("study", "pareto", "zdt", "--server", live_server.url)
    assert f"Pareto front ({len(front.front)} trials)" in shown and "f1 (min)" in shown and "cost <= 0.8" in shown
    for p in front.front:
        assert any(line.split()[:1] == ["│"] and line.split()[1] == str(p.number) or line.strip().startswith(str(p.number))
                   for line in shown.splitlines()), shown
    status = cli("study", "status", "zdt", "--server", live_server.url)
    assert "objectives: minimize f1, minimize f2" in status and "Pareto front" in status
    assert "pruners compare the first objective (f1) only" in status
    rows = list(csv.DictReader(io.StringIO(cli("study", "export", "zdt", "--server", live_server.url))))
    assert len(rows) == 4 and {"feasible", "violation", "front_rank"} <= set(rows[0])
    ranks = {int(r["number"]): r["front_rank"] for r in rows}
    assert {n for n, r in ranks.items() if r == "1"} == {p.number for p in front.front}
    exported = json.loads(cli("study", "export", "zdt", "--format", "json", "--server", live_server.url))
    assert {t["number"]: t["front_rank"] for t in exported if t["front_rank"] == 1} \
        and all("feasible" in t for t in exported)


def test_three_objectives_with_constraints_through_the_sdk(live_server):
    with Client(live_server.url, retry_seconds=10) as api:
        api.create_study(name="three", method="gp", max_trials=10, seed=4, parameters=XY,
                         metrics=[{"name": "a"}, {"name": "b", "goal": "maximize"}, {"name": "c"}],
                         constraints=[{"name": "c", "max": 0.5}])
        for _ in range(10):
            (trial,) = api.ask("three")
            x, y = trial.params["x"], trial.params["y"]
            trial.report(1, a=x, b=y, c=(x - y) ** 2)
            trial.complete(x, b=y, c=(x - y) ** 2)
        front = api.pareto("three")
        goals = ["minimize", "maximize", "minimize"]
        check_front(front, goals)
        for t in front.trials:
            assert t.feasible == (t.values[2] <= 0.5)
        read = api.get_study("three")
        assert read.best_is_feasible is True and read.best_trial.id in {p.trial_id for p in front.front}
        assert front.hypervolume is not None and front.hypervolume > 0
        assert {t.method for t in api.trials("three").items} == {"random", "gp"}   # start-up draws, then the model


def test_a_constrained_study_reaches_the_feasible_optimum_and_reports_it_as_best(live_server):
    """minimise (x - 0.9)^2 subject to x <= 0.5: the constrained optimum is x = 0.5."""
    with Client(live_server.url, retry_seconds=10) as api:
        api.create_study(name="con", method="tpe", max_trials=25, seed=1, parameters={"x": {"min": 0.0, "max": 1.0}},
                         metric={"name": "loss", "goal": "minimize"}, constraints=[{"name": "x_used", "max": 0.5}])
        for _ in range(25):
            (trial,) = api.ask("con")
            x = trial.params["x"]
            trial.complete((x - 0.9) ** 2, x_used=x)
        read = api.get_study("con")
        assert read.best_is_feasible is True
        assert read.best_trial.params["x"] <= 0.5
        assert read.best_trial.value == pytest.approx(0.16, abs=0.03)   # x close to 0.5 from below
        assert read.constraints[0].name == "x_used" and read.constraints[0].max == 0.5
