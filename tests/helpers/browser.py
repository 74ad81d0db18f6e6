"""Headless Chromium driven by selenium through the system chromedriver, and polling what a page shows.

Needs Chromium and chromedriver on the machine (Debian: `apt-get install chromium chromium-driver`) and selenium;
skipped otherwise, mandatory in CI (GARBAGE_LIT_REQUIRE_BROWSER=1). Nothing is downloaded: the driver path is
given explicitly and selenium-manager runs offline. Only loopback addresses are used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.system import missing

REQUIRE_BROWSER = "GARBAGE_LIT_REQUIRE_BROWSER"
PAGE_SECONDS = 90  # servers load their data in the background; the page renders when it is in
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-proxy-server", "--window-size=1600,1000"]


@contextmanager
def headless_chromium() -> Iterator:
    """A selenium driver of the system Chromium (set SE_OFFLINE=true first: selenium-manager must not download)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install -e '.[dev]')", REQUIRE_BROWSER)
    chromium = os.environ.get("GARBAGE_LIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = os.environ.get("GARBAGE_LIT_CHROMEDRIVER") or shutil.which("chromedriver")
    if not (chromium and os.path.isfile(chromium) and driver_path and os.path.isfile(driver_path)):
        missing(f"Chromium ({chromium or 'not found'}) and chromedriver ({driver_path or 'not found'}) are needed "
                f"(Debian: apt-get install chromium chromium-driver)", REQUIRE_BROWSER)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="garbage-lit-chromium-")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shown(driver, script: str, ready, what: str):
    """Poll what the page shows (``script``) until ``ready(result)``."""
    deadline = time.monotonic() + PAGE_SECONDS
    while True:
        result = driver.execute_script(script)
        if ready(result) or time.monotonic() > deadline:
            assert ready(result), f"{what} not shown within {PAGE_SECONDS}s; the page shows {result!r}"
            return result
        time.sleep(1)


def keep_screenshot(png: Path) -> None:
    """Copy a screenshot a test took into $GARBAGE_LIT_SCREENSHOTS (e.g. docs/images) when that is set."""
    folder = os.environ.get("GARBAGE_LIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(folder) / png.name)
