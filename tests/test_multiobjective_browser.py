"""The Pareto front and hypervolume panels of the study page in a real browser (headless Chromium)
against a real server: the front highlighted, infeasible trials marked, any two of three objectives
chosen, the hypervolume history; and the panels stay hidden for a single-objective study."""
from __future__ import annotations

import httpx
import pytest

from tests.helpers import make_study
from tests.support.browser import (console_errors, find_chromium, full_screenshot, screenshot_folder, shown, text_of,
                                   visit, wait_for)
from tests.support.live_server import LiveServer
from tuneserve._defaults import API_PREFIX

_, _, WHY_NOT = find_chromium()
pytestmark = pytest.mark.skipif(bool(WHY_NOT), reason=f"browser tests skipped: {WHY_NOT}")
API = API_PREFIX


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer.on_sqlite(tmp_path_factory.mktemp("mo-browser")) as live:
        yield live


def run_three(c, n: int) -> None:
    c.post(f"{API}/studies", json={
        "name": "front", "method": "tpe", "max_trials": n, "seed": 3,
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}},
        "metrics": [{"name": "loss"}, {"name": "params_m"}, {"name": "acc", "goal": "maximize"}],
        "constraints": [{"name": "latency_ms", "max": 8.0}]}).raise_for_status()
    for _ in range(n):
        t = c.post(f"{API}/trials/claim", json={"worker_id": "b", "study": "front"}).json()
        x, y = t["params"]["x"], t["params"]["y"]
        metrics = {"loss": x, "params_m": (1 - x) ** 2 + y, "acc": 1 - y / 2, "latency_ms": 10 * y}
        c.post(f"{API}/trials/{t['trial_id']}/complete",
               json={"lease_token": t["lease_token"], "value": x, "metrics": metrics}).raise_for_status()


def traces(browser) -> dict:
    return browser.execute_script(
        "const d = document.getElementById('chart-pareto'); return Object.fromEntries((d.data || [])"
        ".map((t) => [t.name, {n: t.x.length, x: t.x, y: t.y, symbol: (t.marker || {}).symbol || null}]))")


def test_the_front_and_the_hypervolume_history(server, browser, tmp_path_factory):
    shots = screenshot_folder(tmp_path_factory, "mo-browser")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        run_three(c, 16)
        front = c.get(f"{API}/studies/front/pareto").json()
    visit(browser, f"{server.url}/dashboard/studies/front")
    wait_for(lambda: shown(browser, "panel-pareto") and traces(browser).get("Pareto front"), what="the front chart")
    t = traces(browser)
    n_front = len(front["front"])
    n_infeasible = sum(not p["feasible"] for p in front["trials"])
    assert t["Pareto front"]["n"] == n_front and t["infeasible"]["n"] == n_infeasible
    assert t["dominated"]["n"] == len(front["trials"]) - n_front - n_infeasible
    assert t["infeasible"]["symbol"] == "x"
    assert sorted(t["Pareto front"]["x"]) == sorted(p["values"][0] for p in front["front"])
    assert text_of(browser, "#pareto-note") == \
        f"{n_front} on the front, {t['dominated']['n']} dominated, {n_infeasible} infeasible"
    # Any two objectives: acc (maximised) against params_m.
    browser.execute_script("const s = document.getElementById('pareto-x'); s.value = '2'; s.dispatchEvent(new Event('change'));"
                           "const y = document.getElementById('pareto-y'); y.value = '1'; y.dispatchEvent(new Event('change'));")
    wait_for(lambda: sorted(traces(browser)["Pareto front"]["x"]) == sorted(p["values"][2] for p in front["front"]),
             what="the chart redrawn for acc against params_m")
    assert sorted(traces(browser)["Pareto front"]["y"]) == sorted(p["values"][1] for p in front["front"])
    assert "acc (max)" in browser.execute_script(
        "return document.getElementById('chart-pareto').layout.xaxis.title.text")
    assert shown(browser, "panel-hypervolume")
    hv = browser.execute_script("return document.getElementById('chart-hypervolume').data[0].y")
    assert hv and all(b >= a - 1e-12 for a, b in zip(hv, hv[1:])) and hv[-1] > 0
    full_screenshot(browser, shots / "pareto-page.png")
    for panel in ("panel-pareto", "panel-hypervolume"):
        browser.find_element("id", panel).screenshot(str(shots / f"{panel}.png"))
    assert console_errors(browser) == []


def test_a_single_objective_study_has_no_front_panel(server, browser):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        make_study(c, "single", max_trials=1)
    visit(browser, f"{server.url}/dashboard/studies/single")
    assert not shown(browser, "panel-pareto") and not shown(browser, "panel-hypervolume")
