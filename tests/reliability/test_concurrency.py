"""Concurrent arrivals and concurrent runs (issue 18, item 6), on the real services.

- 20 DICOM clients (dcmtk `storescu`, half of them calling from a second modality's AE
  title) C-STORE the same 4-view exam into the gateway Orthanc at once, then 4 `radflow
  ingest` processes run together: Orthanc holds the study once, ingest takes it once (one
  exam, 4 manifest rows, one pseudonym, one lake folder, no quarantine) and a rerun takes
  nothing.
- Two `radflow screen --date D` of one night at once: one set of results (one row per exam
  and view, one run record, complete), one SR, one Mammography CAD SR and one heatmap series
  per exam in Orthanc, one worklist row per exam. The second run waits on the task's lock
  (pipelines/screening/run.py) and then screens the night again, replacing nothing: exit 0,
  0 objects stored or replaced in the PACS.
  Two attempts staging one batch at once (the DAG's path) are covered deterministically by
  tests/unit/test_screening_batches.py.

The figures go to docs/reliability.md (tests.reliability.figures).
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from tests.integration.models import approve, register_versions
from tests.integration.stack import RADFLOW, Stack
from tests.reliability.figures import record

CSTORE_DATE, NIGHT = "2026-08-03", "2026-08-04"
CLIENTS, INGESTS, SCREENS, NIGHT_EXAMS = 20, 4, 2, 3
SECOND_AET = "MAMMO2"  # a second mammography unit the gateway accepts stores from


def stack_settings(folder: Path) -> dict[str, str]:
    """The module's stack: a second modality may C-STORE into the gateway (port unused:
    the gateway never calls it)."""
    return {"RADFLOW_GATEWAY_STORE_AETS": f"{SECOND_AET}@127.0.0.1:11112"}


def _studies_with_uid(stack: Stack, uid: str) -> list[str]:
    url, auth = stack.orthanc_api()
    found = httpx.post(f"{url}/tools/find", auth=auth,
                       json={"Level": "Study", "Query": {"StudyInstanceUID": uid}})
    found.raise_for_status()
    return [str(s) for s in found.json()]


def _spawn(stack: Stack, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([RADFLOW, *args, "--json"], env=stack.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, dict[str, Any], str]:
    """(exit code, the last stdout line as JSON, stderr) of a `radflow ... --json` process."""
    stdout, stderr = proc.communicate(timeout=timeout)
    lines = stdout.strip().splitlines()
    assert lines, f"{proc.args!r} printed nothing (exit {proc.returncode}); stderr:\n{stderr[-3000:]}"
    return proc.returncode, json.loads(lines[-1]), stderr


def _radflow_series(stack: Stack, study_date: str) -> dict[str, list[tuple[str, int]]]:
    """Orthanc study id -> (SeriesDescription kind, instances) of each radflow series, for
    every study of the date."""
    url, auth = stack.orthanc_api()
    out: dict[str, list[tuple[str, int]]] = {}
    for study in httpx.get(f"{url}/studies", params={"expand": 1}, auth=auth).json():
        if study["MainDicomTags"].get("StudyDate") != study_date.replace("-", ""):
            continue
        mine = out.setdefault(study["ID"], [])
        for series_id in study["Series"]:
            series = httpx.get(f"{url}/series/{series_id}", auth=auth).json()
            first = httpx.get(f"{url}/instances/{series['Instances'][0]}/simplified-tags",
                              auth=auth).json()
            if first.get("Manufacturer") == "radflow":
                kind = series["MainDicomTags"].get("SeriesDescription", "").split()[2]
                mine.append((kind, len(series["Instances"])))
    return out


def test_twenty_clients_store_one_exam_and_four_ingests_take_it_once(stack: Stack, tmp_path: Path) -> None:
    started = time.monotonic()
    from pipelines.synth.run import run as synth

    synth(1, CSTORE_DATE, "north", 71, push=False, out_dir=tmp_path, scale=0.25, progress=False)
    headers = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(tmp_path.rglob("*.dcm"))}
    views = [str(p) for p, ds in headers.items() if ds.Modality == "MG"]
    (uid,) = {str(ds.StudyInstanceUID) for ds in headers.values()}
    assert len(views) == 4 and _studies_with_uid(stack, uid) == []

    port = stack.env["RADFLOW_ORTHANC_DICOM_PORT"]
    callers = ["RADFLOW" if i % 2 == 0 else SECOND_AET for i in range(CLIENTS)]
    clients = [subprocess.Popen(["storescu", "-v", "-aet", aet, "-aec", "ORTHANC", "127.0.0.1", port,
                                 *views], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for aet in callers]
    logs = [c.communicate(timeout=120)[0] for c in clients]
    assert all(c.returncode == 0 for c in clients), [log[-500:] for log in logs if "Success" not in log]
    accepted = sum(log.count("Received Store Response (Success)") for log in logs)
    assert accepted == CLIENTS * len(views)
    stack.wait_stable()
    studies = _studies_with_uid(stack, uid)
    url, auth = stack.orthanc_api()
    instances = httpx.get(f"{url}/studies/{studies[0]}/instances", auth=auth).json() if studies else []
    assert (len(studies), len(instances)) == (1, 4)

    ingests = [_spawn(stack, "ingest") for _ in range(INGESTS)]
    runs = [_finish(p) for p in ingests]
    assert all(rc == 0 for rc, _, _ in runs), [out for rc, out, _ in runs if rc]
    taken = sum(out["ingested_exams"] for _, out, _ in runs)
    found = sum(out["new_studies"] for _, out, _ in runs)
    rows = stack.query("SELECT exam_id, count(*) AS n FROM images GROUP BY exam_id")
    pseudonyms = stack.query("SELECT pseudonym FROM pseudonyms WHERE kind = 'study'")
    quarantined = stack.query("SELECT item_id, reason FROM quarantine")
    lake = stack.state / "lake"
    exam_id = rows[0]["exam_id"] if rows else "-"
    folders = [p for p in lake.rglob(exam_id) if p.is_dir() and ".staging" not in p.parts]
    npy = [p for p in lake.rglob("*.npy") if ".staging" not in p.parts]
    again = stack.radflow("ingest")
    seconds = time.monotonic() - started
    record(6, "concurrent_cstore_ingest", {
        "clients": CLIENTS, "calling_ae_titles": len(set(callers)), "files_per_client": len(views),
        "stores_accepted": accepted, "studies_in_orthanc": len(studies),
        "instances_in_orthanc": len(instances), "concurrent_ingests": INGESTS,
        "ingests_exit_0": sum(rc == 0 for rc, _, _ in runs), "new_studies_seen": found,
        "exams_ingested": taken,
        "image_rows": sum(r["n"] for r in rows), "exam_ids": len(rows),
        "study_pseudonyms": len(pseudonyms), "quarantined": len(quarantined),
        "lake_exam_folders": len(folders), "lake_view_files": len(npy),
        "duplicate_rows": sum(r["n"] for r in rows) - 4 * len(rows),
        "rerun_new_studies": again["new_studies"], "rerun_ingested": again["ingested_exams"],
    }, seconds=seconds, note=f"{CLIENTS} storescu processes ({len(set(callers))} AE titles) sending the "
                             f"same {len(views)}-view exam at once, then {INGESTS} `radflow ingest` at once")

    assert (found, taken) == (1, 1), [out for _, out, _ in runs]  # the others waited, then found nothing
    assert [r["n"] for r in rows] == [4] and len(pseudonyms) == 1
    assert quarantined == []
    assert len(folders) == 1 and len(npy) == 4 and {p.parent for p in npy} == set(folders)
    assert (again["new_studies"], again["ingested_exams"]) == (0, 0)
    assert stack.query("SELECT count(*) AS n FROM images")[0]["n"] == 4


@pytest.fixture(scope="module")
def champion(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A served champion with known weights (registered, approved, deployed; not trained)."""
    register_versions(stack, "mammo-screening", [(128, 96)], tmp_path_factory.mktemp("onnx"))
    approve(stack, "mammo-screening", 1)
    stack.radflow("deploy")
    return "1"


def _night_state(stack: Stack, night: str) -> dict[str, Any]:
    """What one night left: result rows, run records, radflow series per study, worklist rows."""
    results = stack.query("SELECT exam_id, model_version FROM exam_results WHERE study_date = :d", d=night)
    views = stack.query("SELECT exam_id, view FROM view_results WHERE study_date = :d", d=night)
    runs = stack.query("SELECT run_id, status, error FROM screening_runs WHERE study_date = :d", d=night)
    folder = stack.state / "worklists" / "mammo" / night
    listed = json.loads((folder / "worklist.json").read_text())["rows"] if folder.exists() else []
    exported = (folder / "worklist.csv").read_text().splitlines() if folder.exists() else []
    return {"results": results, "views": views, "runs": runs, "series": _radflow_series(stack, night),
            "worklist": [r["exam_id"] for r in listed], "csv": list(csv.DictReader(exported))}


def _night_figures(state: dict[str, Any], exams: int) -> dict[str, int]:
    """The counts of what one night of `exams` exams left."""
    results, views, per_study = state["results"], state["views"], state["series"]

    def most(kind: str) -> int:
        return max((sum(k == kind for k, _ in v) for v in per_study.values()), default=0)

    return {
        "exams": exams, "result_rows": len(results),
        "duplicate_result_rows": len(results) - len({r["exam_id"] for r in results}),
        "view_rows": len(views),
        "duplicate_view_rows": len(views) - len({(r["exam_id"], r["view"]) for r in views}),
        "run_records": len(state["runs"]), "studies_with_results": sum(bool(k) for k in per_study.values()),
        "max_srs_per_exam": most("SR"), "max_cad_srs_per_exam": most("CAD-SR"),
        "max_heatmap_series_per_exam": most("heatmaps"),
        "worklist_rows": len(state["worklist"]), "worklist_csv_rows": len(state["csv"]),
    }


def _assert_one_set_of_results(state: dict[str, Any], exams: int) -> None:
    results, views = state["results"], state["views"]
    assert len(results) == exams and len({r["exam_id"] for r in results}) == exams, results
    assert len(views) == 4 * exams and len({(r["exam_id"], r["view"]) for r in views}) == 4 * exams
    assert [r["status"] for r in state["runs"]] == ["complete"], state["runs"]
    kinds = [sorted(k) for k in state["series"].values()]
    assert kinds == [[("CAD-SR", 1), ("SR", 1), ("heatmaps", 4)]] * exams, state["series"]
    assert sorted(state["worklist"]) == sorted(r["exam_id"] for r in results)
    assert sorted(r["exam_id"] for r in state["csv"]) == sorted(state["worklist"])


def test_two_screening_runs_of_one_night_give_one_set_of_results(stack: Stack, champion: str) -> None:
    started = time.monotonic()
    stack.radflow("synth", "--exams", str(NIGHT_EXAMS), "--date", NIGHT, "--site", "north", "--seed", "72",
                  "--scale", "0.25")
    stack.wait_stable()
    screens = [_spawn(stack, "screen", "--date", NIGHT) for _ in range(SCREENS)]
    runs = [_finish(p) for p in screens]
    codes = [rc for rc, _, _ in runs]
    stored = sorted(out.get("write_back", {}).get("stored", -1) for _, out, _ in runs)
    replaced = sorted(out.get("write_back", {}).get("replaced", -1) for _, out, _ in runs)
    state = _night_state(stack, NIGHT)
    record(6, "concurrent_screening", {
        "concurrent_runs": SCREENS, "runs_exit_0": codes.count(0), "runs_exit_1": codes.count(1),
        **_night_figures(state, NIGHT_EXAMS), "first_run_pacs_objects_stored": stored[-1],
        "second_run_pacs_objects_stored": stored[0],
        "pacs_objects_replaced": sum(max(r, 0) for r in replaced),
    }, seconds=time.monotonic() - started,
        note=f"{SCREENS} `radflow screen --date D` of one {NIGHT_EXAMS}-exam night at once; the second "
             "waits on the task's lock, then screens the night again and changes nothing")
    # the second run's outcome is clear: it waited for the first (exit 0), then found
    # nothing to store or replace in the PACS
    assert codes == [0] * SCREENS, [out for rc, out, _ in runs if rc]
    _assert_one_set_of_results(state, NIGHT_EXAMS)
    assert all(out["exams"] == NIGHT_EXAMS for _, out, _ in runs)
    assert stored == [0, 6 * NIGHT_EXAMS] and replaced == [0, 0]  # SR, CAD SR, 4 heatmaps per exam
