"""The craft's dashboard panels in a real browser (headless Chromium, as test_dashboard_browser.py):
a staged study trained by a real worker on digits; the stages timeline and the links between the
stages both ways, the fidelity beside the values (header, trial table, history hover, trial page),
the configurations table with mean ± std, and the Refine and Repeat forms. Screenshots are saved
(printed folder; TUNESERVE_SCREENSHOTS=DIR keeps them elsewhere)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.browser import (
    console_errors, find_chromium, full_screenshot, screenshot_folder, visit, wait_for, wait_ready,
)
from tests.support.live_server import LiveServer

_, _, WHY_NOT = find_chromium()
pytestmark = pytest.mark.skipif(bool(WHY_NOT), reason=f"browser tests skipped: {WHY_NOT}")

ROOT = Path(__file__).resolve().parents[1]
STUDY = "c2f-browser"
STAGE1 = f"{STUDY}-stage-1"
DOCUMENT = {
    "name": STUDY, "method": "random", "seed": 2, "objective": "builtin:cnn", "lease_seconds": 30,
    "parameters": {"dataset": {"value": "digits"}, "width": {"value": 8}, "batch_size": {"value": 32},
                   "lr": {"distribution": "log_uniform_values", "min": 0.003, "max": 0.3},
                   "optimizer": {"values": ["adam", "sgd"]}},
    "stages": [{"trials": 3, "epochs": 1, "data_fraction": 0.3},
               {"refine": {"top_k": 2}, "trials": 2, "epochs": 2, "repeat_top": {"top_k": 1, "seeds": 2}}],
}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory, "craft-screenshots")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("craft-browser")
    live = LiveServer(f"sqlite:///{tmp / 'tuneserve.db'}", log_path=tmp / "server.log")
    live.start()
    httpx.post(f"{live.url}/api/v1/studies", json=DOCUMENT).raise_for_status()
    log = tmp / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tuneserve_workers.cli", "--server", live.url, "--study", STUDY, "--device", "cpu",
         "--worker-id", "w-browser", "--idle-max", "0.5"],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while httpx.get(f"{live.url}/api/v1/studies/{STUDY}").json()["stages"][-1]["state"] != "finished":
            if worker.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the staged study did not finish:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(30)
    yield live
    live.stop()


def text(browser, css: str) -> str:
    return browser.find_element("css selector", css).text


def text_with(browser, css: str, needle: str) -> str | None:
    found = text(browser, css)
    return found if needle in found else None


def test_the_stages_timeline_and_the_links_both_ways(server, browser, shots):
    visit(browser, f"{server.url}/dashboard/studies/{STUDY}")
    stages = wait_for(lambda: browser.find_elements("css selector", "#craft-stages .stage"), what="the timeline")
    assert [s.get_attribute("data-index") for s in stages] == ["0", "1"]
    assert "1 epoch, 30% data" in stages[0].text and "3/3 ended" in stages[0].text
    assert "2 epochs, 100% data" in stages[1].text and "refine top 2, repeat top 1 × 2" in stages[1].text
    assert "active" in stages[1].get_attribute("class")
    links = {a.text: a.get_attribute("href") for a in browser.find_elements("css selector", "#craft-stages a")}
    assert links[STAGE1].endswith(f"/dashboard/studies/{STAGE1}")
    child = browser.find_element("css selector", "#craft-lineage .link-children a")
    assert child.text == STAGE1
    assert "fidelity" in text(browser, "#study-facts") and "1 epoch, 30% data" in text(browser, "#study-facts")
    full_screenshot(browser, shots / "craft-stage0.png")
    browser.set_window_size(1440, 1000)
    child.click()
    wait_ready(browser, timeout=60)
    parent = wait_for(lambda: browser.find_elements("css selector", "#craft-lineage .link-parent a"), what="the parent link")
    assert parent[0].text == STUDY and parent[0].get_attribute("href").endswith(f"/dashboard/studies/{STUDY}")
    assert "current" in browser.find_elements("css selector", "#craft-stages .stage")[1].get_attribute("class")
    assert console_errors(browser) == []


def test_fidelity_beside_values_and_the_configurations(server, browser, shots):
    study = httpx.get(f"{server.url}/api/v1/studies/{STAGE1}").json()
    best = study["best_configuration"]
    visit(browser, f"{server.url}/dashboard/studies/{STAGE1}")
    row = wait_for(lambda: browser.find_elements("css selector", "#configurations tr.best-row"), what="the best row")[0]
    assert f"{best['mean']:.5g}".rstrip("0") in row.text and "±" in row.text and "(n=3)" in row.text
    assert "Best configuration" in text(browser, "#best-configuration")
    assert "best configuration" in text(browser, "#study-facts")
    # the trial table: a Fidelity column right of the value
    heads = [th.text for th in browser.find_elements("css selector", "#trials thead th")]
    assert heads[2:4] == ["Value", "Fidelity"]
    cells = wait_for(lambda: [tr.find_elements("css selector", "td")[3].text
                              for tr in browser.find_elements("css selector", "#trials tbody tr")] or None, what="rows")
    assert cells == ["2 epochs, 100% data"] * 4
    # the history hover says the fidelity of each point
    hover = browser.execute_script("""
        const d = document.getElementById('chart-history').data;
        return d.filter((t) => t.mode === 'markers').map((t) => [t.hovertemplate, t.text]);""")
    assert hover and all("at %{text}" in tpl and set(labels) == {"2 epochs, 100% data"} for tpl, labels in hover)
    full_screenshot(browser, shots / "craft-stage1.png")
    browser.set_window_size(1440, 1000)
    # the trial page of a repeat: its fidelity and its configuration
    repeat = next(t for t in httpx.get(f"{server.url}/api/v1/studies/{STAGE1}/trials").json()["items"]
                  if t["method"] == "repeat")
    visit(browser, f"{server.url}/dashboard/trials/{repeat['id']}")
    facts = wait_for(lambda: text_with(browser, "#trial-facts", "fidelity"), what="the fidelity fact")
    assert "2 epochs, 100% data" in facts and "a repeat with another seed" in facts
    full_screenshot(browser, shots / "craft-trial.png")
    browser.set_window_size(1440, 1000)
    assert console_errors(browser) == []


def test_refine_and_repeat_from_the_page(server, browser, shots):
    visit(browser, f"{server.url}/dashboard/studies/{STAGE1}")
    browser.find_element("css selector", "#refine-box summary").click()
    form = browser.find_element("id", "refine-form")
    for field, value in (("top_k", "2"), ("max_trials", "3"), ("epochs", "3"), ("data_fraction", "0.5"),
                         ("name", "c2f-browser-refined")):
        box = form.find_element("name", field)
        box.clear()
        box.send_keys(value)
    browser.find_element("id", "refine-submit").click()
    msg = wait_for(lambda: text_with(browser, "#refine-msg", "created"), what="the refine answer")
    assert "c2f-browser-refined" in msg and "3 epochs, 50% data" in msg
    child = httpx.get(f"{server.url}/api/v1/studies/c2f-browser-refined").json()
    assert child["parent"]["name"] == STAGE1 and child["max_trials"] == 3
    assert child["fidelity"]["epochs"] == 3 and child["fidelity"]["data_fraction"] == 0.5
    # a refused refine says why
    box = form.find_element("name", "top_k")
    box.clear()
    box.send_keys("50")
    browser.find_element("id", "refine-submit").click()
    wait_for(lambda: "top_k: must be <=" in text(browser, "#refine-msg"), what="the refusal")
    full_screenshot(browser, shots / "craft-refine.png")
    browser.set_window_size(1440, 1000)

    visit(browser, f"{server.url}/dashboard/studies/{STUDY}")
    form = browser.find_element("id", "repeat-form")
    for field, value in (("top_k", "1"), ("seeds", "2")):
        box = form.find_element("name", field)
        box.clear()
        box.send_keys(value)
    browser.find_element("id", "repeat-submit").click()
    wait_for(lambda: "enqueued 2 repeat trials" in text(browser, "#repeat-msg"), what="the repeat answer")
    assert httpx.get(f"{server.url}/api/v1/studies/{STUDY}").json()["max_trials"] == 5
    # the browser logs the refused refine's 422 answer itself; nothing else
    assert [e for e in console_errors(browser) if not (e["source"] == "network" and "/refine" in e["message"])] == []
