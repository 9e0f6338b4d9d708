"""The variant and its "Try this" button on the trial page, and the helped figure on the study page,
in a real browser (headless Chromium, as test_dashboard_gates_browser.py) against a real server."""
from __future__ import annotations

import httpx
import pytest

from tests.helpers import make_study
from tests.support.browser import console_errors, find_chromium, shown, text_of, visit, wait_for
from tests.support.live_server import LiveServer
from tuneserve._defaults import API_PREFIX
from tests.test_try_advice import HEALTHY, OVERFIT, PARAMS, enqueue, run

_, _, WHY_NOT = find_chromium()
pytestmark = pytest.mark.skipif(bool(WHY_NOT), reason=f"browser tests skipped: {WHY_NOT}")
API = API_PREFIX


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer.on_sqlite(tmp_path_factory.mktemp("advice-browser")) as live:
        yield live


def test_try_this_enqueues_the_variant_and_the_study_page_counts_it(server, browser):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        make_study(c, max_trials=1)
        enqueue(c, PARAMS)
        sick = run(c, OVERFIT, 1.0)
        visit(browser, f"{server.url}/dashboard/trials/{sick}")
        wait_for(lambda: shown(browser, "diagnosis-variant"), what="the variant")
        assert text_of(browser, "#diagnosis-confidence") == "confidence 0.50, rule overfitting.val_rise"
        assert "more regularisation (dropout 0.1 -> 0.3)" in text_of(browser, "#variant-why")
        changed = browser.execute_script(
            "return [...document.querySelectorAll('#variant-params tr.changed')].map((r) => r.innerText)")
        assert len(changed) == 1 and "dropout" in changed[0] and "0.1 → 0.3" in changed[0]
        browser.find_element("id", "btn-try-advice").click()
        wait_for(lambda: shown(browser, "try-advice-msg"), what="the answer")
        assert text_of(browser, "#try-advice-msg").startswith("Enqueued as trial #1")
        variant = c.get(f"{API}/studies/s/trials", params={"state": "waiting"}).json()["items"][0]
        assert variant["parent_trial_id"] == sick and variant["params"]["dropout"] == 0.3
        run(c, HEALTHY, 0.6)
        visit(browser, f"{server.url}/dashboard/trials/{variant['id']}")
        wait_for(lambda: shown(browser, "diagnosis-parent"), what="the parent line")
        assert text_of(browser, "#diagnosis-parent") == f"Runs the regularise variant of trial {sick}'s advice."
        assert not shown(browser, "diagnosis-variant")  # healthy: nothing to try
        visit(browser, f"{server.url}/dashboard/studies/s")
        wait_for(lambda: shown(browser, "advice-tried"), what="the helped figure")
        assert text_of(browser, "#advice-tried") == "advice tried 1 time, helped 1"
    assert console_errors(browser) == []
