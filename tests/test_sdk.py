"""The Python SDK: `from tuneserve import Client` with typed answers against a real server (the
README's notebook example), retries with backoff (Retry-After honoured), and readable errors."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone

import httpx
import pytest

from tuneserve.schemas.studies import StudyRead
from tuneserve.schemas.trials import TrialLease, TrialRead
from tests.support.live_server import LiveServer
from tuneserve import Client, InvalidRequest, NotFound, ServerUnavailable, Unauthorized
from tuneserve.client import JsonClient


def test_the_readme_ask_tell_example(tmp_path):
    with LiveServer(f"sqlite:///{tmp_path / 't.db'}") as server:
        # As in the README's "Python SDK" section.
        client = Client(server.url)
        study = client.create_study(
            name="notebook", method="tpe", max_trials=6, seed=3,
            metric={"name": "val_loss", "goal": "minimize"},
            parameters={"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}})
        assert isinstance(study, StudyRead) and study.counts.total == 0
        for _ in range(3):
            for trial in client.ask("notebook", count=2):
                lr = trial.params["lr"]
                for epoch in range(1, 4):
                    if not trial.report(epoch, val_loss=(lr - 0.01) ** 2 + 1 / epoch):
                        trial.prune("told to stop")
                        break
                else:
                    done = trial.complete((lr - 0.01) ** 2 + 1 / 3)
                    assert isinstance(done, TrialRead) and done.state == "completed"
        best = client.get_study("notebook").best_trial
        assert best is not None and best.value == min(
            t.value for t in client.trials("notebook", state="completed").items)
        assert client.get_trial(best.id).reports[-1].step == 3
        assert [s.name for s in client.list_studies()] == ["notebook"]
        # The dict client keeps working for code written before the typed one.
        assert JsonClient(server.url).get_study("notebook")["counts"]["completed"] == study.counts.completed + 6
        with pytest.raises(NotFound, match=r"GET /studies/nope: not found \(HTTP 404\): study 'nope' not found"):
            client.get_study("nope")
        with pytest.raises(InvalidRequest) as bad:
            client.create_study(name="x", method="random", parameters={"lr": {"min": 1, "max": 0}})
        assert "parameters.lr" in str(bad.value) and bad.value.status == 422
        client.close()


def mock(responses):
    """An httpx transport answering from a list (an exception is raised instead of answered)."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        item = responses[min(len(calls) - 1, len(responses) - 1)]
        if isinstance(item, Exception):
            raise item
        return item
    return httpx.MockTransport(handler), calls


STUDY = {"name": "s", "objective": ""}


def test_503_is_retried_after_the_servers_retry_after():
    transport, calls = mock([httpx.Response(503, headers={"Retry-After": "0.6"}), httpx.Response(200, json=[])])
    client = Client("http://tuneserve.test", http_transport=transport, retry_seconds=10)
    assert client.list_studies() == []
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.55


def test_connection_errors_are_retried_with_backoff_then_give_up_readably():
    transport, calls = mock([httpx.ConnectError("connection refused")])
    retries = []
    client = Client("http://tuneserve.test", http_transport=transport, retry_seconds=1.0,
                    on_retry=lambda call, error, delay: retries.append(delay))
    started = time.monotonic()
    with pytest.raises(ServerUnavailable) as err:
        client.get_study("s")
    assert time.monotonic() - started < 3
    assert len(calls) >= 3 and all(0.05 <= d <= 5 for d in retries)
    assert "GET /studies/s: cannot reach http://tuneserve.test (connection failed: connection refused)" in str(err.value)
    assert "gave up after 1 s" in str(err.value)


def test_a_retry_after_beyond_the_budget_gives_up_at_once():
    transport, calls = mock([httpx.Response(503, headers={"Retry-After": "120"})])
    client = Client("http://tuneserve.test", http_transport=transport, retry_seconds=5)
    started = time.monotonic()
    with pytest.raises(ServerUnavailable, match="HTTP 503"):
        client.get_study("s")
    assert len(calls) == 1 and time.monotonic() - started < 1


def test_4xx_is_never_retried_and_reads_well():
    transport, calls = mock([httpx.Response(401, json={"detail": "missing or wrong bearer token"})])
    client = Client("http://tuneserve.test", http_transport=transport)
    with pytest.raises(Unauthorized, match="set TUNESERVE_TOKEN"):
        client.get_study("s")
    assert len(calls) == 1


def test_server_and_token_come_from_the_environment(monkeypatch):
    seen = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json=[]))
    monkeypatch.setenv("TUNESERVE_SERVER", "http://from-env.test:9")
    monkeypatch.setenv("TUNESERVE_TOKEN", "tok")
    Client(http_transport=transport).list_studies()
    assert str(seen[0].url) == "http://from-env.test:9/api/v1/studies"
    assert seen[0].headers["authorization"] == "Bearer tok"


def test_report_helper_imports_no_http_stack():
    code = ("import sys; import tuneserve; from tuneserve import report; "
            "assert report(1, loss=1.0) is True; "  # no worker: a no-op that says go on
            "print(sorted(m for m in ('httpx', 'pydantic', 'torch', 'service') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin"}).stdout
    assert out.strip() == "[]"


def test_complete_sends_a_special_runs_outcome_only_when_given():
    """A sanity or lr_range lease is completed with `outcome`; an ordinary trial's body is as before.
    Leases and decisions parse the gates' fields (kind, sanity, lr_range, diagnosis)."""
    bodies = []
    trial = {"id": 5, "study": "s", "number": -1, "state": "completed", "params": {}, "method": "random",
             "attempt": 0, "worker_id": "w", "value": None, "metrics": {}, "last_step": None, "stop_reason": None,
             "fail_kind": None, "fail_reason": None, "lease_expires_at": None,
             "created_at": datetime.now(timezone.utc).isoformat(), "started_at": None, "finished_at": None,
             "kind": "sanity"}

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"trial": trial, "next": None})

    client = Client("http://tuneserve.test", http_transport=httpx.MockTransport(handler))
    outcome = {"supported": True, "figures": {"reached": 1.0}, "curve": None, "message": ""}
    answer = client.complete(5, "tok", None, {}, outcome=outcome)
    assert answer.trial.kind == "sanity" and answer.trial.diagnosis is None
    client.complete(6, "tok", 0.5, {"val_loss": 0.5})
    assert bodies == [
        {"lease_token": "tok", "value": None, "metrics": {}, "claim_next": None, "outcome": outcome},
        {"lease_token": "tok", "value": 0.5, "metrics": {"val_loss": 0.5}, "claim_next": None},
    ]
    lease = TrialLease.model_validate({
        "trial_id": 9, "study": "s", "number": -2, "params": {"lr": 0.1}, "attempt": 0, "lease_token": "t",
        "lease_expires_at": datetime.now(timezone.utc).isoformat(), "lease_seconds": 60.0,
        "metric": {"name": "val_loss", "goal": "minimize"}, "method": "lr_range", "kind": "lr_range",
        "lr_range": {"start_lr": 1e-5, "end_lr": 1.0, "steps": 50}})
    assert lease.kind == "lr_range" and lease.lr_range.steps == 50 and lease.sanity is None
