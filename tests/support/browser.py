"""Headless Chromium (Debian's `chromium` + `chromium-driver`) driven by selenium, for the dashboard's
browser tests and its benchmark. `find_chromium()` says why a browser cannot be had, so tests skip
with that message locally (CI installs both packages in .ci/run)."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.helpers import wait_for  # noqa: F401  (re-exported for the browser tests)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--hide-scrollbars",
         # WebGL (scattergl, parcoords) on the software rasteriser, without its deprecation warning.
         "--enable-unsafe-swiftshader")


def find_chromium() -> tuple[str | None, str | None, str]:
    """(browser path, driver path, why not) for the first Chromium and chromedriver on PATH."""
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = next((p for p in map(shutil.which, DRIVER_NAMES) if p), None)
    if browser is None or driver is None:
        missing = [n for n, p in (("chromium", browser), ("chromium-driver", driver)) if p is None]
        return browser, driver, (f"{' and '.join(missing)} not found on PATH; install them with "
                                 "`apt-get install -y chromium chromium-driver` (CI does, in .ci/run)")
    return browser, driver, ""


@contextmanager
def chromium(width: int = 1440, height: int = 1000) -> Iterator["object"]:
    """A selenium Chrome driver on a fresh profile, with the browser console log readable through
    `driver.get_log("browser")`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path, why = find_chromium()
    if why:
        raise RuntimeError(why)
    profile = Path(tempfile.mkdtemp(prefix="tuneserve-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_ready(driver, timeout: float = 30.0) -> float:
    """Wait until the page marks itself ready (body[data-ready]); returns the milliseconds from
    navigation start to then, as the page measured them."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script("return document.body && document.body.dataset.ready === '1'"))
    return float(driver.execute_script("return window.__readyAt || performance.now()"))


def full_screenshot(driver, path: Path) -> Path:
    """A screenshot of the whole page height (the window is resized to the document's height)."""
    height = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height + 120, 600), 6000))
    time.sleep(1.0)  # charts below the fold draw when they come into view
    driver.save_screenshot(str(path))
    return path


def visit(driver, url: str) -> float:
    """Open `url` and wait until the page is ready; the page's own ready time in ms."""
    driver.get(url)
    return wait_ready(driver, timeout=60)


def console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]



def screenshot_folder(tmp_path_factory, name: str) -> Path:
    """Where a browser test module saves its screenshots: $TUNESERVE_SCREENSHOTS, else a fresh
    temporary folder named `name` (printed, so a run's artifacts can be found)."""
    folder = Path(os.environ["TUNESERVE_SCREENSHOTS"]) if os.environ.get("TUNESERVE_SCREENSHOTS") \
        else tmp_path_factory.mktemp(name)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\n{name}: {folder}")
    return folder


def text_of(browser, css: str) -> str:
    """The visible text of the first element matching `css`."""
    return browser.find_element("css selector", css).text


def shown(browser, element_id: str) -> bool:
    """Whether the element exists and is not hidden."""
    return browser.execute_script("const e = document.getElementById(arguments[0]); return !!e && !e.hidden", element_id)
