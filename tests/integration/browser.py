"""Headless Chromium for the page tests (Debian packages `chromium` and `chromium-driver`,
installed by `make bootstrap`): a driver that fails loudly, never skips, when they are missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def chromium(what: str, width: int, height: int) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fixed window; `what` names the test in errors."""
    missing = [b for b in ("chromium", "chromedriver") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the {what} needs the Debian "
                    "packages chromium and chromium-driver; run `make bootstrap`")
    try:
        from selenium import webdriver
    except ImportError:
        pytest.fail("selenium is not installed in this environment; run `make bootstrap`")
    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=str(shutil.which("chromedriver")))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
