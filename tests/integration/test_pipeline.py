"""Every stage through the CLI against a real Orthanc, MLflow, Triton and PostgreSQL.

The tests run in file order and build on each other, as a hospital's first night would:
synth -> ingest (twice) -> quarantine -> validate -> train -> promote -> deploy -> screen.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.integration.stack import Stack, leaked, scanned_files

TRAIN_DATE, NIGHT_DATE = "2026-10-05", "2026-10-06"
TRAIN_EXAMS, NIGHT_EXAMS = 40, 12


@pytest.fixture(scope="module")
def phi(stack: Stack) -> set[str]:
    """Identifiers of every synthetic exam pushed in this module (filled by test_synth)."""
    return set()


def _collect_phi(folder: Path, into: set[str]) -> None:
    """Every identifier synth planted: names, ids, birth dates, accession numbers,
    institution, physicians, UIDs, in nested sequences and private tags."""
    from pipelines.deid import original_identifiers

    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        into.update(original_identifiers(ds))
        into.update({str(ds.PatientName), str(ds.PatientID), str(ds.AccessionNumber)})
    into.discard("")


def test_synth_pushes_exams_over_dicom(stack: Stack, phi: set[str], tmp_path_factory) -> None:
    out = tmp_path_factory.mktemp("synth")
    train = stack.radflow("synth", "--exams", str(TRAIN_EXAMS), "--date", TRAIN_DATE,
                          "--site", "general", "--seed", "11", "--out", str(out / "train"))
    night = stack.radflow("synth", "--exams", str(NIGHT_EXAMS), "--date", NIGHT_DATE,
                          "--site", "north", "--seed", "12", "--out", str(out / "night"))
    assert train["stored"] == TRAIN_EXAMS * 5 and night["stored"] == NIGHT_EXAMS * 5
    truth = list(csv.DictReader(open(train["truth_file"])))
    assert len(truth) == TRAIN_EXAMS and {r["label"] for r in truth} == {"0", "1"}
    assert "instances/s" in train["_stderr"]  # progress lines
    _collect_phi(out, phi)
    assert len(phi) > 4 * (TRAIN_EXAMS + NIGHT_EXAMS)


def test_ingest_is_incremental_and_quarantines_bad_studies(stack: Stack, tmp_path_factory) -> None:
    stack.wait_stable()
    first = stack.radflow("ingest")
    assert first["new_studies"] == TRAIN_EXAMS + NIGHT_EXAMS
    assert first["ingested_exams"] == TRAIN_EXAMS + NIGHT_EXAMS and first["quarantined"] == []
    again = stack.radflow("ingest")
    assert again["new_studies"] == 0 and again["ingested_exams"] == 0
    assert again["watermark"] == first["watermark"]
    rows = stack.query("SELECT count(*) AS n, count(DISTINCT exam_id) AS e FROM images")
    assert rows[0] == {"n": 4 * (TRAIN_EXAMS + NIGHT_EXAMS), "e": TRAIN_EXAMS + NIGHT_EXAMS}

    # An incomplete exam sent by a real DICOM client (dcmtk storescu) is quarantined with
    # the reason; nothing already stored is lost.
    bad = tmp_path_factory.mktemp("bad")
    stack.radflow("synth", "--exams", "1", "--date", "2026-10-07", "--site", "east", "--seed",
                  "13", "--out", str(bad), "--no-push")
    files = sorted(str(p) for p in bad.rglob("*.dcm") if "R-MLO" not in p.name)
    port = stack.env["RADFLOW_ORTHANC_DICOM_PORT"]
    subprocess.run(["storescu", "-aet", "RADFLOW", "-aec", "ORTHANC", "127.0.0.1", port, *files],
                   check=True, capture_output=True, timeout=60)
    stack.wait_stable()
    third = stack.radflow("ingest")
    assert third["new_studies"] == 1 and third["ingested_exams"] == 0
    [held] = third["quarantined"]
    assert "R-MLO missing" in held["reason"] and "L-CC" in held["reason"]
    assert stack.query("SELECT count(*) AS n FROM images")[0]["n"] == 4 * (TRAIN_EXAMS + NIGHT_EXAMS)
    assert stack.query("SELECT reason FROM quarantine WHERE stage = 'ingest'")[0]["reason"] == held["reason"]


def test_validate_passes_then_names_a_violation(stack: Stack) -> None:
    ok = stack.radflow("validate")
    assert ok["success"] is True and ok["rows"] == 4 * (TRAIN_EXAMS + NIGHT_EXAMS)
    stack.query("UPDATE images SET modality = 'CT' WHERE view = 'R-CC' AND exam_id IN "
                "(SELECT exam_id FROM images ORDER BY exam_id LIMIT 1) RETURNING exam_id")
    try:
        bad = stack.radflow("validate", ok=False)
        assert "expect_column_values_to_be_in_set on modality: 1 offending rows" in bad["error"]
    finally:
        stack.query("UPDATE images SET modality = 'MG' WHERE modality = 'CT' RETURNING exam_id")


def test_build_dataset_freezes_a_dvc_version(stack: Stack) -> None:
    out = stack.radflow("build-dataset")
    assert out["version"].endswith(".dir")
    again = stack.radflow("build-dataset")
    assert again["version"] == out["version"]  # same content, same DVC hash


def test_train_registers_a_challenger(stack: Stack) -> None:
    out = stack.radflow("train")
    assert out["alias"] == "challenger" and out["model_version"] == "1"
    assert 0.0 <= out["test_auc"] <= 1.0 and out["test_exams"] >= 3
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    mv = client.get_model_version_by_alias("mammo-screening", "challenger")
    run = client.get_run(mv.run_id)
    assert run.data.metrics["test_auc"] == pytest.approx(out["test_auc"], abs=1e-4)
    assert {"git_sha", "dataset_version", "data_contracts"} <= set(run.data.tags)
    assert run.data.tags["dataset_version"].endswith(".dir")
    first, last = (int(run.data.tags[f"ingest_watermark_{k}"]) for k in ("first", "last"))
    assert 0 < first <= last
    assert run.data.tags["base_model"] == "none (from scratch)"
    assert run.data.params["unfreeze_at"] and run.data.params["top_k"] == "0.05"
    assert {"test_auc_ci_low", "test_auc_ci_high", "test_ece", "test_specificity_at_sens90",
            "val_auc", "operating_point"} <= set(run.data.metrics)
    logged = {a.path for a in client.list_artifacts(mv.run_id, "evaluation/test")}
    assert {"evaluation/test/roc.png", "evaluation/test/reliability.png",
            "evaluation/test/heatmap_gallery.png"} <= logged
    assert {a.path for a in client.list_artifacts(mv.run_id, "weights")} == {
        "weights/view_classifier.pt"}
    evaluated = stack.radflow("evaluate")
    assert evaluated["dataset_version"] == run.data.tags["dataset_version"]
    assert len(mv.tags["onnx_sha256"]) == 64


def test_promote_is_approved_by_a_login_and_audited(stack: Stack) -> None:
    # the pipeline's own service login (the CLI's default) never approves; the refusal is audited
    refused = stack.radflow("promote", "--reason", "first model", ok=False)
    assert refused["type"] == "PromotionRefused" and "service login" in refused["error"]
    out = stack.radflow("promote", "--reason", "first model", login="admin")
    assert out["version"] == "1" and out["previous_version"] is None
    assert (out["approver"], out["approved_via"]) == ("admin", "mlflow")
    audit = stack.query("SELECT approver, approved_via, version, alias, outcome FROM promotions ORDER BY id")
    assert audit == [
        {"approver": "radflow-pipeline", "approved_via": "mlflow", "version": "1", "alias": "champion",
         "outcome": "refused"},
        {"approver": "admin", "approved_via": "mlflow", "version": "1", "alias": "champion",
         "outcome": "promoted"}]


def test_deploy_serves_the_champion_on_triton(stack: Stack) -> None:
    out = stack.radflow("deploy")
    assert out["ready"] is True and out["triton_version"] == 1
    import onnxruntime as ort
    import tritonclient.http as http

    folder = Path(out["repository"]) / "mammo_screening" / "1"
    x = np.linspace(0, 1, 3 * 128 * 96, dtype=np.float32).reshape(3, 1, 128, 96)
    expected = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"image": x})[0]
    client = http.InferenceServerClient(f"127.0.0.1:{stack.env['RADFLOW_TRITON_HTTP_PORT']}")
    inp = http.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    served = client.infer("mammo_screening", [inp]).as_numpy("probability")
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert not np.allclose(served, served[0])  # different inputs, different answers


def test_screen_scores_each_exam_of_the_day_once(stack: Stack) -> None:
    first = stack.radflow("screen", "--date", NIGHT_DATE)
    assert first["exams"] == NIGHT_EXAMS and first["views_scored"] == 4 * NIGHT_EXAMS
    again = stack.radflow("screen", "--date", NIGHT_DATE)
    assert again["exams"] == NIGHT_EXAMS
    rows = stack.query("SELECT exam_id, score FROM exam_results WHERE study_date = :d", d=NIGHT_DATE)
    assert len(rows) == NIGHT_EXAMS == len({r["exam_id"] for r in rows})
    page = Path(first["worklist"]).read_text()
    for row in rows:
        assert page.count(f'data-exam="{row["exam_id"]}"') == 1
    scores = [r["score"] for r in sorted(rows, key=lambda r: page.index(f'data-exam="{r["exam_id"]}"'))]
    assert scores == sorted(scores, reverse=True)


def test_pretrain_then_fine_tune_from_the_base_model_by_uri_or_file(stack: Stack) -> None:
    base = stack.radflow("pretrain", "--exams", "24", "--epochs", "2", "--site", "east")
    assert (base["model_name"], base["alias"]) == ("mammo-screening-base", "base")
    uri = "models:/mammo-screening-base@base"
    tuned = stack.radflow("train", "--base", uri, "--epochs", "2")
    assert tuned["base_model"] == uri and tuned["alias"] == "challenger"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    run = client.get_run(tuned["run_id"])
    assert run.data.tags["base_model"] == uri
    assert client.get_run(base["run_id"]).data.tags["pretrain_site"] == "east"
    # a weights file a hospital brings (here: the one the fine-tuned run saved)
    weights = stack.state / "training" / tuned["run_id"] / "view_classifier.pt"
    again = stack.radflow("train", "--base", str(weights), "--epochs", "1")
    assert again["base_model"] == str(weights)
    missing = stack.radflow("train", "--base", str(stack.state / "nope.pt"), ok=False)
    assert "no such file" in missing["error"]
    unknown = stack.radflow("train", "--base", "models:/mammo-screening-base@nope", ok=False)
    assert "not found in MLflow" in unknown["error"]


def test_no_phi_leaves_the_ingest_boundary(stack: Stack, phi: set[str]) -> None:
    """Names, MRNs, accession numbers and original UIDs appear nowhere downstream."""
    places = ["lake", "logs", "mlflow", "worklists", "triton_repo", "serving", "datasets",
              "dvc-remote"]
    assert any((stack.state / "lake").rglob("*.dcm.json")), "de-identified headers expected"
    blobs = scanned_files(stack.state, places)
    tables = ["images", "exam_results", "quarantine", "promotions", "ingest_state", "date_offsets"]
    blobs += [repr(stack.query(f"SELECT * FROM {t}")).encode() for t in tables]
    # what ingest, validate, train, promote, deploy and screen printed (synth's own output is
    # upstream of the boundary and excluded)
    blobs += [out.encode() for out in stack.outputs if '"truth_file"' not in out]
    leaks = leaked(phi, blobs)
    assert leaks == [], f"PHI found downstream: {leaks[:5]}"
    assert stack.query("SELECT count(*) AS n FROM pseudonyms")[0]["n"] > 0

