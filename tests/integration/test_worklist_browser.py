"""The worklist page as a radiologist sees it: rendered by headless Chromium (Debian packages
`chromium` and `chromium-driver`, installed by `make bootstrap`) from file://, checked in the
DOM and in a screenshot. Fabricated entries; no stack needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipelines.domain import QcFlag
from pipelines.screening.worklist import Night, NightFiles, WorklistEntry, publish_index, publish_night
from tests.integration.browser import chromium

VIEWS = ("R-CC", "L-CC", "R-MLO", "L-MLO")
FLAGGED_RGB = (255, 217, 217)  # tr.flagged background in the page's style
BUTTON = QcFlag("foreign_object", "bright round object 14 mm across, limit 5 mm", 14.0)
NIGHT = Night(study_date="2026-03-14", task="mammo", model_version="7",
              shadow={"model_version": "8", "rank_correlation": 0.9}, quarantined=1, capacity=None)


def picture(seed: int, h: int = 256, w: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """A dark image with a bright blob, and a 1/16-size heatmap hot on the blob."""
    rng = np.random.default_rng(seed)
    cy, cx = int(rng.integers(40, h - 40)), int(rng.integers(30, w - 30))
    yy, xx = np.mgrid[0:h, 0:w]
    image = 0.15 + 0.8 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 300.0)
    hy, hx = np.mgrid[0:h // 16, 0:w // 16]
    heat = np.exp(-((hy - cy / 16) ** 2 + (hx - cx / 16) ** 2) / 2.0)
    return image.astype(np.float32), heat.astype(np.float32)


def entry(i: int, score: float, suspicion: int, flagged: bool, qc: dict[str, list[QcFlag]]) -> WorklistEntry:
    exam = f"ex-{i:03d}"
    return WorklistEntry(exam, score, suspicion, flagged, "operating point" if flagged else "",
                         {v: score for v in VIEWS}, qc,
                         f"http://127.0.0.1:8042/app/explorer.html#study?uuid=study-{i:03d}",
                         {v: picture(10 * i + k) for k, v in enumerate(VIEWS)})


ENTRIES = [entry(1, 0.20, 3, False, {}), entry(2, 0.95, 10, True, {"R-MLO": [BUTTON]}),
           entry(3, 0.55, 6, False, {}), entry(4, 0.81, 9, True, {}), entry(5, 0.05, 1, False, {})]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium("worklist browser test", 1600, 1200) as driver:
        yield driver


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> NightFiles:
    folder = tmp_path_factory.mktemp("worklists")
    files = publish_night(folder, NIGHT, ENTRIES)
    publish_index(folder)
    return files


def _rows(driver: Any) -> list[dict[str, Any]]:
    return driver.execute_script("""
      return [...document.querySelectorAll('#worklist tbody tr[data-exam]')].map(tr => {
        const r = tr.getBoundingClientRect();
        return {exam: tr.dataset.exam, suspicion: Number(tr.dataset.suspicion),
                flagged: tr.classList.contains('flagged'), bg: getComputedStyle(tr).backgroundColor,
                top: r.top + window.scrollY, bottom: r.bottom + window.scrollY, left: r.left,
                right: r.right, study: tr.querySelector('a.study').href,
                flagText: tr.querySelector('td.flagcell').innerText};
      });""")


def test_the_page_lists_exams_by_suspicion_with_every_image_loaded(browser: Any, night: NightFiles) -> None:
    browser.get(night.html.as_uri())
    rows = _rows(browser)
    assert [r["exam"] for r in rows] == ["ex-002", "ex-004", "ex-003", "ex-001", "ex-005"]
    assert [r["suspicion"] for r in rows] == sorted((r["suspicion"] for r in rows), reverse=True)
    images = browser.execute_script(
        "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")
    assert len(images) == 2 * len(VIEWS) * len(ENTRIES)
    assert [src for src, complete, width in images if not (complete and width > 0)] == []
    assert rows[0]["study"] == "http://127.0.0.1:8042/app/explorer.html#study?uuid=study-002"


def test_flagged_rows_and_qc_reasons_are_visible(browser: Any, night: NightFiles) -> None:
    from selenium.webdriver.common.by import By

    browser.get(night.html.as_uri())
    rows = _rows(browser)
    flagged = [r["exam"] for r in rows if r["flagged"]]
    assert flagged == ["ex-002", "ex-004"]
    assert {r["bg"] for r in rows if r["flagged"]} == {"rgb({}, {}, {})".format(*FLAGGED_RGB)}
    assert all("operating point" in r["flagText"] for r in rows if r["flagged"])
    reason = browser.find_element(By.CSS_SELECTOR, 'tr[data-exam="ex-002"] figure.discounted ul.qc li')
    assert reason.is_displayed()
    assert reason.text == "foreign object: bright round object 14 mm across, limit 5 mm"
    figure = browser.find_element(By.CSS_SELECTOR, 'tr[data-exam="ex-002"] figure.discounted')
    assert figure.get_attribute("data-view") == "R-MLO"
    assert "discounted" in figure.text
    link = browser.find_element(By.CSS_SELECTOR, 'tr[data-exam="ex-002"] a.study')
    assert link.is_displayed() and link.text == "open study in Orthanc"


def test_the_screenshot_shows_highlighted_top_rows_and_heatmaps(browser: Any, night: NightFiles,
                                                                 tmp_path: Path) -> None:
    browser.get(night.html.as_uri())
    rows = _rows(browser)
    shot = tmp_path / "worklist.png"
    assert browser.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # not blank

    def region(r: dict[str, Any]) -> np.ndarray:
        assert r["bottom"] <= pixels.shape[0], f"row {r['exam']} is below the screenshot"
        return pixels[int(r["top"]) + 2:int(r["bottom"]) - 2, int(r["left"]) + 2:int(r["right"]) - 2]

    def share(area: np.ndarray, rgb: tuple[int, int, int]) -> float:
        return float((np.abs(area - np.array(rgb)).max(axis=-1) <= 2).mean())

    top, second, third = (region(r) for r in rows[:3])
    assert share(top, FLAGGED_RGB) > 0.2 and share(second, FLAGGED_RGB) > 0.2
    assert share(third, FLAGGED_RGB) == 0.0  # the first unflagged row is not highlighted
    red, blue = top[..., 0], top[..., 2]
    assert ((red > 200) & (red - blue > 120)).sum() > 100  # heatmap overlays drawn in the top row


def test_the_index_links_to_the_night_with_its_counts(browser: Any, night: NightFiles) -> None:
    from selenium.webdriver.common.by import By

    browser.get((night.folder.parent.parent / "index.html").as_uri())
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#nights tbody tr td")]
    assert cells == ["2026-03-14", "mammo", "7", "5", "2", "1"]
    browser.find_element(By.LINK_TEXT, "2026-03-14").click()
    assert browser.current_url.endswith("/mammo/2026-03-14/index.html")
    assert [r["exam"] for r in _rows(browser)][0] == "ex-002"
