"""The dashboard's data endpoints with the gates, on SQLite and PostgreSQL: special runs (the sanity
check, the lr range test: kind sanity / lr_range, numbered below zero) are left out of every count,
chart and the trial table; the table's rows carry each trial's diagnosis and filter on its label
(unknown label: 422 naming the field); the studies list carries the sanity check's state."""
from __future__ import annotations

import pytest

from tests.support.gates import SANITY_FAILED, Rows, diagnosis
from tests.test_dashboard_api import API, DASH, build_study, get

DIAGNOSES = {
    0: diagnosis("healthy", "Nothing to change.", final_gap=0.01),
    1: diagnosis("lr_too_high", "Lower lr: the loss rose from the first epochs.", cause="lr_too_high",
                 grad_norm_growth=8.5),
    2: diagnosis("plateau", "Raise lr or train longer: the loss stopped falling.", provisional=True, flat_epochs=3),
    3: diagnosis("diverged", "Check the data: NaN before any update.", cause="bad_data", nan_step=1),
    5: diagnosis("healthy", "Nothing to change.", final_gap=0.02),
}


@pytest.fixture
def rows(database_url):
    r = Rows(database_url)
    yield r
    r.close()


@pytest.fixture
def gated(client, rows):
    """Study `d`: 12 ordinary trials (trial 3 failed), diagnoses on five of them (the server's own are
    replaced: the others have none, as before a first report), and two special
    runs that would change every figure if counted: a completed sanity run at -1 whose value beats
    every trial (with 50 reports and a `healthy` diagnosis), and a running range test at -2."""
    study = build_study(client, n=12)
    for number in range(12):
        rows.set_diagnosis("d", number, DIAGNOSES.get(number))
    before = get(client, f"{DASH}/studies/d")["stamp"]
    rows.add_special_run("d", "sanity", -1, "completed", value=1e-6, losses=[2.3 / (i + 1) for i in range(50)],
                         diagnosis_json=diagnosis("healthy", "Nothing to change."))
    rows.add_special_run("d", "lr_range", -2, "running", losses=[2.3, 2.1, 1.7])
    rows.set_study("d", sanity=SANITY_FAILED, gate="lr_range")
    return {"study": study, "stamp": before}


def test_studies_list_counts_only_trials_and_carries_the_sanity_state(client, gated):
    [row] = get(client, f"{DASH}/studies")
    assert row["counts"] == {"waiting": 0, "running": 0, "completed": 11, "pruned": 0, "failed": 1, "diverged": 0}
    assert row["total"] == 12 and row["ended"] == 12
    assert row["best_value"] == pytest.approx(gated["study"]["best_trial"]["value"]) and row["best_value"] > 1e-3
    assert row["sanity_state"] == "failed" and row["gate"] == "lr_range"


def test_a_study_without_gates_has_no_sanity_state(client):
    build_study(client, n=2)
    [row] = get(client, f"{DASH}/studies")
    assert row["sanity_state"] is None and row["gate"] is None


def test_special_runs_leave_the_stamp_and_every_chart_alone(client, gated):
    assert get(client, f"{DASH}/studies/d")["stamp"] == gated["stamp"]
    h = get(client, f"{DASH}/studies/d/history")
    assert h["number"] == list(range(12)) and len(h["value"]) == 12
    assert h["best"][-1] == pytest.approx(gated["study"]["best_trial"]["value"])
    c = get(client, f"{DASH}/studies/d/curves")
    assert c["total"] == c["shown"] == 12 and sorted(t["number"] for t in c["trials"]) == list(range(12))
    p = get(client, f"{DASH}/studies/d/params")
    assert p["total"] == p["shown"] == 11 and sorted(p["number"]) == [n for n in range(12) if n != 3]
    assert min(p["value"]) == pytest.approx(gated["study"]["best_trial"]["value"])
    imp = get(client, f"{DASH}/studies/d/importance")
    assert imp["completed"] == 11


def test_table_rows_carry_the_diagnosis_badge(client, gated):
    page = get(client, f"{DASH}/studies/d/trials", limit=500)
    assert page["total"] == 12 and [r["number"] for r in page["items"]] == list(range(12))
    by_number = {r["number"]: r["diagnosis"] for r in page["items"]}
    for number in range(12):
        d = DIAGNOSES.get(number)
        expected = None if d is None else {"label": d["label"], "cause": d["cause"], "advice": d["advice"],
                                           "provisional": d["provisional"]}
        assert by_number[number] == expected, number
    assert get(client, f"{DASH}/studies/d/trials", order="desc", limit=1)["items"][0]["number"] == 11


@pytest.mark.parametrize("labels, numbers", [
    ("lr_too_high", [1]),
    (["healthy", "plateau"], [0, 2, 5]),     # the sanity run's own `healthy` is not a trial
    ("diverged", [3]),
    ("overfitting", []),
])
def test_the_table_filters_on_the_label(client, gated, labels, numbers):
    page = get(client, f"{DASH}/studies/d/trials", diagnosis=labels, limit=500)
    assert [r["number"] for r in page["items"]] == numbers and page["total"] == len(numbers)


def test_the_label_filter_combines_with_the_others(client, gated):
    page = get(client, f"{DASH}/studies/d/trials", diagnosis=["healthy", "diverged"], state="completed")
    assert [r["number"] for r in page["items"]] == [0, 5]


def test_an_unknown_label_is_a_422_naming_the_field(client, gated):
    before = client.get(f"{API}/studies/d").json()
    r = client.get(f"{DASH}/studies/d/trials", params={"diagnosis": ["healthy", "sleepy"]})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["query", "diagnosis", 1]
    assert "'healthy'" in detail["msg"] and "'lr_too_high'" in detail["msg"]  # the allowed labels, named
    assert client.get(f"{API}/studies/d").json() == before


def test_a_special_runs_page_says_what_it_is(client, gated, rows):
    sid = rows.study_id("d")
    with rows.engine.connect() as conn:
        from sqlalchemy import text

        tid = conn.execute(text("SELECT id FROM trials WHERE study_id = :s AND number = -1"), {"s": sid}).scalar_one()
    d = get(client, f"{DASH}/trials/{tid}")
    assert d["trial"]["kind"] == "sanity" and d["trial"]["number"] == -1
    assert d["trial"]["diagnosis"]["label"] == "healthy" and d["steps"] == list(range(1, 51))
