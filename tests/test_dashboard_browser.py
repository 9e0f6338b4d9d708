"""The dashboard in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by
selenium) against a real uvicorn server, with a study that a real worker trained on digits.

The pages load with no console errors, every chart holds data points (read from the plotly graph
divs), the filters change the table, pause and resume change the study's state, the enqueue form
adds a trial, and a trial's page shows both loss curves. Screenshots are saved as artifacts in a
temporary folder (printed; TUNESERVE_SCREENSHOTS=DIR keeps them elsewhere). Runs on SQLite: the
endpoints behind the pages are tested on both backends in test_dashboard_api.py.
"""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.browser import console_errors, find_chromium, full_screenshot, screenshot_folder, visit, wait_for
from tests.support.live_server import LiveServer
from tests.support.worker_run import PARAMETERS, run_study

_, _, WHY_NOT = find_chromium()
pytestmark = pytest.mark.skipif(bool(WHY_NOT), reason=f"browser tests skipped: {WHY_NOT}")

STUDY = "digits-browser"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory, "dashboard-screenshots")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard-browser")
    live = LiveServer(f"sqlite:///{tmp / 'tuneserve.db'}", log_path=tmp / "server.log")
    live.start()
    # Eight real trials so that the importance panel (8 completed trials at least) has bars too.
    run_study(live.url, STUDY, tmp, trials=8, epochs=2)
    yield live
    live.stop()


def points_in(browser, div_id: str) -> int:
    """Data points plotted in a plotly graph div (non-null x values; parcoords: lines)."""
    return browser.execute_script("""
        const div = document.getElementById(arguments[0]);
        if (!div || !div.data) return 0;
        let n = 0;
        for (const t of div.data) {
          if (t.type === 'parcoords') n += t.dimensions[0].values.length;
          else n += (t.x || []).filter((v) => v !== null && v !== undefined).length;
        }
        return n;""", div_id)


def drawn_points(browser, div_id: str) -> int:
    """Scroll a chart into view (charts below the fold are drawn when they become visible) and
    return its data points once it has some."""
    browser.execute_script("document.getElementById(arguments[0]).scrollIntoView({block: 'center'})", div_id)
    return wait_for(lambda: points_in(browser, div_id), what=f"points in {div_id}")


def table_rows(browser) -> list[dict]:
    return browser.execute_script("""
        return [...document.querySelectorAll('#trials tbody tr')].map((tr) => ({
          id: tr.dataset.id, state: tr.cells[1].textContent.trim(), value: tr.cells[2].textContent.trim()}));""")


def test_pages_load_without_console_errors(server, browser, shots):
    trial_id = httpx.get(f"{server.url}/api/v1/studies/{STUDY}/trials").json()["items"][0]["id"]
    for name, path in (("studies", "/dashboard"), ("study", f"/dashboard/studies/{STUDY}"),
                       ("trial", f"/dashboard/trials/{trial_id}")):
        ready_ms = visit(browser, server.url + path)
        time.sleep(0.5)  # let late redraws log anything they would
        assert console_errors(browser) == [], name
        assert ready_ms < 30_000
        full_screenshot(browser, shots / f"{name}.png")
        browser.set_window_size(1440, 1000)
    visit(browser, server.url + "/dashboard")
    rows = browser.execute_script("return [...document.querySelectorAll('#studies tbody tr')].map((r) => r.innerText)")
    assert len(rows) == 1 and STUDY in rows[0] and "8 / 8" in rows[0] and "finished" in rows[0].lower()


def test_every_chart_of_the_study_page_has_data(server, browser, shots):
    visit(browser, f"{server.url}/dashboard/studies/{STUDY}")
    assert points_in(browser, "chart-history") >= 8 + 8  # each trial's value, and the best-so-far line
    assert points_in(browser, "chart-curves") >= 8 * 2  # two epochs per trial
    assert drawn_points(browser, "chart-parallel") == 8
    assert drawn_points(browser, "chart-slices") == 8 * 2  # lr and optimizer, one point per trial each
    assert drawn_points(browser, "chart-importance") == 2
    assert browser.execute_script("return document.getElementById('chart-slices').layout.xaxis.type") == "log"  # lr
    assert len(table_rows(browser)) == 8
    assert console_errors(browser) == []


def test_filters_change_the_table(server, browser, shots):
    visit(browser, f"{server.url}/dashboard/studies/{STUDY}")
    assert len(table_rows(browser)) == 8
    values = sorted(t["value"] for t in httpx.get(f"{server.url}/api/v1/studies/{STUDY}/trials").json()["items"])
    cut = values[3]
    box = browser.find_element("id", "filter-vmax")
    box.clear()
    box.send_keys(repr(cut))
    browser.find_element("id", "filter-apply").click()
    filtered = wait_for(lambda: r if len(r := table_rows(browser)) == 4 else None, what="4 rows")
    assert all(float(r["value"]) <= cut * (1 + 1e-4) for r in filtered)  # shown to 5 digits
    assert "4 matching trials" in browser.find_element("id", "trials-note").text
    full_screenshot(browser, shots / "study-filtered.png")
    browser.set_window_size(1440, 1000)
    # A parameter filter on top: one optimizer only.
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "filter-param")).select_by_value("optimizer")
    Select(wait_for(lambda: browser.find_elements("id", "filter-param-value"), what="the value list")[0]).select_by_value("adam")
    browser.find_element("id", "filter-add").click()
    browser.find_element("id", "filter-apply").click()
    trials = httpx.get(f"{server.url}/api/v1/studies/{STUDY}/trials").json()["items"]
    expected = sum(1 for t in trials if t["params"]["optimizer"] == "adam" and t["value"] <= cut)
    wait_for(lambda: f"{expected} matching trial" in browser.find_element("id", "trials-note").text,
             what=f"{expected} adam trials")
    browser.find_element("id", "filter-clear").click()
    wait_for(lambda: len(table_rows(browser)) == 8, what="the full table back")
    assert console_errors(browser) == []


def test_pause_resume_and_enqueue_from_the_page(server, browser, shots):
    httpx.post(f"{server.url}/api/v1/studies", json={"name": "controls", "parameters": PARAMETERS,
                                                     "max_trials": 5}).raise_for_status()
    visit(browser, f"{server.url}/dashboard/studies/controls")

    def state() -> str:
        return httpx.get(f"{server.url}/api/v1/studies/controls").json()["state"]

    browser.find_element("id", "btn-pause").click()
    wait_for(lambda: state() == "paused", what="the study paused")
    wait_for(lambda: browser.find_element("id", "study-state").text.lower() == "paused", what="the badge")
    assert browser.find_element("id", "btn-pause").get_attribute("disabled") is not None
    browser.find_element("id", "btn-resume").click()
    wait_for(lambda: state() == "running", what="the study running again")
    wait_for(lambda: browser.find_element("id", "study-state").text.lower() == "running", what="the badge")

    lr = browser.find_element("css selector", '#enqueue-fields [name="lr"]')
    lr.clear()
    lr.send_keys("0.02")
    browser.find_element("css selector", "#enqueue-form button[type=submit]").click()
    wait_for(lambda: "enqueued as" in browser.find_element("id", "enqueue-msg").text, what="the enqueue answer")
    queued = httpx.get(f"{server.url}/api/v1/studies/controls/trials").json()["items"]
    assert len(queued) == 1 and queued[0]["state"] == "waiting" and queued[0]["params"]["lr"] == 0.02
    wait_for(lambda: len(table_rows(browser)) == 1, what="the new row in the table")  # live update
    full_screenshot(browser, shots / "study-controls.png")
    browser.set_window_size(1440, 1000)
    assert console_errors(browser) == []


def test_trial_page_shows_train_and_validation_loss(server, browser, shots):
    trial = httpx.get(f"{server.url}/api/v1/studies/{STUDY}/trials").json()["items"][0]
    visit(browser, f"{server.url}/dashboard/trials/{trial['id']}")
    traces = browser.execute_script(
        "return document.getElementById('chart-loss').data.map((t) => [t.name, t.y.length])")
    assert sorted(traces) == [["train_loss", 2], ["val_loss", 2]]
    for div in ("chart-acc", "chart-lr", "chart-grad", "chart-ratio"):
        assert points_in(browser, div) >= 2, div
    text = browser.find_element("tag name", "main").text
    assert f"Trial #{trial['number']}" in text and "Completed with val_loss" in text
    assert console_errors(browser) == []
