"""The dashboard's chart-data endpoints and pages, in-process, on SQLite and PostgreSQL: what each
answers for a known study, the table's server-side filters, sorting and pages, bad input as 422s
that change nothing, and the token turned into a cookie."""
from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from tuneserve_service.config import Settings
from tuneserve_service.main import create_app

API = "/api/v1"
DASH = "/dashboard/api"
PARAMS = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "dropout": {"min": 0.0, "max": 0.6},
    "optimizer": {"values": ["sgd", "adam"]},
    "epochs": {"value": 6},
}


def loss(params: dict, step: int) -> float:
    """A made-up learning curve whose final value depends mostly on lr."""
    base = abs(math.log10(params["lr"]) + 2) * 0.5 + params["dropout"] * 0.1
    return base + math.exp(-step / 2)


def build_study(client, name: str = "d", n: int = 12, pruner: dict | None = None) -> dict:
    """A study of n trials run through the worker protocol: 6 reported steps each; trial 3 fails,
    and trials stopped by the pruner are pruned."""
    # max_concurrent set: random search then draws no trials ahead, so the trials are exactly these n.
    body = {"name": name, "method": "random", "max_trials": n + 4, "max_concurrent": 4, "seed": 11, "parameters": PARAMS,
            "metric": {"name": "val_loss", "goal": "minimize"}}
    if pruner:
        body["pruner"] = pruner
    assert client.post(f"{API}/studies", json=body).status_code == 201
    for i in range(n):
        lease = client.post(f"{API}/trials/claim", json={"worker_id": f"w{i % 2}", "study": name}).json()
        tid, tok, p = lease["trial_id"], lease["lease_token"], lease["params"]
        stopped = False
        for step in range(1, 7):
            v = loss(p, step)
            d = client.post(f"{API}/trials/{tid}/report", json={"lease_token": tok, "step": step, "metrics": {
                "val_loss": v, "train_loss": v - 0.05, "val_acc": 1 / (1 + v), "lr": p["lr"],
                "grad_norm": 1.0 / step, "update_ratio": 1e-3}}).json()
            if d["should_stop"]:
                assert client.post(f"{API}/trials/{tid}/prune", json={"lease_token": tok, "reason": d["reason"]}).status_code == 200
                stopped = True
                break
        if stopped:
            continue
        if i == 3:
            client.post(f"{API}/trials/{tid}/fail", json={"lease_token": tok, "reason": "boom", "kind": "error"})
        else:
            assert client.post(f"{API}/trials/{tid}/complete", json={"lease_token": tok, "value": v}).status_code == 200
    return client.get(f"{API}/studies/{name}").json()


def get(client, path: str, **params):
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_studies_list_counts_best_and_activity(client):
    study = build_study(client)
    rows = get(client, f"{DASH}/studies")
    assert [r["name"] for r in rows] == ["d"]
    row = rows[0]
    assert row["counts"] == {k: v for k, v in study["counts"].items() if k != "total"}
    assert row["counts"]["failed"] == 1 and row["ended"] == 12 and row["budget"] == 16
    assert row["best_value"] == pytest.approx(study["best_trial"]["value"])
    assert row["last_activity"] is not None and row["method"] == "random"


def test_summary_history_and_best_so_far(client):
    study = build_study(client)
    s = get(client, f"{DASH}/studies/d")
    assert s["study"]["counts"] == study["counts"]
    assert [p["name"] for p in s["params"]] == ["dropout", "lr", "optimizer"]  # constants left out
    lr = next(p for p in s["params"] if p["name"] == "lr")
    assert lr["log"] is True and lr["min"] == 1e-4 and lr["max"] == 1.0
    assert s["stamp"] == get(client, f"{DASH}/studies/d")["stamp"]
    h = get(client, f"{DASH}/studies/d/history")
    assert h["number"] == list(range(12))
    states = [h["states"][i] for i in h["state"]]  # states travel as indexes into the legend
    assert states[3] == "failed" and h["value"][3] is None
    best, expected = None, []
    for v, st in zip(h["value"], states):
        if st == "completed" and (best is None or v < best):
            best = v
        expected.append(best)
    assert h["best"] == expected
    assert h["best"][-1] == pytest.approx(study["best_trial"]["value"])


def test_stamp_changes_with_a_report(client):
    build_study(client, n=2)
    before = get(client, f"{DASH}/studies/d")["stamp"]
    lease = client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": "d"}).json()
    after_claim = get(client, f"{DASH}/studies/d")["stamp"]
    client.post(f"{API}/trials/{lease['trial_id']}/report",
                json={"lease_token": lease["lease_token"], "step": 1, "metrics": {"val_loss": 1.0}})
    after_report = get(client, f"{DASH}/studies/d")["stamp"]
    assert len({before, after_claim, after_report}) == 3


def test_curves_are_bounded_and_downsampled(client):
    build_study(client)
    c = get(client, f"{DASH}/studies/d/curves")
    assert c["shown"] == c["total"] == 12
    first = c["trials"][0]
    assert first["steps"] == [1, 2, 3, 4, 5, 6] and first["values"][0] == pytest.approx(loss(
        client.get(f"{API}/trials/{first['id']}").json()["params"], 1))
    small = get(client, f"{DASH}/studies/d/curves", limit=5, points=4)
    assert small["shown"] == 5 and small["total"] == 12
    best_id = client.get(f"{API}/studies/d").json()["best_trial"]["id"]
    assert best_id in [t["id"] for t in small["trials"]]  # the best trial is always drawn
    assert all(len(t["steps"]) <= 4 and t["steps"][0] == 1 and t["steps"][-1] == 6 for t in small["trials"])


def test_pruned_trials_are_cut_and_the_step_is_stored(client):
    build_study(client, n=14, pruner={"type": "median", "grace_period": 2, "min_trials": 3})
    c = get(client, f"{DASH}/studies/d/curves")
    pruned = [t for t in c["trials"] if t["state"] == "pruned"]
    assert pruned, "the median pruner stopped no trial"
    for t in pruned:
        detail = get(client, f"{DASH}/trials/{t['id']}")
        stop = detail["trial"]["stop_step"]
        assert stop is not None and t["steps"][-1] == stop < 6
        assert detail["trial"]["stop_reason"] and detail["steps"][-1] == stop


def test_params_and_importance(client):
    build_study(client, n=24)
    p = get(client, f"{DASH}/studies/d/params")
    assert p["shown"] == p["total"] == 23  # the failed trial has no value
    assert set(p["columns"]) == {"dropout", "lr", "optimizer"}
    assert set(p["columns"]["optimizer"]) <= {"sgd", "adam"}
    assert all(1e-4 <= v <= 1 for v in p["columns"]["lr"])
    imp = get(client, f"{DASH}/studies/d/importance")
    assert imp["method"].startswith("scikit-learn RandomForestRegressor")
    assert imp["trials"] == 23 and imp["completed"] == 23
    assert imp["params"][0]["name"] == "lr"  # the made-up loss depends on lr above all
    assert sum(x["importance"] for x in imp["params"]) == pytest.approx(1.0)
    assert get(client, f"{DASH}/studies/d/importance") == imp  # cached until a trial completes


def test_importance_waits_for_enough_trials(client):
    build_study(client, n=3)
    imp = get(client, f"{DASH}/studies/d/importance")
    assert imp["params"] == [] and imp["completed"] == 3 and imp["min_trials"] == 8


def test_trial_table_filters_sorts_and_pages(client):
    build_study(client, n=12)
    all_rows = get(client, f"{DASH}/studies/d/trials", limit=500)
    assert all_rows["total"] == 12 and [r["number"] for r in all_rows["items"]] == list(range(12))
    page = get(client, f"{DASH}/studies/d/trials", limit=5, offset=5, order="desc")
    assert page["total"] == 12 and [r["number"] for r in page["items"]] == [6, 5, 4, 3, 2]
    done = get(client, f"{DASH}/studies/d/trials", state="completed", sort="value", limit=500)
    values = [r["value"] for r in done["items"]]
    assert done["total"] == 11 and values == sorted(values)
    failed = get(client, f"{DASH}/studies/d/trials", state=["failed", "pruned"])
    assert [r["number"] for r in failed["items"]] == [3]
    lo, hi = sorted(values)[2], sorted(values)[7]
    ranged = get(client, f"{DASH}/studies/d/trials", value_min=lo, value_max=hi)
    assert ranged["total"] == 6 and all(lo <= r["value"] <= hi for r in ranged["items"])
    adam = get(client, f"{DASH}/studies/d/trials", param="optimizer=adam", limit=500)
    expected = [r["number"] for r in all_rows["items"] if r["params"]["optimizer"] == "adam"]
    assert [r["number"] for r in adam["items"]] == expected and 0 < len(expected) < 12
    small_lr = get(client, f"{DASH}/studies/d/trials", param=["lr::0.01", "optimizer=adam"], limit=500)
    assert [r["number"] for r in small_lr["items"]] == [
        r["number"] for r in all_rows["items"] if r["params"]["optimizer"] == "adam" and r["params"]["lr"] <= 0.01]
    by_lr = get(client, f"{DASH}/studies/d/trials", sort="params.lr", order="desc", limit=500)
    lrs = [r["params"]["lr"] for r in by_lr["items"]]
    assert lrs == sorted(lrs, reverse=True)


@pytest.mark.parametrize("params, field, words", [
    ({"param": "nope=1"}, "param", "unknown parameter 'nope'"),
    ({"param": "lr:abc:"}, "param", "must be a number"),
    ({"param": "lr:0.5:0.1"}, "param", "is above the maximum"),
    ({"param": "optimizer:0:1"}, "param", "categorical"),
    ({"param": "optimizer=rmsprop"}, "param", "not a value of 'optimizer'"),
    ({"param": "lr"}, "param", "name:min:max"),
    ({"sort": "colour"}, "sort", "sort must be one of"),
    ({"sort": "params.nope"}, "sort", "unknown parameter"),
    ({"value_min": 2, "value_max": 1}, "value_min", "is above value_max"),
    ({"state": "sleeping"}, "state", ""),
    ({"limit": 0}, "limit", ""),
    ({"order": "up"}, "order", ""),
    ({"value_min": "nan"}, "value_min", ""),
])
def test_bad_table_queries_are_422_naming_the_field(client, params, field, words):
    build_study(client, n=2)
    before = client.get(f"{API}/studies/d").json()
    r = client.get(f"{DASH}/studies/d/trials", params=params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"][:2] == ["query", field]
    assert words in detail["msg"]
    assert client.get(f"{API}/studies/d").json() == before


def test_trial_detail_has_every_metric_on_one_step_axis(client):
    build_study(client, n=2)
    t = client.get(f"{API}/studies/d/trials").json()["items"][0]
    d = get(client, f"{DASH}/trials/{t['id']}")
    assert d["trial"]["id"] == t["id"] and d["metric"] == "val_loss" and d["goal"] == "minimize"
    assert d["steps"] == [1, 2, 3, 4, 5, 6]
    assert set(d["series"]) == {"val_loss", "train_loss", "val_acc", "lr", "grad_norm", "update_ratio"}
    assert d["series"]["grad_norm"] == pytest.approx([1 / s for s in range(1, 7)])
    assert d["duration_s"] is not None and d["duration_s"] >= 0
    assert len(get(client, f"{DASH}/trials/{t['id']}", points=4)["steps"]) == 4


def test_unknown_study_and_trial_are_404(client):
    assert client.get(f"{DASH}/studies/nope/history").status_code == 404
    assert client.get(f"{DASH}/trials/999").status_code == 404
    assert client.get(f"{DASH}/trials/0").status_code == 422


def test_pages_render_and_assets_are_local(client):
    build_study(client, n=2)
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard"
    for path in ("/dashboard", "/dashboard/studies/d", "/dashboard/trials/1"):
        r = client.get(path)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "/dashboard/static/plotly.min.js" in r.text and "http" not in r.text.split("<body")[0].replace('http-equiv', '')
    js = client.get("/dashboard/static/plotly.min.js")
    assert js.status_code == 200 and b"plotly.js v" in js.content[:200] and len(js.content) > 1_000_000
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    assert client.get("/dashboard/static/nope.js").status_code == 404


@pytest.fixture
def secured(database_url):
    app = create_app(Settings(database_url=database_url, api_token="s3cret-token"))
    with TestClient(app) as c:
        yield c


def test_token_login_sets_a_cookie_the_api_accepts(secured):
    assert secured.get("/dashboard/api/studies").status_code == 401
    assert secured.get("/metrics").status_code == 401
    page = secured.get("/dashboard/studies/x", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/dashboard/login?next=%2Fdashboard%2Fstudies%2Fx")
    assert secured.get("/dashboard/login").status_code == 200
    bad = secured.post("/dashboard/login", data={"token": "wrong", "next": "/dashboard"}, follow_redirects=False)
    assert bad.status_code == 401 and "not valid" in bad.text and "tuneserve_token" not in bad.headers.get("set-cookie", "")
    ok = secured.post("/dashboard/login", data={"token": "s3cret-token", "next": "https://evil.example/"},
                      follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"  # no open redirect
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert secured.get("/dashboard/api/studies").status_code == 200  # the cookie now rides along
    assert secured.get("/api/v1/studies").status_code == 200
    assert secured.post("/dashboard/logout", follow_redirects=False).status_code == 303
    secured.cookies.clear()
    assert secured.get("/api/v1/studies").status_code == 401


def test_token_query_parameter_becomes_a_cookie(secured):
    r = secured.get("/dashboard?token=s3cret-token&x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard?x=1"
    assert "tuneserve_token=" in r.headers["set-cookie"]
    assert secured.get("/dashboard").status_code == 200
    secured.cookies.clear()
    wrong = secured.get("/dashboard?token=nope", follow_redirects=False)
    assert wrong.status_code == 303 and "error=1" in wrong.headers["location"]
    # A bearer header and a non-ASCII token are checked by the same function: 401, never 500.
    assert secured.get("/dashboard/api/studies", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert secured.get("/dashboard/api/studies", headers={"Authorization": "Bearer s3crét".encode()}).status_code == 401


def test_serve_dashboard_prints_the_url_once_up(tmp_path):
    """What `tuneserve dashboard` runs: the server on the demo's database, the URL printed when up."""
    import threading
    import time

    import httpx

    from tuneserve_service.dashboard import serve
    from tuneserve_service.launch import free_port
    from tuneserve_service.main import create_app

    port, printed = free_port(), []
    url = serve.demo_database_url(tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve() / 'tuneserve.db'}"
    thread = threading.Thread(target=serve.serve_dashboard, daemon=True,
                              kwargs=dict(database_url=url, port=port, study="s", print_fn=printed.append,
                                          app_factory=create_app))
    thread.start()
    deadline = time.monotonic() + 60
    while not printed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert printed and printed[0].startswith(f"dashboard: http://127.0.0.1:{port}/dashboard/studies/s")
    assert httpx.get(f"http://127.0.0.1:{port}/dashboard/api/studies").json() == []


def test_pages_carry_the_enums_and_the_scripts_spell_no_value_list(client):
    import html
    import json
    import re
    from pathlib import Path

    from tuneserve.schemas.enums import ENDED_STATES, DiagnosisLabel, Goal, TrialState

    page = client.get("/dashboard").text
    found = re.search(r'<script id="ts-enums" type="application/json">(.*?)</script>', page, re.S)
    assert found, "the page does not carry the enums"
    enums = json.loads(html.unescape(found.group(1)))
    assert list(enums["TrialState"].values()) == [s.value for s in TrialState]
    assert list(enums["ENDED_STATES"].values()) == [s.value for s in ENDED_STATES]
    assert list(enums["DiagnosisLabel"].values()) == [label.value for label in DiagnosisLabel]
    assert enums["Goal"] == {"MINIMIZE": Goal.MINIMIZE.value, "MAXIMIZE": Goal.MAXIMIZE.value}
    script = (Path(__file__).resolve().parents[1] / "service/dashboard/static/dashboard.js").read_text()
    # No list of states or labels, and no goal spelt out: they come from the page.
    assert not re.search(r'\[\s*"(waiting|running|completed|healthy)"\s*,', script)
    assert '"minimize"' not in script and '"maximize"' not in script
