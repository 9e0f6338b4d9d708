"""The worker's side of the gates (issues 11/12) with no server process: Worker.run_trial handed a
lease of kind sanity or lr_range, talking through the real SDK to an in-memory fake of the trial
endpoints (httpx.MockTransport) that checks every body against the wire types. Real CPU training
(digits, tiny models) where the built-in trainer runs."""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import torch

from tuneserve.schemas.trials import CompleteRequest, FailRequest, LeaseRequest, PruneRequest, ReportRequest, TrialLease
from tuneserve.client import Client
from tuneserve_workers.loop import Worker
from tuneserve_workers.training.objective import supports_lr_range, supports_sanity
from tuneserve_workers.training.run import train_cnn

SMALL = {"width": 8, "data_fraction": 0.3, "batch_size": 32}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class FakeServer:
    """The trial endpoints a worker calls for a held trial, recording (call, body) in order.
    `stop_at`: the report step whose answer says stop (with `stop_reason`); `lost_at`: the report
    step answered 409 (someone else holds the trial)."""

    BODIES = {"report": ReportRequest, "complete": CompleteRequest, "fail": FailRequest, "prune": PruneRequest,
              "release": LeaseRequest, "heartbeat": LeaseRequest}

    def __init__(self, stop_at: int | None = None, stop_reason: str = "study stopped", lost_at: int | None = None):
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.stop_at, self.stop_reason, self.lost_at = stop_at, stop_reason, lost_at

    def handler(self, request: httpx.Request) -> httpx.Response:
        match = re.fullmatch(r"/api/v1/trials/(\d+)/(\w+)", request.url.path)
        assert match, request.url.path
        call = match.group(2)
        body = json.loads(request.content)
        self.FAKE_CHECK(call, body)
        self.calls.append((call, body))
        if call == "report":
            if body["step"] == self.lost_at:
                return httpx.Response(409, json={"detail": "lease lost"})
            stop = body["step"] == self.stop_at
            return httpx.Response(200, json={"should_stop": stop, "reason": self.stop_reason if stop else ""})
        trial = {"id": int(match.group(1)), "study": "s", "number": -1, "params": {}, "method": "random",
                 "attempt": 0, "worker_id": "w", "value": None, "metrics": {}, "last_step": None,
                 "stop_reason": None, "fail_kind": None, "fail_reason": None, "lease_expires_at": None,
                 "created_at": datetime.now(timezone.utc).isoformat(), "started_at": None, "finished_at": None,
                 "state": {"complete": "completed", "fail": "failed", "prune": "pruned"}.get(call, "waiting")}
        if call == "complete":
            return httpx.Response(200, json={"trial": trial, "next": None})
        return httpx.Response(200, json=trial)

    def FAKE_CHECK(self, call: str, body: dict[str, Any]) -> None:
        self.BODIES[call].model_validate(body)  # what the real server would accept (422 otherwise)

    def names(self) -> list[str]:
        return [call for call, _ in self.calls]

    def last(self, call: str) -> dict[str, Any]:
        return [body for name, body in self.calls if name == call][-1]


def lease(kind: str, params: dict[str, Any] | None = None, **special: Any) -> TrialLease:
    return TrialLease.model_validate({
        "trial_id": 41, "study": "s", "number": -1, "params": params if params is not None else dict(SMALL),
        "attempt": 0, "lease_token": "tok", "lease_seconds": 600.0,  # heartbeats every 200 s: none in a test
        "lease_expires_at": (datetime.now(timezone.utc) + timedelta(seconds=600)).isoformat(),
        "metric": {"name": "val_loss", "goal": "minimize"}, "method": kind, "kind": kind, **special})


def worker(objective, fake: FakeServer) -> Worker:
    w = Worker("http://tuneserve.test", objective, worker_id="w-gates", study="s")
    w.client.close()
    w.client = Client("http://tuneserve.test", "", retry_seconds=None,
                      http_transport=httpx.MockTransport(fake.handler))
    return w


SANITY = {"sanity": {"samples": 32, "max_epochs": 30, "lrs": []}}
LR_RANGE = {"lr_range": {"start_lr": 1e-4, "end_lr": 1e3, "steps": 60}}


def test_sanity_lease_runs_the_builtin_check_and_completes_with_its_figures(caplog):
    fake = FakeServer()
    caplog.set_level(logging.INFO, logger="tuneserve.worker")
    assert worker(train_cnn, fake).run_trial(lease("sanity", {**SMALL, "lr": 0.05}, **SANITY)) is None
    assert fake.names()[-1] == "complete" and set(fake.names()[:-1]) == {"report"}
    reports = [body for call, body in fake.calls if call == "report"]
    assert [r["step"] for r in reports] == list(range(1, len(reports) + 1))
    assert {"initial_loss", "num_classes", "input_std"} <= set(reports[0]["metrics"])
    assert reports[0]["metrics"]["num_classes"] == 10
    done = fake.last("complete")
    assert done["value"] is None and done["metrics"] == {}
    outcome = done["outcome"]
    assert set(outcome) == {"supported", "figures", "message"}
    assert outcome["supported"] is True and outcome["message"] == ""
    figures = outcome["figures"]
    assert figures["reached"] == 1.0 and figures["samples"] == 32.0 and figures["epochs"] == len(reports)
    assert figures["best_acc"] >= 0.99 or figures["final_loss"] <= 0.01 * figures["initial_loss"]
    assert re.search(r"event=sanity_done worker=w-gates trial=41 supported=True reached=1 ", caplog.text)


def test_sanity_lease_for_an_objective_without_support_is_skipped_without_running_it(caplog):
    ran = []

    def plain(params, context):
        ran.append(params)
        return 1.0

    fake = FakeServer()
    caplog.set_level(logging.INFO, logger="tuneserve.worker")
    worker(plain, fake).run_trial(lease("sanity", {"x": 1}, **SANITY))
    assert ran == [] and fake.names() == ["complete"]
    outcome = fake.last("complete")["outcome"]
    assert outcome["supported"] is False and outcome["figures"] == {}
    assert outcome["message"] == (
        "objective tests.test_worker_special_runs:test_sanity_lease_for_an_objective_without_support_is_skipped_"
        "without_running_it.<locals>.plain does not support the sanity check (decorate it with "
        "tuneserve_workers.training.objective.supports_sanity and follow context.sanity)")
    assert "event=sanity_done worker=w-gates trial=41 supported=False message=" in caplog.text


def test_sanity_lease_stopped_by_the_server_is_pruned_not_completed():
    @supports_sanity
    def slow(params, context):
        for step in range(1, 50):
            if not context.report(step, train_loss=1.0 / step, train_acc=0.1):
                return {}
        context.sanity_done()
        return {}

    fake = FakeServer(stop_at=3, stop_reason="study stopped")
    worker(slow, fake).run_trial(lease("sanity", {"x": 1}, **SANITY))
    assert fake.names() == ["report"] * 3 + ["prune"]
    assert fake.last("prune")["reason"] == "study stopped"


def test_sanity_lease_error_fails_with_the_traceback_and_a_lost_lease_sends_nothing_more():
    @supports_sanity
    def broken(params, context):
        context.report(1, train_loss=2.3, train_acc=0.1)
        raise RuntimeError("the data loader broke")

    fake = FakeServer()
    worker(broken, fake).run_trial(lease("sanity", {"x": 1}, **SANITY))
    assert fake.names() == ["report", "fail"]
    failed = fake.last("fail")
    assert failed["kind"] == "error" and "Traceback" in failed["reason"]
    assert failed["reason"].rstrip().endswith("RuntimeError: the data loader broke")

    lost = FakeServer(lost_at=2)
    worker(supports_sanity(lambda p, c: [c.report(s, train_loss=1.0) for s in (1, 2, 3)]), lost).run_trial(
        lease("sanity", {"x": 1}, **SANITY))
    assert lost.names() == ["report", "report"]  # 409 on step 2: abandoned, neither completed nor failed


def test_lr_range_lease_runs_the_builtin_ramp_and_sends_the_curve(caplog):
    fake = FakeServer()
    caplog.set_level(logging.INFO, logger="tuneserve.worker")
    worker(train_cnn, fake).run_trial(lease("lr_range", **LR_RANGE))
    assert fake.names()[-1] == "complete" and set(fake.names()[:-1]) == {"report"}
    done = fake.last("complete")
    assert done["value"] is None and done["metrics"] == {}
    outcome = done["outcome"]
    assert set(outcome) == {"supported", "curve", "message"} and outcome["supported"] is True
    curve = outcome["curve"]
    assert set(curve) == {"lr", "loss"} and 10 <= len(curve["lr"]) == len(curve["loss"]) < 60
    assert curve["lr"][0] == 1e-4 and curve["lr"][1] == pytest.approx(1e-4 * (1e3 / 1e-4) ** (1 / 59))
    assert all(loss is not None and loss > 0 for loss in curve["loss"])
    assert outcome["message"].startswith(f"blew up at lr={curve['lr'][-1]:.3g}")
    assert [r["step"] for call, r in fake.calls if call == "report"] == [25, 50][:len(curve["lr"]) // 25]
    assert re.search(rf"event=lr_range_done worker=w-gates trial=41 supported=True points={len(curve['lr'])} "
                     r"min_loss=[\d.]+ min_loss_lr=[\d.e-]+ last_lr=", caplog.text)


def test_lr_range_lease_for_an_objective_without_support_says_how_to_opt_in():
    ran = []

    @supports_sanity  # sanity alone is not the range test
    def plain(params, context):
        ran.append(params)
        return 1.0

    fake = FakeServer()
    worker(plain, fake).run_trial(lease("lr_range", {"x": 1}, **LR_RANGE))
    assert ran == [] and fake.names() == ["complete"]
    outcome = fake.last("complete")["outcome"]
    assert outcome == {
        "supported": False, "curve": None,
        "message": "objective tests.test_worker_special_runs:test_lr_range_lease_for_an_objective_without_support_"
                   "says_how_to_opt_in.<locals>.plain does not support the lr range test (decorate it with "
                   "supports_lr_range and follow context.lr_range)"}


def test_lr_range_user_objective_gets_the_request_and_its_blow_up_goes_out_as_null():
    seen = []

    @supports_lr_range
    def ramp(params, context):
        r = context.lr_range
        seen.append((r.start_lr, r.end_lr, r.steps, context.sanity))
        lrs = [r.start_lr * (r.end_lr / r.start_lr) ** (i / (r.steps - 1)) for i in range(4)]
        return {"lr": lrs, "loss": [2.3, 1.9, float("inf"), float("nan")], "note": "kept out of the curve"}

    fake = FakeServer()
    worker(ramp, fake).run_trial(lease("lr_range", {"x": 1}, **LR_RANGE))
    assert seen == [(1e-4, 1e3, 60, None)]
    curve = fake.last("complete")["outcome"]["curve"]
    assert curve["loss"] == [2.3, 1.9, None, None] and len(curve["lr"]) == 4


def test_lr_range_objective_returning_no_curve_fails_as_an_error():
    fake = FakeServer()
    worker(supports_lr_range(lambda params, context: {"val_loss": 0.3}), fake).run_trial(
        lease("lr_range", {"x": 1}, **LR_RANGE))
    assert fake.names() == ["fail"]
    failed = fake.last("fail")
    assert failed["kind"] == "error"
    assert "TypeError: an lr range test must return a dict with 'lr' and 'loss' lists" in failed["reason"]


def test_lr_range_lease_released_when_the_worker_drains():
    fake = FakeServer()
    w = worker(train_cnn, fake)

    def drain_at_first_report(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/report"):
            w.draining.set()
        return fake.handler(request)

    w.client = Client("http://tuneserve.test", "", retry_seconds=None,
                      http_transport=httpx.MockTransport(drain_at_first_report))
    w.run_trial(lease("lr_range", {**SMALL, "grad_clip": 0.0},
                      lr_range={"start_lr": 1e-5, "end_lr": 1e-2, "steps": 60}))
    assert fake.names() == ["report", "release"]
    assert fake.calls[0][1]["step"] == 25
