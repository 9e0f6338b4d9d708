"""The gates' panels in a real browser (headless Chromium, as test_dashboard_browser.py) against a real
server: a study of 12 trials run through the protocol, with the sanity check's verdict, a finished
range test (200 points of a U-shaped loss over 1e-7..10 and the real rule's suggestion) and a sanity
run at -1 written straight into its rows, and each trial's diagnosis replaced by a known one.

Checked: the sanity panel's verdict, checks and link; the advice list (as the API computes it); the
range test's chart (points, a log x axis, the suggestion and its range) and its Apply / Restore
buttons; the diagnosis badges and the label filter in the table; a trial page's diagnosis and a
special run's header; the studies list's sanity badge; the run buttons (started, and a 409 shown);
the gate notice appearing live; no console errors. Screenshots are saved (printed folder;
TUNESERVE_SCREENSHOTS=DIR keeps them elsewhere)."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.browser import (console_errors, find_chromium, full_screenshot, screenshot_folder, shown, text_of,
                                   visit, wait_for)
from tests.support.gates import SANITY_FAILED, Rows, diagnosis, lr_range_done
from tests.support.live_server import LiveServer
from tests.test_dashboard_api import PARAMS, build_study
from tests.test_dashboard_browser import points_in

_, _, WHY_NOT = find_chromium()
pytestmark = pytest.mark.skipif(bool(WHY_NOT), reason=f"browser tests skipped: {WHY_NOT}")

STUDY = "gated"
API = "/api/v1"
DIAGNOSES = {
    0: diagnosis("healthy", "Nothing to change: the loss fell steadily.", final_gap=0.01),
    1: diagnosis("lr_too_high", "Lower lr by 10x: the loss rose from the first epochs.", cause="lr_too_high",
                 grad_norm_growth=8.5, rising_from_epoch=1),
    2: diagnosis("plateau", "Raise lr or train longer: the loss stopped falling.", provisional=True, flat_epochs=3),
    3: diagnosis("diverged", "Check the data: the loss was NaN before any update.", cause="bad_data", nan_step=1),
    4: diagnosis("overfitting", "Add regularisation: val_loss rose while train_loss fell.", gap=0.4),
}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory, "gates-screenshots")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gates-browser")
    url = f"sqlite:///{tmp / 'tuneserve.db'}"
    live = LiveServer(url, log_path=tmp / "server.log")
    live.start()
    with httpx.Client(base_url=live.url, timeout=30) as c:
        build_study(c, STUDY, n=12)
    rows = Rows(url)
    for number in range(12):
        rows.set_diagnosis(STUDY, number, DIAGNOSES.get(number))
    live.sanity_id = rows.add_special_run(STUDY, "sanity", -1, "completed", value=0.05,
                                          losses=[2.3 * 0.9 ** i for i in range(30)])
    live.lr_id = rows.add_special_run(STUDY, "lr_range", -2, "completed", losses=[2.3, 2.0, 1.2, 0.9])
    rows.set_study(STUDY, sanity=SANITY_FAILED, lr_range=lr_range_done(narrowed=False))
    rows.close()
    live.rows_url = url
    yield live
    live.stop()


def study(server) -> dict:
    return httpx.get(f"{server.url}{API}/studies/{STUDY}").json()


def test_the_sanity_and_advice_panels(server, browser, shots):
    visit(browser, f"{server.url}/dashboard/studies/{STUDY}")
    assert shown(browser, "panel-sanity")
    assert text_of(browser, "#sanity-verdict") == SANITY_FAILED["verdict"]
    assert text_of(browser, "#sanity-state").lower() == "failed"
    assert shown(browser, "sanity-overridden")
    checks = browser.execute_script(
        "return [...document.querySelectorAll('#sanity-checks tbody tr')].map((r) => [r.cells[0].textContent, r.cells[1].textContent])")
    assert checks == [["finite_loss", "✓"], ["initial_loss", "✓"], ["fits_subset", "✗"]]
    figures = browser.execute_script("return [...document.querySelectorAll('#sanity-figures tr')].map((r) => r.cells[0].textContent)")
    assert figures == sorted(SANITY_FAILED["figures"])
    link = browser.find_element("css selector", "#sanity-link a")
    assert link.get_attribute("href").endswith(f"/dashboard/trials/{server.sanity_id}") and link.text == f"its run: the sanity run, trial {server.sanity_id}"
    expected = [a["message"] for a in study(server)["advice"]]
    assert any(m.startswith("the range test suggests lr") for m in expected)
    assert any(m.startswith("the sanity check failed and the study was resumed") for m in expected)
    items = browser.execute_script(
        "return [...document.querySelectorAll('#advice-list li')].map((li) => li.childNodes[1].textContent)")
    assert items == expected
    assert not shown(browser, "gate-notice")
    full_screenshot(browser, shots / "study-gates.png")
    browser.set_window_size(1440, 1000)
    assert console_errors(browser) == []


def test_the_range_test_chart(server, browser, shots):
    visit(browser, f"{server.url}/dashboard/studies/{STUDY}")
    assert shown(browser, "panel-lr-range")
    suggestion = study(server)["lr_range"]["suggestion"]
    chart = browser.execute_script("""
        const div = document.getElementById('chart-lr-range');
        return {type: div.layout.xaxis.type, traces: div.data.map((t) => ({name: t.name, x: t.x, n: t.x.length}))};""")
    assert chart["type"] == "log"
    assert next(t for t in chart["traces"] if t["name"] == "loss")["n"] == 200
    assert points_in(browser, "chart-lr-range") >= 200
    line = next(t for t in chart["traces"] if t["name"].startswith("suggested lr"))
    assert line["x"] == [suggestion["lr"], suggestion["lr"]]
    band = next(t for t in chart["traces"] if t["name"].startswith("suggested range"))
    assert min(band["x"]) == suggestion["low"] and max(band["x"]) == suggestion["high"]
    assert "No narrowing in force" in text_of(browser, "#lr-range-narrowing")
    assert text_of(browser, "#lr-range-message").startswith("suggested lr 0.000955")
    browser.execute_script("document.getElementById('panel-lr-range').scrollIntoView()")
    browser.save_screenshot(str(shots / "lr-range.png"))
    assert console_errors(browser) == []


def test_apply_and_restore_the_suggested_range(server, browser, shots):
    visit(browser, f"{server.url}/dashboard/studies/{STUDY}")
    assert browser.find_element("id", "btn-restore").get_attribute("disabled") is not None
    browser.find_element("id", "btn-narrow").click()
    wait_for(lambda: "In force" in text_of(browser, "#lr-range-narrowing"), what="the narrowing shown")
    lr_range = study(server)["lr_range"]
    assert lr_range["narrowing"]["after"]["max"] == pytest.approx(lr_range["suggestion"]["high"]) == pytest.approx(0.008805, rel=1e-3)
    assert text_of(browser, "#lr-range-narrowing") == \
        "In force: lr: log_uniform_values [1.00e-4, 1] → log_uniform_values [1.00e-4, 0.008805]"  # low clipped to the old bound
    assert browser.find_element("id", "btn-narrow").get_attribute("disabled") is not None
    browser.find_element("id", "btn-restore").click()
    wait_for(lambda: "No narrowing in force" in text_of(browser, "#lr-range-narrowing"), what="the narrowing gone")
    assert study(server)["lr_range"]["narrowing"] is None
    assert study(server)["parameters"]["lr"] == PARAMS["lr"]
    assert console_errors(browser) == []


def table(browser) -> list[tuple[str, str, str]]:
    return browser.execute_script("""
        return [...document.querySelectorAll('#trials tbody tr')].map((tr) => {
          const b = tr.querySelector('.diag');
          return [tr.cells[0].textContent, b ? b.dataset.label : '', b ? b.className : ''];
        });""")


def test_badges_and_the_label_filter(server, browser, shots):
    visit(browser, f"{server.url}/dashboard/studies/{STUDY}")
    rows = table(browser)
    assert [r[0] for r in rows] == [f"#{n}" for n in range(11, -1, -1)]  # no special run in the table
    badges = {r[0]: r[1:] for r in rows if r[1]}
    assert badges == {
        "#0": ["healthy", "diag good"], "#1": ["lr_too_high", "diag bad"], "#2": ["plateau", "diag warn provisional"],
        "#3": ["diverged", "diag bad"], "#4": ["overfitting", "diag warn"]}
    tip = browser.execute_script("return document.querySelector('#trials tr[data-id] .diag.provisional').title")
    assert tip == "provisional (still running): " + DIAGNOSES[2]["advice"]
    browser.find_element("css selector", '#filter-labels input[value="lr_too_high"]').click()
    browser.find_element("css selector", '#filter-labels input[value="overfitting"]').click()
    browser.find_element("id", "filter-apply").click()
    wait_for(lambda: [r[0] for r in table(browser)] == ["#4", "#1"], what="the two filtered rows")
    assert "2 matching trials" in text_of(browser, "#trials-note")
    browser.execute_script("document.getElementById('panel-trials').scrollIntoView()")
    browser.save_screenshot(str(shots / "table-badges.png"))
    browser.find_element("id", "filter-clear").click()
    wait_for(lambda: len(table(browser)) == 12, what="the full table back")
    assert console_errors(browser) == []


def test_a_trial_page_shows_its_diagnosis_and_a_special_run_says_so(server, browser, shots):
    trial = next(t for t in httpx.get(f"{server.url}{API}/studies/{STUDY}/trials", params={"limit": 100}).json()["items"]
                 if t["number"] == 1)
    visit(browser, f"{server.url}/dashboard/trials/{trial['id']}")
    assert text_of(browser, "#diagnosis-advice") == DIAGNOSES[1]["advice"]
    assert text_of(browser, "#diagnosis-label") == "lr too high"
    assert text_of(browser, "#diagnosis-cause") == "likely cause: lr too high"
    evidence = browser.execute_script("return [...document.querySelectorAll('#diagnosis-evidence tr')].map((r) => [r.cells[0].textContent, r.cells[1].textContent])")
    assert evidence == [["grad norm growth", "8.5"], ["rising from epoch", "1"]]
    assert not shown(browser, "trial-special") and text_of(browser, "#trial-title") == "Trial #1"
    full_screenshot(browser, shots / "trial-diagnosis.png")
    browser.set_window_size(1440, 1000)
    visit(browser, f"{server.url}/dashboard/trials/{server.sanity_id}")
    assert text_of(browser, "#trial-title") == "Sanity check run #-1"
    assert shown(browser, "trial-special") and "not a trial of the search" in text_of(browser, "#trial-special")
    assert text_of(browser, "#diagnosis-label") == "judged by its gate"
    assert console_errors(browser) == []


def test_the_studies_list_shows_the_failed_sanity_check(server, browser, shots):
    visit(browser, f"{server.url}/dashboard")
    badges, progress = browser.execute_script("""
        const tr = document.querySelector("#studies tr[data-name='gated']");
        return [[...tr.cells[1].querySelectorAll('.badge')].map((b) => b.textContent), tr.cells[3].innerText]""")
    assert badges == ["running", "sanity failed"]
    assert progress.endswith("12 / 16")  # the special runs are not counted
    assert console_errors(browser) == []


def test_run_buttons_start_a_gate_or_show_the_refusal(server, browser, shots):
    body = {"name": "user-objective", "objective": "mypkg.train:objective", "max_trials": 4,
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}}}
    httpx.post(f"{server.url}{API}/studies", json=body).raise_for_status()
    visit(browser, f"{server.url}/dashboard/studies/user-objective")
    assert not shown(browser, "panel-sanity") and not shown(browser, "panel-lr-range")
    assert text_of(browser, "#advice-list") == "No advice yet."
    browser.find_element("id", "btn-lr-range").click()
    wait_for(lambda: shown(browser, "control-msg") and "not started" in text_of(browser, "#control-msg"), what="the refusal")
    assert "does not support the lr range test" in text_of(browser, "#control-msg")
    assert browser.find_element("id", "control-msg").get_attribute("class") == "msg bad"
    browser.find_element("id", "btn-sanity").click()
    wait_for(lambda: shown(browser, "gate-notice"), what="the gate notice")
    assert text_of(browser, "#gate-notice") == "Ordinary trials are held back until the sanity check ends."
    assert text_of(browser, "#control-msg") == "sanity check: started"
    wait_for(lambda: shown(browser, "panel-sanity"), what="the sanity panel")
    assert text_of(browser, "#sanity-state").lower() == "pending"
    assert study_gate(server, "user-objective") == "sanity"
    full_screenshot(browser, shots / "study-gate-notice.png")
    browser.set_window_size(1440, 1000)
    # Chrome logs the refused request itself; nothing else may be logged.
    [refused] = console_errors(browser)
    assert refused["source"] == "network" and "/user-objective/lr-range-test" in refused["message"] and "409" in refused["message"]


def study_gate(server, name: str) -> str | None:
    return httpx.get(f"{server.url}{API}/studies/{name}").json()["gate"]


def test_the_notice_and_panels_follow_the_study_live(server, browser, shots):
    visit(browser, f"{server.url}/dashboard/studies/{STUDY}")
    assert not shown(browser, "gate-notice")
    chart_before = browser.execute_script("return document.getElementById('chart-lr-range').data.length")
    rows = Rows(server.rows_url)
    try:
        rows.set_study(STUDY, gate="lr_range", lr_range={**lr_range_done(narrowed=False), "state": "running",
                                                         "message": "the range test is running (trial -3)"})
    finally:
        rows.close()
    wait_for(lambda: shown(browser, "gate-notice"), what="the notice, by polling", timeout=15)
    assert text_of(browser, "#gate-notice") == "Ordinary trials are held back until the range test ends."
    wait_for(lambda: text_of(browser, "#lr-range-message") == "the range test is running (trial -3)", what="the message")
    assert text_of(browser, "#lr-range-state").lower() == "running"
    assert browser.execute_script("return document.getElementById('chart-lr-range').data.length") == chart_before
    assert console_errors(browser) == []
