"""The worklist app in Airflow's api-server (the radflow plugin at /radflow), in headless
Chromium, on the full stack: 401 without a login, Airflow's FAB login page lets the admin
in, the night page names each synthetic patient (read from Orthanc at view time), the
viewer link opens the study in Orthanc, a click on "disagree" stores the admin's verdict,
and Airflow's Browse menu has a "Screening worklist" entry opening the worklist. No model is
trained: two synthetic studies are pushed to Orthanc, pseudonymised in the stack's
database, given exam_results rows and published as a night."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest

from pipelines import config, db
from pipelines.pacs.client import OrthancClient
from pipelines.pacs.pseudonyms import pseudonym_for
from pipelines.screening.worklist import Night, WorklistEntry, publish_index, publish_night
from tests.integration.browser import chromium
from tests.integration.stack import Stack, leaked, scanned_files

DATE, TASK, MODEL_VERSION = "2026-10-05", "mammo", "3"
VIEWS = ("R-CC", "L-CC", "R-MLO", "L-MLO")


@pytest.fixture(scope="module")
def night(full_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Two synthetic studies in Orthanc, published as a night (the first flagged): per exam,
    its pseudonym, Orthanc id and the patient's original name, birth date and accession."""
    out = tmp_path_factory.mktemp("synth")
    pushed = full_stack.radflow("synth", "--exams", "2", "--date", DATE, "--site", "general",
                                "--seed", "73", "--out", str(out))
    assert pushed["stored"] == 10
    full_stack.wait_stable()
    originals: dict[str, pydicom.Dataset] = {}
    for path in sorted(out.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.Modality == "MG":
            originals.setdefault(str(ds.StudyInstanceUID), ds)
    assert len(originals) == 2
    with pytest.MonkeyPatch.context() as patch:
        for key, value in full_stack.env.items():
            if key.startswith("RADFLOW_"):
                patch.setenv(key, value)
        config.reset_settings()
        try:
            exams = _publish(originals)
        finally:
            config.reset_settings()
            db.engine_for.cache_clear()
    return exams


def _publish(originals: dict[str, pydicom.Dataset]) -> list[dict[str, Any]]:
    settings = config.get_settings()
    exams = []
    with OrthancClient() as client, db.engine_for(settings.db_url).begin() as conn:
        for i, (uid, ds) in enumerate(originals.items()):
            exam_id, study_id = pseudonym_for(conn, "study", uid), client.find_study_uid(uid)
            assert study_id is not None
            exams.append({"exam_id": exam_id, "study_id": study_id, "flagged": i == 0,
                          "score": 0.91 - 0.6 * i, "name": str(ds.PatientName),
                          "birth": str(ds.PatientBirthDate), "accession": str(ds.AccessionNumber)})
        db.upsert(conn, db.exam_results, [
            {"exam_id": e["exam_id"], "model_version": MODEL_VERSION, "study_date": DATE, "score": e["score"],
             "flagged": e["flagged"], "views_scored": 4, "view_scores": {v: e["score"] for v in VIEWS},
             "task": TASK, "suspicion": 9 if e["flagged"] else 2,
             "flag_reason": "operating point" if e["flagged"] else None} for e in exams],
            keys=["exam_id", "model_version"])
    image = np.linspace(0.1, 0.9, 40 * 30, dtype=np.float32).reshape(40, 30)
    entries = [WorklistEntry(e["exam_id"], e["score"], 9 if e["flagged"] else 2, e["flagged"],
                             "operating point" if e["flagged"] else "", {v: e["score"] for v in VIEWS}, {},
                             f"{settings.orthanc_base_url}/app/explorer.html#study?uuid={e['study_id']}",
                             {v: (image, np.eye(4, 3, dtype=np.float32)) for v in VIEWS}) for e in exams]
    publish_night(settings.worklists_dir, Night(DATE, TASK, MODEL_VERSION, None, 0, None), entries)
    publish_index(settings.worklists_dir)
    return exams


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium("worklist app browser test", 1600, 1200) as driver:
        yield driver


def _status(driver: Any, url: str) -> int:
    """The HTTP status of a GET of `url` made by the page (with the browser's cookies)."""
    return int(driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => done(r.status), e => done(-1));", url))


def _log_in(driver: Any, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "login").click()  # the 401 page links to Airflow's login page
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.NAME, "username"))
    assert "/auth/login" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    WebDriverWait(driver, 60).until(lambda d: "/auth/login" not in d.current_url)


def _open_from_airflows_menu(driver: Any, base: str, tmp_path: Path) -> None:
    """Airflow's UI, its Browse menu, the entry "Screening worklist": the worklist opens in a
    new tab."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browse, entry = '[data-testid="nav-sidebar"] [aria-label="Browse"]', 'a[aria-label="Screening worklist"]'
    driver.get(f"{base}/")
    try:
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, browse))
        driver.find_element(By.CSS_SELECTOR, browse).click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, entry))
    except TimeoutException:
        driver.save_screenshot(str(tmp_path / "airflow-menu.png"))
        (tmp_path / "airflow-menu.html").write_text(driver.page_source)
        raise AssertionError(f"no Browse > Screening worklist in Airflow's menu; see {tmp_path}") from None
    link = driver.find_element(By.CSS_SELECTOR, entry)
    assert link.get_attribute("href") == f"{base}/radflow/worklist/"
    tabs = set(driver.window_handles)
    link.click()
    WebDriverWait(driver, 30).until(lambda d: len(d.window_handles) > len(tabs))
    driver.switch_to.window(next(h for h in driver.window_handles if h not in tabs))
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "nights"))
    assert driver.current_url == f"{base}/radflow/worklist/"


def test_the_worklist_behind_airflows_login(full_stack: Stack, night: list[dict[str, Any]], browser: Any,
                                            tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base = f"http://127.0.0.1:{full_stack.env['RADFLOW_AIRFLOW_PORT']}"
    page_url = f"{base}/radflow/worklist/{TASK}/{DATE}"
    flagged = next(e for e in night if e["flagged"])
    # no login, a forged token, or a vote without one: 401, not a redirect
    assert httpx.get(page_url, follow_redirects=False).status_code == 401
    forged = httpx.get(page_url, cookies={"_token": "forged.jwt.value"}, follow_redirects=False)
    assert forged.status_code == 401
    assert httpx.post(f"{page_url}/feedback", json={"exam_id": flagged["exam_id"], "verdict": "agree"},
                      follow_redirects=False).status_code == 401

    browser.get(page_url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.ID, "login"))
    assert _status(browser, page_url) == 401
    assert all(e["name"].split("^")[0] not in browser.page_source for e in night)
    _log_in(browser, full_stack.secret("airflow", "RADFLOW_AIRFLOW_PASSWORD"))
    assert _status(browser, page_url) == 200
    browser.get(page_url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#worklist tr[data-exam]"))
    browser.save_screenshot(str(tmp_path / "worklist-app.png"))

    orthanc = f"http://127.0.0.1:{full_stack.env['RADFLOW_ORTHANC_HTTP_PORT']}"
    for exam in night:
        row = browser.find_element(By.CSS_SELECTOR, f'#worklist tr[data-exam="{exam["exam_id"]}"]')
        family, given = exam["name"].split("^")[:2]
        birth = f"{exam['birth'][:4]}-{exam['birth'][4:6]}-{exam['birth'][6:]}"
        text = row.text
        assert family in text and given in text and f"born {birth}" in text and exam["accession"] in text
        link = row.find_element(By.CSS_SELECTOR, "a.viewer").get_attribute("href")
        assert link == f"{orthanc}/app/explorer.html#study?uuid={exam['study_id']}"
        assert len(row.find_elements(By.CSS_SELECTOR, "img")) == 8
    assert "logged in as admin" in browser.find_element(By.TAG_NAME, "body").text
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#worklist img")
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in thumbs)

    row = browser.find_element(By.CSS_SELECTOR, f'#worklist tr[data-exam="{flagged["exam_id"]}"]')
    assert "FLAGGED" in row.text
    row.find_element(By.CSS_SELECTOR, 'button.verdict[value="disagree"]').click()
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-exam="{flagged["exam_id"]}"] .current').text
        == "your verdict: disagree")
    stored = full_stack.query("SELECT exam_id, task, reader, verdict, model_version, study_date, flagged "
                              "FROM worklist_feedback")
    assert stored == [{"exam_id": flagged["exam_id"], "task": TASK, "reader": "admin", "verdict": "disagree",
                       "model_version": MODEL_VERSION, "study_date": DATE, "flagged": True}]

    browser.refresh()
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#worklist tr[data-exam]"))
    row = browser.find_element(By.CSS_SELECTOR, f'#worklist tr[data-exam="{flagged["exam_id"]}"]')
    assert row.find_element(By.CSS_SELECTOR, ".current").text == "your verdict: disagree"
    pressed = row.find_element(By.CSS_SELECTOR, 'button.verdict[aria-pressed="true"]')
    assert pressed.get_attribute("value") == "disagree"

    # the names were shown, never written: not in the worklists folder, nor in the api-server's log
    blobs = scanned_files(full_stack.state, ["worklists"])
    api_logs = list((full_stack.state / "logs").glob("*api-server*"))
    assert blobs and api_logs
    blobs += [p.read_bytes() for p in api_logs]
    identifying = {part for e in night for part in e["name"].split("^") if len(part) > 2}
    identifying |= {e["accession"] for e in night} | {e["birth"] for e in night}
    assert leaked(identifying, blobs) == []

    # radiologists find the worklist from Airflow's menu; it lists the night
    _open_from_airflows_menu(browser, base, tmp_path)
    assert browser.find_elements(By.CSS_SELECTOR, f'#nights a[href="{TASK}/{DATE}"]')
    assert "logged in as admin" in browser.find_element(By.TAG_NAME, "body").text
