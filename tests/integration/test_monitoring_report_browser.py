"""The monitoring report as the ML team sees it: rendered by headless Chromium (Debian
packages `chromium` and `chromium-driver`, installed by `make bootstrap`) from file://,
checked in the DOM and in a screenshot. Fabricated inputs (tests/unit/test_monitoring_report);
no stack needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipelines.monitoring import report
from tests.integration.browser import chromium
from tests.unit.test_monitoring_report import DATE, SECTIONS, build_inputs

ALERT_RGB = (198, 40, 40)  # .verdict.alert background in the report's style


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium("report browser test", 1400, 1000) as driver:
        yield driver


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return report.write(build_inputs(), tmp_path_factory.mktemp("reports"))


def _load(driver: Any, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _screenshot(driver: Any, path: Path) -> np.ndarray:
    assert driver.save_screenshot(str(path))
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_every_plot_loads_in_every_section(browser: Any, page: Path) -> None:
    _load(browser, page)
    sections = browser.execute_script("return [...document.querySelectorAll('section')].map(s => s.id);")
    assert sections == SECTIONS
    images = browser.execute_script("""return [...document.images].map(i =>
        [i.closest('section').id, i.complete, i.naturalWidth, i.naturalHeight]);""")
    assert [section for section, *_ in images] == ["scores", "metadata", "drift", "artifacts"]
    assert [s for s, complete, width, height in images if not (complete and width > 0 and height > 0)] == []


def test_the_screenshot_shows_the_alert_banner_and_a_drawn_plot(browser: Any, page: Path,
                                                                tmp_path: Path) -> None:
    _load(browser, page)
    pixels = _screenshot(browser, tmp_path / "top.png")
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # not blank
    banner = browser.execute_script("""const r = document.getElementById('verdict').getBoundingClientRect();
        return [r.top, r.bottom, r.left, r.right];""")
    top, bottom, left, right = (int(v) for v in banner)
    area = pixels[top + 2:bottom - 2, left + 2:right - 2]
    assert (np.abs(area - np.array(ALERT_RGB)).max(axis=-1) <= 2).mean() > 0.5  # the red alert banner

    # the score plot, scrolled into view: axes, bars and the red night outline, not a uniform box
    rect = browser.execute_script("""const i = document.querySelector('#scores img');
        i.scrollIntoView(); const r = i.getBoundingClientRect();
        return [r.top, r.bottom, r.left, r.right];""")
    top, bottom, left, right = (int(v) for v in rect)
    plot = _screenshot(browser, tmp_path / "scores.png")[top + 2:bottom - 2, left + 2:right - 2]
    assert plot.size and plot.std() > 10
    assert len(np.unique(plot.reshape(-1, 3), axis=0)) > 50
    red = (plot[..., 0] > 180) & (plot[..., 1] < 80) & (plot[..., 2] < 80)
    assert red.sum() > 200  # the night's histogram is drawn


def test_the_index_links_to_the_night(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By

    _load(browser, page.parent.parent / "index.html")
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#reports tbody tr td")]
    assert cells[0] == DATE and cells[1].startswith("Alert raised")
    browser.find_element(By.LINK_TEXT, DATE).click()
    assert browser.current_url.endswith(f"/mammo/{DATE}/index.html")
    assert browser.find_element(By.ID, "verdict").get_attribute("data-verdict") == "alert"
