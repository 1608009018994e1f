"""The chest X-ray task through the whole loop, on the real Orthanc, MLflow, Triton and
PostgreSQL, by configuration only (pipelines/tasks.yaml `cxr-nodule` and its data contracts):
synth-chest -> ingest (routed by modality, labelled from the report's findings) -> validate
-> build-dataset -> train -> evaluate -> promote -> deploy -> screen -> monitor.

Every command is the one the mammography loop runs, with `--task cxr-nodule`. The tests run
in file order and build on each other.
"""

from __future__ import annotations

import pytest

from tests.integration.stack import Stack

TASK = "cxr-nodule"
TRAIN_DATE, NIGHT_DATE = "2026-09-01", "2026-09-02"
# 180: with one view per exam, fewer leave validation splits of a dozen exams, too few to
# choose an epoch on; 20: the fewest exams a night is judged on (drift_min_exams)
TRAIN_EXAMS, NIGHT_EXAMS = 180, 20


@pytest.fixture(scope="module")
def pushed(stack: Stack) -> dict[str, dict]:
    out = {"train": stack.radflow("synth-chest", "--exams", str(TRAIN_EXAMS), "--date", TRAIN_DATE,
                                  "--seed", "21", "--size", "256"),
           "night": stack.radflow("synth-chest", "--exams", str(NIGHT_EXAMS), "--date", NIGHT_DATE,
                                  "--seed", "22", "--size", "256")}
    stack.wait_stable()
    return out


def test_ingest_routes_chest_studies_to_their_task_and_labels_them_from_the_report(
        stack: Stack, pushed: dict[str, dict]) -> None:
    out = stack.radflow("ingest")
    assert out["ingested_exams"] == TRAIN_EXAMS + NIGHT_EXAMS and out["quarantined"] == []
    rows = stack.query("SELECT modality, view, laterality, view_position, label, label_source, birads "
                       "FROM images")
    assert len(rows) == TRAIN_EXAMS + NIGHT_EXAMS  # one PA view each, the report is no view
    assert {(r["modality"], r["view"], r["laterality"], r["view_position"]) for r in rows} == {
        ("DX", "PA", "U", "PA")}
    assert {(r["label_source"], r["birads"]) for r in rows} == {("report-findings", None)}
    # the reports' findings, negations and "rule out" requests included, give the synth truth
    positives = pushed["train"]["positives"] + pushed["night"]["positives"]
    assert sum(r["label"] for r in rows) == positives and 0 < positives < len(rows)


def test_the_tasks_contracts_guard_its_manifest_and_dataset(stack: Stack) -> None:
    checked = stack.radflow("validate", "--task", TASK)
    assert (checked["suite"], checked["success"]) == ("cxr_manifest.v1", True)
    # the mammography contract is not the chest rows' contract: it is refused on them
    wrong = stack.radflow("validate", "--task", TASK, "--suite", "mammo_manifest", ok=False)
    assert wrong["type"] == "DataContractViolation" and "modality" in wrong["error"]
    built = stack.radflow("build-dataset", "--task", TASK)
    assert (built["name"], built["contract"]) == (TASK, "cxr_dataset.v1")
    assert built["exams"] == built["views"] == TRAIN_EXAMS + NIGHT_EXAMS
    assert all(built["split_positive_exams"][s] >= 1 for s in ("train", "val", "test"))
    frozen = stack.radflow("validate", "--task", TASK, "--suite", "cxr_dataset")
    assert frozen["success"] is True


def test_train_evaluate_and_promote_the_tasks_model(stack: Stack) -> None:
    # the task's own training keys (params.yaml task_train.cxr-nodule: learning rate,
    # patience) apply; --epochs beats the test stack's short RADFLOW_TRAIN_EPOCHS
    trained = stack.radflow("train", "--task", TASK, "--epochs", "40")
    assert (trained["model_name"], trained["model_version"], trained["alias"]) == (TASK, "1", "challenger")
    assert trained["test_auc"] > 0.8, trained  # a nodule is a bright blob: learnable
    evaluated = stack.radflow("evaluate", "--task", TASK)
    assert evaluated["dataset_version"] == stack.radflow("build-dataset", "--task", TASK)["version"]
    promoted = stack.radflow("promote", "--task", TASK, "--reason", "first chest champion", login="admin")
    assert (promoted["version"], promoted["approver"]) == ("1", "admin")
    audit = stack.query("SELECT model_name, version, outcome FROM promotions")
    assert audit == [{"model_name": TASK, "version": "1", "outcome": "promoted"}]


def test_deploy_screen_and_monitor_the_tasks_night(stack: Stack, pushed: dict[str, dict]) -> None:
    deployed = stack.radflow("deploy", "--task", TASK)
    assert (deployed["triton_model"], deployed["ready"]) == ("cxr_nodule", True)
    night = stack.radflow("screen", "--task", TASK, "--date", NIGHT_DATE)
    assert (night["task"], night["exams"], night["views_scored"]) == (TASK, NIGHT_EXAMS, NIGHT_EXAMS)
    scored = stack.query("SELECT r.score, i.label FROM exam_results r JOIN images i USING (exam_id) "
                         "WHERE r.task = :t", t=TASK)
    assert len(scored) == NIGHT_EXAMS
    positive = [r["score"] for r in scored if r["label"] == 1]
    negative = [r["score"] for r in scored if r["label"] == 0]
    assert len(positive) == pushed["night"]["positives"] and positive and negative
    assert sum(positive) / len(positive) > sum(negative) / len(negative)  # the model ranks the night
    assert (stack.state / "worklists" / TASK / NIGHT_DATE / "index.html").exists()
    monitored = stack.radflow("monitor", "--task", TASK, "--date", NIGHT_DATE)
    assert (monitored["task"], monitored["exams"], monitored["model_version"]) == (TASK, NIGHT_EXAMS, "1")
    assert monitored["judged"] and monitored["tests"] > 0, monitored  # compared with the reference
