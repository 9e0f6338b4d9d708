"""The fault suite, CI sizes: real uvicorn servers on loopback over SQLite and PostgreSQL, simulated
workers, one fault per scenario (tests/support/faults.py). Each asserts 0 duplicated, 0 lost, the
budget exact, no 5xx except 503 while the database is down, and max_concurrent never exceeded.
benchmarks/faults.py runs the same scenarios at full size (64 workers x 2,000 trials, 15 s
outages, caps 1/4/8) and prints the table."""
from __future__ import annotations

import pytest

from tests.support import faults
from tests.support.databases import BACKENDS


def check(outcome: faults.Outcome) -> None:
    summary = (f"{outcome.scenario} on {outcome.backend}: duplicated {outcome.duplicated}, lost {outcome.lost}, "
               f"budget exact {outcome.budget_exact}, 503 in outage {outcome.fivexx_in_outage}, other 5xx "
               f"{outcome.fivexx_other}, max running {outcome.max_running}/{outcome.max_running_client} "
               f"(limit {outcome.limit}), checks failed {outcome.failed_checks}, {outcome.details}")
    assert outcome.ok, summary


@pytest.mark.parametrize("backend", BACKENDS)
def test_database_outage_under_load(backend, tmp_path):
    out = faults.scenario_load(backend, workers=16, trials=300, outage_s=4, tmp=tmp_path, budget_s=240)
    check(out)
    assert out.fivexx_in_outage > 0  # the outage was felt, and answered 503


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.one_backend("postgres")
def test_server_kill_9_and_restart_under_load(backend, tmp_path):
    check(faults.scenario_load(backend, workers=12, trials=200, kill9=True, tmp=tmp_path, budget_s=240))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.one_backend("sqlite")
def test_worker_paused_past_its_lease(backend, tmp_path):
    out = faults.scenario_paused_worker(backend, workers=8, trials=60, tmp=tmp_path, budget_s=240)
    check(out)
    assert out.details["late_refused"] > 0 and out.details["late_accepted"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cap,method,trials", [pytest.param(1, "tpe", 30, marks=pytest.mark.slow), (4, "random", 80)])
@pytest.mark.one_backend("postgres")
def test_max_concurrent_with_two_server_processes(backend, cap, method, trials, tmp_path):
    out = faults.scenario_max_concurrent(backend, cap, workers=16, trials=trials, method=method, tmp=tmp_path,
                                         budget_s=240)
    check(out)
    assert out.max_running == cap  # reached, never passed
    assert out.details["samples"] > 5


def test_auth_on_a_real_server(tmp_path):
    check(faults.scenario_auth("sqlite", workers=4, trials=40, tmp=tmp_path, budget_s=240))


def test_hostile_bodies_while_workers_run(tmp_path):
    check(faults.scenario_bodies("sqlite", workers=4, trials=60, tmp=tmp_path, budget_s=240))
