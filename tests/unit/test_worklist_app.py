"""The worklist app (pipelines/screening/app.py) through FastAPI's TestClient, on a SQLite
results database, with the login dependency overridden and a fake Orthanc at the boundary:
who each exam is shown (escaped) and never written, feedback stored per reader, bad input
refused, image paths kept inside the night, and no login -> 401."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipelines import config
from pipelines.db import get_engine, worklist_feedback
from pipelines.domain import QcFlag
from pipelines.errors import OrthancUnavailable, PermanentError
from pipelines.pacs.demographics import StudyIdentity, viewer_link
from pipelines.pacs.pseudonyms import pseudonym_for
from pipelines.screening.app import Reader, create_app, refuse_everyone
from pipelines.screening.feedback import feedback_rows
from pipelines.screening.worklist import Night, WorklistEntry, publish_index, publish_night

DATE, TASK, ORTHANC = "2026-03-14", "mammo", "http://orthanc.test:8042"
NIGHT_URL = f"/worklist/{TASK}/{DATE}"
VIEWS = ("R-CC", "L-CC", "R-MLO", "L-MLO")
# study UID -> (Orthanc id, patient name, birth date, accession); the first only in the PACS
GATEWAY = {"1.2.826.0.1.1": ("orthanc-a1", "O'HARA^<script>alert(1)</script>", "19580312", "ACC&001"),
           "1.2.826.0.1.2": ("orthanc-b2", "MUELLERSON^ANNA^MARIA", "19611105", "ACC002")}
PACS_ONLY = {"1.2.826.0.1.3": ("", "PACSONLY^BERTA", "19700101", "ACC003")}
NOWHERE = "1.2.826.0.1.4"
BLUR = QcFlag("motion_blur", "edge sharpness 0.12 below the limit 0.30", 0.12)


class FakeOrthanc:
    """The gateway Orthanc and, through it, the PACS: the calls `resolve_exams` makes."""

    def __init__(self, down: Exception | None = None) -> None:
        self.down, self.calls = down, []  # type: ignore[var-annotated]

    def __enter__(self) -> FakeOrthanc:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def find_studies_by_uid(self, study_uids: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.calls.append(("find", *study_uids))
        if self.down:
            raise self.down
        return {uid: {"ID": study_id, "MainDicomTags": {"StudyInstanceUID": uid, "AccessionNumber": acc},
                      "PatientMainDicomTags": {"PatientName": name, "PatientBirthDate": birth}}
                for uid, (study_id, name, birth, acc) in GATEWAY.items() if uid in study_uids}

    def modality_find_studies(self, modality: str, query: dict[str, str]) -> list[dict[str, str]]:
        self.calls.append(("c-find", query["StudyInstanceUID"]))
        assert modality == "pacs" and set(query) == {"StudyInstanceUID", "PatientName", "PatientBirthDate",
                                                     "AccessionNumber"}
        found = PACS_ONLY.get(query["StudyInstanceUID"])
        if found is None:
            return []
        return [{"StudyInstanceUID": query["StudyInstanceUID"], "PatientName": found[1],
                 "PatientBirthDate": found[2], "AccessionNumber": found[3]}]


def _entry(exam: str, score: float, suspicion: int, flagged: bool,
           qc: dict[str, list[QcFlag]]) -> WorklistEntry:
    image = np.linspace(0, 1, 32 * 24, dtype=np.float32).reshape(32, 24)
    return WorklistEntry(exam, score, suspicion, flagged, "operating point" if flagged else "",
                         {v: score for v in VIEWS}, qc, f"{ORTHANC}/app/explorer.html#study?uuid={exam}",
                         {v: (image, np.ones((2, 2), np.float32)) for v in VIEWS})


@pytest.fixture
def exams(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Pseudonyms of the four studies, a published night of three of them (one not found
    anywhere) and the fourth listed as not retrieved from the PACS: {study UID: exam id}."""
    monkeypatch.setenv("RADFLOW_ORTHANC_URL", ORTHANC)
    monkeypatch.setenv("RADFLOW_PACS_AET", "HOSPITALPACS")
    config.reset_settings()
    with get_engine().begin() as conn:
        ids = {uid: pseudonym_for(conn, "study", uid) for uid in [*GATEWAY, *PACS_ONLY, NOWHERE]}
    uids = list(ids)
    entries = [_entry(ids[uids[0]], 0.93, 10, True, {"L-MLO": [BLUR]}),
               _entry(ids[uids[1]], 0.41, 5, False, {}), _entry(ids[NOWHERE], 0.20, 2, False, {})]
    folder = config.get_settings().worklists_dir
    files = publish_night(folder, Night(DATE, TASK, "7", None, 0, None), entries)
    publish_index(folder)
    data = json.loads(files.json.read_text())
    data["not_retrieved"] = [{"exam_id": ids[uids[2]], "reason": "C-MOVE failed: 0xA701 out of resources"}]
    files.json.write_text(json.dumps(data))
    return ids


@pytest.fixture
def orthanc() -> FakeOrthanc:
    return FakeOrthanc()


@pytest.fixture
def app(orthanc: FakeOrthanc) -> FastAPI:
    app = create_app(gateway=lambda: orthanc)
    app.dependency_overrides[refuse_everyone] = lambda: Reader("dr.ada")
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _rows(page: str) -> dict[str, str]:
    """{exam id: its <tr> element's HTML} of the worklist table."""
    table = page.split('<table id="worklist"', 1)[1].split("</table>", 1)[0]
    return {tr.split('data-exam="', 1)[1].split('"', 1)[0]: tr for tr in table.split("<tr ")[1:]}


def _vote(client: TestClient, exam: str, verdict: str, **kwargs: Any) -> Any:
    return client.post(f"{NIGHT_URL}/feedback", json={"exam_id": exam, "verdict": verdict}, **kwargs)


def test_the_night_shows_who_each_exam_is_escaped_and_linked(client: TestClient, exams: dict[str, str],
                                                           orthanc: FakeOrthanc) -> None:
    page = client.get(NIGHT_URL)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    rows = _rows(page.text)
    first, second, nowhere = (exams[u] for u in (*GATEWAY, NOWHERE))
    assert list(rows) == [first, second, nowhere]  # the night's order
    assert "O&#x27;HARA, &lt;script&gt;alert(1)&lt;/script&gt;" in rows[first]
    assert "<script>alert" not in page.text
    assert "Acc. ACC&amp;001" in rows[first] and "born 1958-03-12" in rows[first]
    assert "MUELLERSON, ANNA MARIA" in rows[second] and "born 1961-11-05" in rows[second]
    assert f'href="{ORTHANC}/app/explorer.html#study?uuid=orthanc-b2"' in rows[second]
    assert "not found" in rows[nowhere] and "open in viewer" not in rows[nowhere]
    assert 'class="flagged"' in rows[first].split(">", 1)[0] and "FLAGGED" in rows[first]
    assert "motion blur: edge sharpness 0.12 below the limit 0.30" in rows[first]
    assert f'src="{DATE}/img/0001-L-MLO-heat.png"' in rows[first]
    assert rows[first].count('class="verdict"') == 3 and "no verdict yet" in rows[first]
    # the study the PACS could not deliver: listed, with who it is from a C-FIND (gateway lacks it)
    missing = page.text.split('<table id="not-retrieved"', 1)[1]
    assert "PACSONLY, BERTA" in missing and "from the PACS" in missing
    assert "0xA701 out of resources" in missing
    # one gateway lookup for the whole page, then a C-FIND for each study the gateway lacks
    gateway = [c for c in orthanc.calls if c[0] == "find"]
    assert len(gateway) == 1 and sorted(gateway[0][1:]) == sorted([*GATEWAY, *PACS_ONLY, NOWHERE])
    assert sorted(c for c in orthanc.calls if c[0] == "c-find") == sorted(
        [("c-find", NOWHERE), ("c-find", *PACS_ONLY)])


def test_no_identifying_value_is_written_to_disk_or_logged(client: TestClient, exams: dict[str, str],
                                                           isolated_settings: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert client.get(NIGHT_URL).status_code == 200
    assert _vote(client, exams[next(iter(GATEWAY))], "disagree").status_code == 200
    identifying = [b"O'HARA", b"MUELLERSON", b"PACSONLY", b"19580312", b"1958-03-12", b"ACC002", b"ACC&001"]
    files = [p for p in isolated_settings.rglob("*") if p.is_file()]
    assert any(p.name == "radflow.db" for p in files) and any(p.suffix == ".png" for p in files)
    for path in files:
        blob = path.read_bytes()
        assert [v for v in identifying if v in blob] == [], path
    assert [v for v in identifying if v.decode() in caplog.text] == []
    assert "demographics: 4 exams resolved" in caplog.text  # counts are logged, nothing else


def test_feedback_is_upserted_per_reader_and_shown_back(client: TestClient, app: FastAPI,
                                                        exams: dict[str, str]) -> None:
    exam = exams[next(iter(GATEWAY))]
    answer = _vote(client, exam, "disagree")
    assert answer.status_code == 200 and answer.json() == {"exam_id": exam, "verdict": "disagree",
                                                           "reader": "dr.ada"}
    assert _vote(client, exam, "artifact").status_code == 200  # the reader changes their mind
    with get_engine().connect() as conn:
        stored = [dict(r) for r in conn.execute(sa.select(worklist_feedback)).mappings()]
    assert len(stored) == 1
    assert {k: stored[0][k] for k in ("exam_id", "task", "reader", "verdict", "model_version", "study_date",
                                      "score", "flagged")} == {
        "exam_id": exam, "task": TASK, "reader": "dr.ada", "verdict": "artifact", "model_version": "7",
        "study_date": DATE, "score": 0.93, "flagged": True}
    row = _rows(client.get(NIGHT_URL).text)[exam]
    assert 'value="artifact" aria-pressed="true"' in row and "your verdict: artifact" in row
    app.dependency_overrides[refuse_everyone] = lambda: Reader("dr.bob")  # another reader sees their own
    assert "no verdict yet" in _rows(client.get(NIGHT_URL).text)[exam]
    assert _vote(client, exam, "agree").status_code == 200
    rows = feedback_rows(TASK, DATE)
    assert [(r["reader"], r["verdict"]) for r in rows] == [("dr.ada", "artifact"), ("dr.bob", "agree")]
    assert rows[0]["updated_at"] and json.dumps(rows)  # JSON-ready for the CLI
    assert feedback_rows(TASK, "2026-03-15") == [] and feedback_rows("cxr-nodule") == []
    with pytest.raises(PermanentError, match="'14.03.2026' is not YYYY-MM-DD"):
        feedback_rows(TASK, "14.03.2026")


def test_bad_feedback_is_refused_and_nothing_is_stored(client: TestClient, exams: dict[str, str]) -> None:
    exam = exams[next(iter(GATEWAY))]
    assert _vote(client, exam, "maybe").status_code == 422
    assert client.post(f"{NIGHT_URL}/feedback", json={"exam_id": exam}).status_code == 422
    assert client.post(f"{NIGHT_URL}/feedback", content=b"{not json",
                       headers={"Content-Type": "application/json"}).status_code == 422
    # what a cross-site page can send: a form, or JSON from another origin or site
    assert client.post(f"{NIGHT_URL}/feedback", data={"exam_id": exam, "verdict": "agree"}).status_code == 415
    assert _vote(client, exam, "agree", headers={"Origin": "http://127.0.0.1:5000"}).status_code == 403
    assert _vote(client, exam, "agree", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert _vote(client, "ex-0000000000000000", "agree").status_code == 404  # not on this night
    assert client.post(f"/worklist/{TASK}/2026-03-15/feedback",
                       json={"exam_id": exam, "verdict": "agree"}).status_code == 404
    with get_engine().connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(worklist_feedback)).scalar_one() == 0
    same_origin = _vote(client, exam, "agree", headers={"Origin": "http://testserver",
                                                        "Sec-Fetch-Site": "same-origin"})
    assert same_origin.status_code == 200


def test_images_are_served_from_the_night_folder_only(client: TestClient, exams: dict[str, str],
                                                     isolated_settings: Path) -> None:
    png = client.get(f"{NIGHT_URL}/img/0001-R-CC-heat.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    (isolated_settings / "secret.png").write_bytes(b"\x89PNG not yours")
    for name in ("..%2Fworklist.json", "%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.png", "%2E%2E",
                 "0001-R-CC.png%00.json", "..%5C..%5Cworklist.json", "0009-R-CC.png"):
        answer = client.get(f"{NIGHT_URL}/img/{name}")
        assert answer.status_code == 404 and b"PNG" not in answer.content, name
    assert client.get(f"/worklist/{TASK}/..%2F..%2F..%2Fsecrets/img/x.png").status_code == 404
    assert client.get("/worklist/..%2Fmammo/2026-03-14").status_code == 404


def test_the_index_lists_the_nights(client: TestClient, exams: dict[str, str]) -> None:
    page = client.get("/worklist/")
    assert page.status_code == 200 and f'href="{TASK}/{DATE}"' in page.text
    assert "logged in as dr.ada" in page.text


@pytest.mark.parametrize("down", [OrthancUnavailable("Orthanc at http://orthanc.test:8042 did not answer"),
                                  PermanentError("Orthanc at http://orthanc.test:8042 answered HTTP 400")])
def test_an_orthanc_that_fails_the_lookup_does_not_fail_the_page(exams: dict[str, str],
                                                                 down: Exception) -> None:
    orthanc = FakeOrthanc(down=down)
    app = create_app(gateway=lambda: orthanc)
    app.dependency_overrides[refuse_everyone] = lambda: Reader("dr.ada")
    with TestClient(app) as client:
        page = client.get(NIGHT_URL)
    assert page.status_code == 200
    assert all("lookup unavailable" in row for row in _rows(page.text).values())
    assert [c[0] for c in orthanc.calls] == ["find"]  # a failed gateway is not a reason to ask the PACS


def test_without_a_login_every_route_answers_401(exams: dict[str, str]) -> None:
    with TestClient(create_app(gateway=FakeOrthanc)) as client:  # nobody configured: nobody let in
        for path in ("/worklist/", NIGHT_URL, f"{NIGHT_URL}/img/0001-R-CC.png"):
            answer = client.get(path, headers={"Accept": "text/html"}, follow_redirects=False)
            assert answer.status_code == 401, path
            assert "O&#x27;HARA" not in answer.text and "MUELLERSON" not in answer.text
        assert _vote(client, exams[next(iter(GATEWAY))], "agree").status_code == 401
        assert client.post(f"{NIGHT_URL}/feedback", content=b"{not json",
                           headers={"Content-Type": "application/json"}).status_code == 401


def test_the_airflow_login_dependency_answers_401_without_a_token(exams: dict[str, str]) -> None:
    """The plugin's dependency (Airflow's get_user) with no cookie and no bearer token: 401, and
    a browser gets a page linking to the login page, not a redirect."""
    from pipelines.orchestration.plugin import URL_PREFIX, airflow_reader

    root = FastAPI()
    root.mount(URL_PREFIX, create_app(airflow_reader, lambda back: f"/auth/login/?next={back}", FakeOrthanc))
    with TestClient(root) as client:
        page = client.get(f"{URL_PREFIX}{NIGHT_URL}", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 401 and page.headers["www-authenticate"] == "Bearer"
        assert f'href="/auth/login/?next={URL_PREFIX}{NIGHT_URL}"' in page.text
        assert client.get(f"{URL_PREFIX}/worklist/").json() == {"detail": "log in to Airflow first"}
        assert _vote(client, exams[next(iter(GATEWAY))], "agree").status_code == 404  # not mounted there
        vote = client.post(f"{URL_PREFIX}{NIGHT_URL}/feedback", json={"exam_id": "x", "verdict": "agree"})
        assert vote.status_code == 401


PLUGIN_PROBE = r"""
import json, sys
import pipelines.orchestration.plugin  # what every Airflow process loads (the entry point)
heavy = sorted(m for m in sys.argv[1:] if m in sys.modules)
from airflow import plugins_manager
from airflow.api_fastapi.core_api.datamodels.plugins import PluginResponse
# what GET /api/v2/plugins answers, and the UI builds its menu from
ours = [PluginResponse.model_validate(p) for p in plugins_manager.get_plugin_info() if p["name"] == "radflow"]
views = [v.model_dump(mode="json") for p in ours for v in p.external_views]
print(json.dumps({"heavy": heavy, "views": views}))
"""


def test_the_plugin_puts_the_worklist_in_airflows_menu_and_loads_no_heavy_library(tmp_path: Path) -> None:
    """In a fresh interpreter, as Airflow loads it: the plugin imports no heavy library, and
    Airflow's own plugins endpoint model shows the worklist as a link in the Browse menu (no
    iframe route: the page's CSP forbids framing)."""
    heavy = ["torch", "mlflow", "great_expectations", "pydicom", "pyorthanc", "tritonclient", "onnxruntime",
             "sklearn", "pandas"]
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    run = subprocess.run([sys.executable, "-c", PLUGIN_PROBE, *heavy], env=env, capture_output=True,
                         text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["heavy"] == []
    assert found["views"] == [{"name": "Screening worklist", "href": "/radflow/worklist/",
                               "destination": "nav", "url_route": None, "category": "browse", "icon": None,
                               "icon_dark_mode": None, "nav_top_level": False}]


def test_the_viewer_link_is_filled_quoted_and_only_when_complete() -> None:
    who = StudyIdentity("ex-1", "gateway", "A, B", "1960-01-01", "AC 1/2", "1.2.3", "abc")
    assert viewer_link("{orthanc}/app/explorer.html#study?uuid={study_id}", ORTHANC + "/", who) == \
        f"{ORTHANC}/app/explorer.html#study?uuid=abc"
    assert viewer_link("https://pacs.example/view?uid={study_uid}&acc={accession}", ORTHANC, who) == \
        "https://pacs.example/view?uid=1.2.3&acc=AC%201%2F2"
    from_pacs = StudyIdentity("ex-1", "pacs", "A, B", "1960-01-01", "AC1", "1.2.3", "")
    assert viewer_link("{orthanc}/app/explorer.html#study?uuid={study_id}", ORTHANC, from_pacs) is None
    assert viewer_link("{orthanc}/{study_id.__class__}", ORTHANC, who) is None
    assert viewer_link("javascript:alert('{study_uid}')", ORTHANC, who) is None
    assert repr(who) == "StudyIdentity(exam_id='ex-1', source='gateway', study_id='abc')"
