"""The trial page's Provenance panel and its "Rerun" button (issue 19 item 5) in a real browser
(headless Chromium, as test_try_advice_browser.py) against a real server: the facts the worker sent,
a rerun into the trial's own study and into another one, a refusal's reason, and the rerun's page
linking back to the trial it reruns."""
from __future__ import annotations

import httpx
import pytest

from tests.helpers import make_study
from tests.support.browser import console_errors, find_chromium, screenshot_folder, shown, text_of, visit, wait_for
from tests.support.live_server import LiveServer
from tuneserve._defaults import API_PREFIX
from tests.test_rerun import PARAMS, enqueue, run

_, _, WHY_NOT = find_chromium()
pytestmark = pytest.mark.skipif(bool(WHY_NOT), reason=f"browser tests skipped: {WHY_NOT}")
API = API_PREFIX


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer.on_sqlite(tmp_path_factory.mktemp("rerun-browser")) as live:
        yield live


def facts(browser) -> dict[str, str]:
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#provenance-facts tr')].map((r) => [r.cells[0].innerText, r.cells[1].innerText])")
    return dict(rows)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return screenshot_folder(tmp_path_factory, "rerun-browser")


def test_the_provenance_panel_and_the_rerun_button(server, browser, shots):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        make_study(c, max_trials=1)
        make_study(c, "other", max_trials=1)
        enqueue(c, PARAMS)
        tid = run(c, metrics={"param_count": 4506, "flops": 198976, "latency_ms": 0.1815, "peak_memory_mb": 2.6})
        visit(browser, f"{server.url}/dashboard/trials/{tid}")
        wait_for(lambda: shown(browser, "provenance-facts") and facts(browser), what="the provenance")
        got = facts(browser)
        assert got["torch"] == "2.13.0" and got["python"] == "3.11.9" and got["seed"] == "7"
        assert got["git commit"] == "c0ffeec0ffee (dirty)" and got["sha256"] == "abababababababab"
        assert got["command"] == "python train.py --lr=0.1" and got["data subset"] == "3767db5fe6ded5ff (719 train)"
        assert not shown(browser, "provenance-none") and not shown(browser, "provenance-rerun-of")
        # What the model costs is in the trial's facts (dashboard.js), not in charts of their own.
        head = text_of(browser, "#trial-facts")
        for fact in ("params4506", "flops198976", "latency ms/image0.1815", "peak memory MB2.6"):
            assert fact in head, head
        assert not shown(browser, "panel-other")

        browser.find_element("id", "btn-rerun").click()
        wait_for(lambda: shown(browser, "rerun-msg"), what="the answer")
        assert text_of(browser, "#rerun-msg").startswith("Enqueued as trial #1") and "in study s." in text_of(browser, "#rerun-msg")
        browser.find_element("id", "rerun-study").send_keys("nope")
        browser.find_element("id", "btn-rerun").click()
        wait_for(lambda: "nope" in text_of(browser, "#rerun-msg"), what="the refusal")
        assert text_of(browser, "#rerun-msg") == "Not enqueued: study 'nope' not found"
        field = browser.find_element("id", "rerun-study")
        field.clear()
        field.send_keys("other")
        browser.find_element("id", "btn-rerun").click()
        wait_for(lambda: "in study other" in text_of(browser, "#rerun-msg"), what="the rerun into another study")
        panel = browser.find_element("id", "panel-provenance")
        browser.execute_script("arguments[0].scrollIntoView()", panel)
        browser.save_screenshot(str(shots / "rerun-trial.png"))

        again = c.get(f"{API}/studies/other/trials").json()["items"][0]
        assert again["rerun_of"] == tid and again["params"] == PARAMS
        visit(browser, f"{server.url}/dashboard/trials/{again['id']}")
        wait_for(lambda: shown(browser, "provenance-rerun-of"), what="the rerun's origin")
        assert text_of(browser, "#provenance-rerun-of") == f"A rerun of trial {tid}."
        assert shown(browser, "provenance-none")  # not run yet: no provenance
        assert not shown(browser, "diagnosis-parent")  # a rerun is no advice variant
    # The one error is the planted refusal's 404 (the browser logs any failed fetch).
    assert [e["message"] for e in console_errors(browser)] == [
        f"{server.url}/api/v1/trials/{tid}/rerun - Failed to load resource: the server responded with a status of 404 (Not Found)"]
