"""Every stage through the CLI against a real Orthanc, MLflow, Triton and PostgreSQL.

The tests run in file order and build on each other, as a hospital's first night would:
synth -> ingest (twice) -> quarantine -> validate -> train -> promote -> deploy -> screen.
"""

from __future__ import annotations

import csv
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.integration.stack import RADFLOW, Stack, leaked, scanned_files
from tests.reliability.figures import record

TRAIN_DATE, NIGHT_DATE = "2026-10-05", "2026-10-06"
TRAIN_EXAMS, NIGHT_EXAMS = 40, 12
SYNTH_OUT: dict[str, Path] = {}  # where test_synth wrote the DICOM files it pushed


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
    SYNTH_OUT["night"] = out / "night"


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
    # no base registered yet: from scratch, and the lineage says so
    assert (run.data.tags["base_model"], run.data.tags["training_start"]) == ("none (from scratch)",
                                                                            "from scratch")
    assert run.data.tags["model_profile"] == "demo" and run.data.tags["architecture"] == "view-classifier"
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


def test_follow_up_reports_keyed_by_accession_number_become_the_nights_outcomes(
        stack: Stack, tmp_path: Path) -> None:
    """A RIS export of later reports, keyed by the hospital's accession numbers, resolved
    through the gateway Orthanc to the screened exams; realised performance per version."""
    accessions = sorted({str(pydicom.dcmread(p, stop_before_pixels=True).AccessionNumber)
                         for p in SYNTH_OUT["night"].rglob("*.dcm")})
    assert len(accessions) == NIGHT_EXAMS
    export = tmp_path / "ris-follow-up.csv"
    with export.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["accession_number", "report_text", "report_date"])
        for i, accession in enumerate(accessions):  # every third exam: a cancer found later
            text = ("Left breast: biopsy-proven malignancy, BI-RADS 6. Right breast: negative."
                    if i % 3 == 0 else "Both breasts negative. BI-RADS 1.")
            writer.writerow([accession, text, "2027-04-06"])
        writer.writerow(["NOT-SCREENED-1", "BI-RADS 1", "2027-04-06"])
    imported = stack.radflow("labels", "import", "--ris", str(export))
    assert imported["outcomes"] == 2 * NIGHT_EXAMS
    # the unscreened accession, on line NIGHT_EXAMS + 2 of the file (line 1 is the header)
    assert [(r["row"], r["column"]) for r in imported["rejected"]] == [(NIGHT_EXAMS + 2, "accession_number")]
    again = stack.radflow("labels", "import", "--ris", str(export))
    assert again["inserted"] == 0
    assert stack.query("SELECT count(*) AS n FROM outcomes")[0]["n"] == 2 * NIGHT_EXAMS
    realised = stack.radflow("outcomes")
    [total] = [r for r in realised["rows"] if r["month"] == "all"]
    assert (total["model_version"], total["exams_screened"], total["exams_with_outcome"]) == (
        "1", NIGHT_EXAMS, NIGHT_EXAMS)
    assert (total["positives"], total["without_outcome_share"]) == (4, 0.0)
    assert total["sensitivity"]["ci_low"] <= total["sensitivity"]["value"] <= total["sensitivity"]["ci_high"]
    stored = repr(stack.query("SELECT * FROM outcomes"))
    assert not any(a in stored for a in accessions)  # resolved to pseudonyms, never stored


def test_pretrain_then_fine_tune_from_the_base_model_by_uri_or_file(stack: Stack) -> None:
    base = stack.radflow("pretrain", "--exams", "24", "--epochs", "2", "--site", "east")
    assert (base["model_name"], base["alias"]) == ("mammo-screening-base", "base")
    uri, pinned = "models:/mammo-screening-base@base", f"models:/mammo-screening-base/{base['model_version']}"
    tuned = stack.radflow("train", "--base", uri, "--epochs", "2")
    assert tuned["base_model"] == pinned and tuned["alias"] == "challenger"  # the alias, pinned
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    run = client.get_run(tuned["run_id"])
    assert (run.data.tags["base_model"], run.data.tags["base_requested"]) == (pinned, uri)
    assert run.data.tags["training_start"] == "fine-tuned"
    assert client.get_run(base["run_id"]).data.tags["pretrain_site"] == "east"
    # a weights file a hospital brings (here: the one the fine-tuned run saved)
    weights = stack.state / "training" / tuned["run_id"] / "view_classifier.pt"
    again = stack.radflow("train", "--base", str(weights), "--epochs", "1")
    assert again["base_model"].startswith("file view_classifier.pt sha256 ")
    # the file's base as is was logged in the run, for evaluation and promotion to score
    logged = client.get_model_version("mammo-screening", again["model_version"]).tags["base_model_uri"]
    assert logged.startswith("models:/m-")
    missing = subprocess.run([RADFLOW, "train", "--base", str(stack.state / "nope.pt"), "--json"],
                             env=stack.env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2, missing.stderr  # refused by argparse, before any work
    assert "argument --base: no such file" in missing.stderr
    unknown = stack.radflow("train", "--base", "models:/mammo-screening-base@nope", ok=False)
    assert "not found in MLflow" in unknown["error"]


def test_the_retraining_dag_fine_tunes_the_registered_base_and_promotion_compares_three_ways(
        stack: Stack, tmp_path: Path) -> None:
    """`retrain_mammo_model` run by Airflow (`airflow dags test`) with a base registered (by the
    test above): the version fine-tunes it, and its promotion report shows the base as is, the
    fine-tuned challenger and the champion on the same test split."""
    import json
    import sys

    from mlflow.tracking import MlflowClient

    from tests.integration.stack import policy_with_approvers

    client = MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    base = client.get_model_version_by_alias("mammo-screening-base", "base")
    code = ("import json, sys; from pipelines.orchestration import runner; "
            "print(json.dumps(runner.dags_test('retrain_mammo_model', sys.argv[1])))")
    before = client.get_model_version_by_alias("mammo-screening", "challenger")
    footprints, seconds = [], []
    for _ in range(2):  # the same morning again: Airflow replaces the run; it must add nothing
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", code, "2026-10-11T03:00:00+00:00"], capture_output=True,
                              text=True, env={**stack.env, "RADFLOW_TRAIN_EPOCHS": "1"}, timeout=1500)
        assert proc.returncode == 0, proc.stderr[-3000:]
        seconds.append(time.monotonic() - started)
        footprints.append(_footprint(stack, client))
    trained = [client.get_model_version_by_alias("mammo-screening", "challenger")]
    assert trained[0].version != before.version
    assert trained[0].tags["airflow_run"] == "retrain_mammo_model/2026-10-11T03:00:00+00:00"
    added = {k: footprints[1][k] - footprints[0][k] for k in ("rows", "versions", "runs")}
    record(1, "rerun_retraining_same_morning", {
        "reruns": 1, "new_result_rows": added["rows"], "new_model_versions": added["versions"],
        "new_training_runs": added["runs"], "rerun_s": round(seconds[1]), "first_run_s": round(seconds[0])},
        seconds=seconds[1], note="`retrain_mammo_model` run again by `airflow dags test` for the same "
        "logical date (Airflow replaces the run): ingest, validation, the dataset and the training "
        "found their work done")
    assert added == {"rows": 0, "versions": 0, "runs": 0}, (added, footprints)
    for version in trained:
        assert version.tags["base_model"] == f"models:/mammo-screening-base/{base.version}"
        assert version.tags["base_requested"] == "models:/mammo-screening-base@base"
        assert version.tags["training_start"] == "fine-tuned"
        # evaluate_challenger scored the base as is and the champion on the same split
        assert float(version.tags["eval_test_auc_base"]) >= 0 and version.tags["eval_test_auc_champion"]
    import mlflow

    mlflow.set_tracking_uri(client.tracking_uri)
    experiment = client.get_run(trained[0].run_id).info.experiment_id
    evaluations = client.search_runs(  # one per run of the DAG: it evaluated again, trained nothing
        [experiment], f"tags.stage = 'evaluate' and tags.model_version = '{trained[0].version}'",
        order_by=["attributes.start_time DESC"])
    assert len(evaluations) == 2
    evaluation = evaluations[0]
    compared = mlflow.artifacts.load_dict(f"runs:/{evaluation.info.run_id}/comparison/test.json")
    assert [m["role"] for m in compared["models"]] == ["base as is", "challenger (fine-tuned)", "champion"]

    strict = policy_with_approvers(tmp_path / "policy", [], floor=True)
    # passed or refused, the gate ran and its report was logged (a few dozen exams decide little)
    out = stack.radflow("promote", "--reason", "fine-tuned on our exams", ok=None,
                        env={**stack.login_env("admin"), "RADFLOW_REGISTRY_POLICY_FILE": str(strict)})
    [row] = stack.query("SELECT version, report_run_id, gates FROM promotions ORDER BY id DESC LIMIT 1")
    assert row["version"] == str(trained[0].version), out
    assert "not_worse_than_base" in {c["name"] for c in json.loads(row["gates"])["checks"]}
    report = mlflow.artifacts.load_dict(f"runs:/{row['report_run_id']}/promotion_report.json")
    rows = {r["role"]: r for r in report["comparison"]}
    assert list(rows) == ["base as is", "challenger (fine-tuned)", "champion"]
    assert rows["base as is"]["model"] == f"models:/mammo-screening-base/{base.version}"
    assert rows["champion"]["model"] == "mammo-screening version 1"
    assert len({r["exams"] for r in rows.values()}) == 1 and rows["champion"]["exams"] >= 3
    page = mlflow.artifacts.load_text(f"runs:/{row['report_run_id']}/promotion_report.html")
    assert "Base as is, challenger and champion on the same test split" in page


def _footprint(stack: Stack, client: object) -> dict[str, int]:
    """Rows of every results table, registered versions and training runs in MLflow."""
    names = [r["table_name"] for r in stack.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'")]
    rows = sum(stack.query(f'SELECT count(*) AS n FROM "{n}"')[0]["n"] for n in names)
    versions = client.search_model_versions("name = 'mammo-screening'")  # type: ignore[attr-defined]
    experiments = [e.experiment_id for e in client.search_experiments()]  # type: ignore[attr-defined]
    runs = client.search_runs(experiments, "tags.stage = 'train'", max_results=1000)  # type: ignore[attr-defined]
    return {"rows": rows, "versions": len(versions), "runs": len(runs)}


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

