"""A screening night on the real Orthanc, Triton, MLflow and PostgreSQL, through the CLI.

Synthetic exams with planted artifacts (the truth CSV names them) are screened by a
registered model with known weights: QC flags match the truth and discount the views,
results land in the database, an SR, a CAD SR and a heatmap series land in each study, the
night's worklist is published; a rerun changes nothing and duplicates nothing; a night with
Triton down fails before writing and its retry completes; a chest X-ray task runs on the same
code. The tests run in file order and build on each other.
"""

from __future__ import annotations

import csv
import json

import httpx
import pytest

from tests.integration.models import register_versions
from tests.integration.stack import Stack

NIGHT, DOWN_NIGHT, CHEST_NIGHT = "2026-10-12", "2026-10-13", "2026-10-14"
EXAMS = 8


def radflow_series(stack: Stack) -> list[dict]:
    """Every series radflow wrote into Orthanc (Manufacturer radflow)."""
    url, auth = stack.orthanc_api()
    out = []
    for series in httpx.get(f"{url}/series", params={"expand": 1}, auth=auth).json():
        tags = series["MainDicomTags"]
        first = httpx.get(f"{url}/instances/{series['Instances'][0]}/simplified-tags", auth=auth).json()
        if first.get("Manufacturer") == "radflow":
            out.append({"study": series["ParentStudy"], "modality": tags.get("Modality"),
                        "description": tags.get("SeriesDescription", ""),
                        "instances": len(series["Instances"])})
    return out


@pytest.fixture(scope="module")
def night(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The night's exams in Orthanc (half with one planted artifact) and a deployed champion."""
    files = register_versions(stack, "mammo-screening", [(128, 96)], tmp_path_factory.mktemp("onnx"))
    assert list(files) == [1]
    synth = stack.radflow("synth", "--exams", str(EXAMS), "--date", NIGHT, "--site", "north",
                          "--seed", "31", "--scale", "0.25", "--artifact-rate", "0.5")
    stack.radflow("synth", "--exams", "2", "--date", DOWN_NIGHT, "--site", "north", "--seed", "32")
    stack.wait_stable()
    stack.radflow("promote", "--version", "1", "--reason", "first champion", login="admin")
    stack.radflow("deploy", "--model-uri", "models:/mammo-screening/1")
    return {"truth": list(csv.DictReader(open(synth["truth_file"])))}


def test_a_night_is_screened_with_artifacts_discounted(stack: Stack, night: dict) -> None:
    out = stack.radflow("screen", "--date", NIGHT)
    assert (out["exams"], out["views_scored"], out["quarantined"]) == (EXAMS, 4 * EXAMS, [])
    assert out["task"] == "mammo" and out["run_id"] == f"mammo/{NIGHT}/1"
    assert set(out["stage_seconds"]) >= {"collect", "score", "aggregate", "store", "write_back", "worklist"}
    truth = {}
    for row in night["truth"]:
        (exam,) = stack.query("SELECT pseudonym FROM pseudonyms WHERE kind = 'study' AND original = :u",
                              u=row["study_instance_uid"])
        truth[exam["pseudonym"]] = {tuple(a.split(":")) for a in row["artifacts"].split()}
    planted = {(e, v, c) for e, arts in truth.items() for v, c in arts}
    assert planted, "synth planted no artifact: the test would prove nothing"
    flags = {(r["exam_id"], r["view"], r["code"]) for r in stack.query("SELECT * FROM qc_flags")}
    assert planted <= flags, f"missed: {planted - flags}"
    assert {(e, v) for e, v, _ in flags} == {(e, v) for e, v, _ in planted}  # no false flags
    views = stack.query("SELECT exam_id, view, discounted, qc_reason FROM view_results")
    assert len(views) == 4 * EXAMS
    assert {(r["exam_id"], r["view"]) for r in views if r["discounted"]} == {(e, v) for e, v, _ in planted}
    assert all(r["qc_reason"] for r in views if r["discounted"])
    assert out["views_discounted"] == len(planted)
    exams = stack.query("SELECT * FROM exam_results WHERE study_date = :d", d=NIGHT)
    assert len(exams) == EXAMS and all(1 <= r["suspicion"] <= 10 for r in exams)
    assert sum(r["flagged"] for r in exams) == out["flagged"]
    (run,) = stack.query("SELECT * FROM screening_runs WHERE run_id = :r", r=out["run_id"])
    assert run["status"] == "complete" and run["exams"] == EXAMS
    rates = stack.query("SELECT * FROM qc_device_rates WHERE study_date = :d", d=NIGHT)
    assert sum(r["flagged"] for r in rates) == len(planted) and all(r["views"] > 0 for r in rates)


def test_results_go_back_into_each_study_and_onto_the_worklist(stack: Stack, night: dict) -> None:
    series = radflow_series(stack)
    url, auth = stack.orthanc_api()
    studies = [s for s in httpx.get(f"{url}/studies", params={"expand": 1}, auth=auth).json()
               if s["MainDicomTags"].get("StudyDate") == NIGHT.replace("-", "")]
    assert len(studies) == EXAMS
    for study in studies:
        mine = sorted((s for s in series if s["study"] == study["ID"]), key=lambda s: s["instances"])
        # the Comprehensive SR and the Mammography CAD SR (one instance each), 4 heatmaps
        kinds = [(s["modality"] == "SR", s["instances"]) for s in mine]
        assert kinds == [(True, 1), (True, 1), (False, 4)], mine
    folder = stack.state / "worklists" / "mammo" / NIGHT
    page = (folder / "index.html").read_text()
    exported = json.loads((folder / "worklist.json").read_text())
    for row in stack.query("SELECT exam_id FROM exam_results WHERE study_date = :d", d=NIGHT):
        assert row["exam_id"] in page and row["exam_id"] in json.dumps(exported)
    assert (stack.state / "worklists" / "index.html").exists()


def test_rerunning_the_night_changes_nothing_and_duplicates_nothing(stack: Stack, night: dict) -> None:
    results = "SELECT exam_id, score, suspicion, flagged FROM exam_results ORDER BY exam_id"
    before = stack.query(results)
    series_before = sorted(map(str, radflow_series(stack)))
    again = stack.radflow("screen", "--date", NIGHT)
    assert again["write_back"]["stored"] == 0 and again["write_back"]["replaced"] == 0
    assert stack.query(results) == before
    assert sorted(map(str, radflow_series(stack))) == series_before
    assert len(stack.query("SELECT * FROM view_results")) == 4 * EXAMS


def test_a_night_with_triton_down_fails_cleanly_and_its_retry_completes(stack: Stack, night: dict) -> None:
    series_before = len(radflow_series(stack))
    stack.radflow("stack", "down", "--only", "triton")
    try:
        failed = stack.radflow("screen", "--date", DOWN_NIGHT, ok=False)
        assert failed["type"] == "TritonUnavailable", failed
        assert stack.query("SELECT * FROM exam_results WHERE study_date = :d", d=DOWN_NIGHT) == []
        assert len(radflow_series(stack)) == series_before  # nothing written to the PACS
        (run,) = stack.query("SELECT * FROM screening_runs WHERE study_date = :d", d=DOWN_NIGHT)
        assert run["status"] == "failed" and "Triton" in run["error"]
    finally:
        stack.radflow("stack", "up", "--only", "triton", timeout=600)  # reloads what was deployed
    retry = stack.radflow("screen", "--date", DOWN_NIGHT)
    assert retry["exams"] == 2
    (run,) = stack.query("SELECT * FROM screening_runs WHERE study_date = :d", d=DOWN_NIGHT)
    assert run["status"] == "complete"
    assert len(radflow_series(stack)) == series_before + 6  # SR + CAD SR + SC for each of the 2 exams


def test_a_chest_xray_task_is_configuration_plus_a_model(
        stack: Stack, night: dict, tmp_path_factory: pytest.TempPathFactory) -> None:
    register_versions(stack, "cxr-nodule", [(128, 96)], tmp_path_factory.mktemp("cxr"))
    stack.radflow("synth-chest", "--exams", "3", "--date", CHEST_NIGHT, "--seed", "5", "--size", "256")
    stack.wait_stable()
    stack.radflow("promote", "--task", "cxr-nodule", "--version", "1", "--reason", "first champion",
                  login="admin", env=stack.login_env("admin"))
    deployed = stack.radflow("deploy", "--task", "cxr-nodule", "--model-uri", "models:/cxr-nodule/1")
    assert deployed["triton_model"] == "cxr_nodule"
    out = stack.radflow("screen", "--task", "cxr-nodule", "--date", CHEST_NIGHT)
    assert (out["task"], out["exams"], out["views_scored"]) == ("cxr-nodule", 3, 3)
    rows = stack.query("SELECT * FROM exam_results WHERE task = 'cxr-nodule'")
    assert len(rows) == 3 and all(set(r["view_scores"]) == {"PA"} for r in rows)
    assert (stack.state / "worklists" / "cxr-nodule" / CHEST_NIGHT / "index.html").exists()
    # the mammography night of the same Orthanc is untouched by the chest task
    assert len(stack.query("SELECT * FROM exam_results WHERE task = 'mammo'")) == EXAMS + 2
