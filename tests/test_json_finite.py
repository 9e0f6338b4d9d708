"""Every number the service stores in JSON is finite or null, on both backends.

PostgreSQL's json refuses the NaN and Infinity tokens (SQLite stores them): a trial that reported
1.7976931348623157e308 once could not be completed there (an evidence figure rounded to Infinity,
complete() answered 500 on every retry). Two layers keep it out: the diagnosis rules write finite
figures, and the engines' JSON serializer (service/db/engine.py) writes any non-finite float as null.

The matrix: ±1e308 (the largest double), ±inf and NaN in each metric a worker reports, through each
ending (complete, prune, fail, the lease reaper). Every trial ends as it should (diverged where a
loss is non-finite), no call answers 500, every stored JSON document parses as strict JSON, and the
trial, study, trial page (export), dashboard data and pages read.
"""
from __future__ import annotations

import json
import math
import time

import pytest
from sqlalchemy import text

from tests.helpers import claim, make_study
from tuneserve_service.db.engine import Database, json_dumps

API = "/api/v1"
BIG = 1.7976931348623157e308
VALUES = {"max": BIG, "-max": -BIG, "inf": math.inf, "-inf": -math.inf, "nan": math.nan}
METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm", "update_ratio")
ENDINGS = ("complete", "prune", "fail", "reaper")
NORMAL = {"train_loss": 2.0, "val_loss": 2.1, "train_acc": 0.3, "val_acc": 0.28, "lr": 0.01, "grad_norm": 1.5,
          "update_ratio": 1e-3}


def post(client, path, body):
    # Python's json writes NaN / Infinity tokens: how a diverged run reports itself.
    return client.post(API + path, content=json.dumps(body), headers={"content-type": "application/json"})


def strict(text_: str):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")
    return json.loads(text_, parse_constant=refuse)


def test_the_serializer_writes_non_finite_floats_as_null():
    assert json_dumps({"a": [1.0, math.nan, {"b": math.inf, "c": -math.inf}], "d": BIG, "e": "NaN"}) == \
        '{"a": [1.0, null, {"b": null, "c": null}], "d": 1.7976931348623157e+308, "e": "NaN"}'
    assert json_dumps([1, "x", None, True]) == '[1, "x", null, true]'


def test_no_path_can_store_infinity_in_a_json_column(client):
    """The storage boundary alone: a diagnosis written straight through the store with NaN and
    infinities in it is stored with nulls, on both backends (PostgreSQL used to refuse it)."""
    from tuneserve_service.store import trials as trial_store

    make_study(client)
    lease = claim(client)
    db = Database(client.app.state.settings.database_url)
    try:
        with db.transaction() as s:
            trial_store.set_diagnosis(s, lease["trial_id"], {"label": "diverged", "evidence": {
                "value": math.inf, "low": -math.inf, "nan": math.nan, "spikes": [[1, math.nan]], "big": BIG}})
        with db.read() as s:
            raw = s.execute(text("SELECT CAST(diagnosis AS TEXT) FROM trials WHERE id = :i"),
                            {"i": lease["trial_id"]}).scalar_one()
    finally:
        db.dispose()
    evidence = strict(raw)["evidence"]
    assert float(evidence.pop("big")) == BIG  # PostgreSQL's jsonb writes it back as a long integer
    assert evidence == {"value": None, "low": None, "nan": None, "spikes": [[1, None]]}


def _expected(metric: str, value: float, ending: str) -> str:
    if metric.endswith("loss") and not math.isfinite(value):
        return "diverged"
    return {"complete": "completed", "prune": "pruned", "fail": "failed", "reaper": "failed"}[ending]


def _cases():
    return [(m, v, e) for m in METRICS for v in VALUES for e in ENDINGS]


def test_extreme_reports_in_every_metric_through_every_ending(client):
    from tuneserve_service.domain.core.leases import reap_expired

    cases = _cases()
    make_study(client, max_trials=len(cases), lease_seconds=5.0, max_retries=0)
    trials: dict[int, tuple[str, str, str]] = {}
    reaped = []
    for metric, key, ending in cases:
        bad = VALUES[key]
        lease = claim(client)
        tid, tok = lease["trial_id"], lease["lease_token"]
        trials[tid] = (metric, key, ending)
        steps = [{"step": 1, "metrics": dict(NORMAL)},
                 {"step": 2, "metrics": {**NORMAL, "train_loss": 1.5, "val_loss": 1.7}},
                 {"step": 3, "metrics": {**NORMAL, "train_loss": 1.2, "val_loss": 1.5, metric: bad}}]
        r = post(client, f"/trials/{tid}/report", {"lease_token": tok, "reports": steps})
        assert r.status_code == 200, (metric, key, r.text)
        r = post(client, f"/trials/{tid}/heartbeat", {"lease_token": tok})  # a provisional diagnosis is stored
        assert r.status_code in (200, 409), (metric, key, r.text)
        if ending == "complete":
            r = post(client, f"/trials/{tid}/complete", {"lease_token": tok, "metrics": {metric: bad}})
        elif ending == "prune":
            r = post(client, f"/trials/{tid}/prune", {"lease_token": tok, "reason": "test"})
        elif ending == "fail":
            r = post(client, f"/trials/{tid}/fail", {"lease_token": tok, "kind": "error",
                                                    "reason": f"{metric} = {bad!r}"})
        else:
            reaped.append(tid)
            continue
        # A loss that went non-finite ended the trial at the report (diverged): the ending is a 409 then.
        assert r.status_code in (200, 409), (metric, key, ending, r.status_code, r.text)
    time.sleep(5.3)  # the reaper's trials run out (a 5 s lease: a loaded CI box must not expire the others)
    db = Database(client.app.state.settings.database_url)
    try:
        reap_expired(db)  # or the app's own sweep got there first
        with db.read() as s:
            rows = s.execute(text(
                "SELECT id, state, CAST(params AS TEXT), CAST(metrics AS TEXT), CAST(diagnosis AS TEXT) "
                "FROM trials")).all()
            reports = s.execute(text("SELECT CAST(metrics AS TEXT) FROM trial_reports")).scalars().all()
            studies = s.execute(text("SELECT CAST(space AS TEXT), CAST(config AS TEXT) FROM studies")).all()
    finally:
        db.dispose()

    wrong = []
    for tid, state, params, metrics, diagnosis in rows:
        metric, key, ending = trials[tid]
        if state != _expected(metric, VALUES[key], ending):
            wrong.append((metric, key, ending, state))
        for doc in (params, metrics, diagnosis):
            if doc is not None:
                strict(doc)  # no NaN / Infinity token anywhere
        if diagnosis is not None:
            found = strict(diagnosis)
            assert found["provisional"] is False, (metric, key, ending)
            if state == "diverged":
                assert found["label"] == "diverged", (metric, key, ending, found)
    assert not wrong, wrong
    assert len(rows) == len(cases)
    for doc in [*reports, *(d for row in studies for d in row)]:
        strict(doc)

    # Every read answers, as strict JSON.
    for tid in trials:
        r = client.get(f"{API}/trials/{tid}")
        assert r.status_code == 200, r.text
        strict(r.text)
        page = client.get(f"/dashboard/api/trials/{tid}")
        assert page.status_code == 200, page.text
        strict(page.text)
    for path in (f"{API}/studies/s", f"{API}/studies", f"{API}/studies/s/trials?limit=500",
                 "/dashboard/api/studies", "/dashboard/api/studies/s", "/dashboard/api/studies/s/history",
                 "/dashboard/api/studies/s/curves", "/dashboard/api/studies/s/params",
                 "/dashboard/api/studies/s/trials?limit=200"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text)
        strict(r.text)
    for tid in list(trials)[:: len(VALUES)]:
        assert client.get(f"/dashboard/trials/{tid}").status_code == 200
    assert client.get("/dashboard/studies/s").status_code == 200
