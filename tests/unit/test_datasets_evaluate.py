"""`radflow evaluate`: the challenger on the frozen test split, logged to a real MLflow
(SQLite tracking + registry in the temp state dir), tagged with the dataset version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines import frozen
from pipelines.config import reset_settings
from pipelines.datasets import run as build
from pipelines.datasets.run import DatasetResult
from pipelines.evaluation import run as evaluate
from pipelines.metrics.report import slug
from tests.unit.test_datasets_build import ingest


def test_frozen_load_gives_the_published_splits_with_their_files(isolated_settings: Path) -> None:
    ingest(12)
    built = build.run()
    dataset = frozen.load()
    assert dataset.version == built.version == frozen.published_version()
    assert dataset.contract == "mammo_dataset.v2"
    assert {k: v.exam_id.nunique() for k, v in dataset.splits.items()} == built.split_exams
    assert all(Path(p).is_file() for part in dataset.splits.values() for p in part.image_path)


def register(alias: str, operating_point: str | None) -> str:
    """A small ViewClassifier registered as training does (pt2 with a signature) under `alias`."""
    import torch

    import mlflow
    from pipelines.tracking import mlflow_client
    from pipelines.training.model import ViewClassifier
    from pipelines.training.run import signature

    client = mlflow_client()  # first: it points mlflow at this test's tracking database
    mlflow.set_experiment("register")  # not the experiment id an earlier test left active
    torch.manual_seed(0)
    model, example = ViewClassifier(width=4).eval(), np.zeros((2, 1, 32, 24), np.float32)
    with mlflow.start_run():
        # a batch of 2 so the batch dim stays dynamic
        info = mlflow.pytorch.log_model(
            model, name="model", registered_model_name="mammo-screening", input_example=example,
            signature=signature(model, example),
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    version = str(info.registered_model_version)
    client.set_registered_model_alias("mammo-screening", alias, version)
    if operating_point is not None:
        client.set_model_version_tag("mammo-screening", version, "operating_point", operating_point)
    return version


@pytest.fixture
def built(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> DatasetResult:
    """MLflow on SQLite in the temp state dir, and a published 12-exam dataset (its build)."""
    from pipelines.tracking import quiet_mlflow

    quiet_mlflow()
    monkeypatch.setenv("RADFLOW_MLFLOW_TRACKING_URI", f"sqlite:///{isolated_settings}/mlflow.db")
    isolated_settings.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(isolated_settings)  # MLflow on SQLite puts artifacts in ./mlruns
    reset_settings()
    ingest(12)
    return build.run()


def test_evaluate_logs_the_challenger_on_the_test_split_with_the_dataset_version(
    built: DatasetResult
) -> None:
    from pipelines.tracking import mlflow_client

    version = register("challenger", operating_point="0.5")

    out = evaluate.run(alias="challenger", split="test")
    assert (out.model_version, out.dataset_version, out.exams) == (version, built.version,
                                                                   built.split_exams["test"])
    assert (out.operating_point, out.operating_point_source) == (0.5, "model_version_tag")
    client = mlflow_client()
    run = client.get_run(out.run_id)
    assert run.data.tags["dataset_version"] == built.version and run.data.tags["stage"] == "evaluate"
    m = run.data.metrics
    assert m["test_exams"] == built.split_exams["test"] == out.exams
    assert m["test_positive_exams"] == built.split_positive_exams["test"] == out.positive_exams
    assert 0.0 <= m["test_sensitivity"] <= 1.0 and m["test_operating_point"] == 0.5
    assert m["test_auc_ci_low"] <= m["test_auc"] <= m["test_auc_ci_high"]
    assert 0.0 <= m["test_ece"] <= 1.0 and 0.0 <= m["test_specificity_at_sens90"] <= 1.0
    assert (out.auc, out.ece) == (round(m["test_auc"], 4), round(m["test_ece"], 4))
    # every manufacturer of the split has its exam count; too few exams for an AUC each
    report = json.loads((Path(out.report_dir) / "evaluation.json").read_text())
    groups = report["subgroups"]["manufacturer"]
    assert sum(g["exams"] for g in groups) == out.exams
    for group in groups:
        assert m[f"test_exams_manufacturer_{slug(group['group'])}"] == group["exams"]
        assert group["auc"] is None and group["reason"]
    # ViewClassifier returns heatmaps: the gallery is drawn
    assert report["gallery_skipped"] is None
    logged = {Path(a.path).name for a in client.list_artifacts(out.run_id, "evaluation/test")}
    assert logged == {"evaluation.json", "roc.png", "reliability.png", "heatmap_gallery.png"}
    tags = client.get_model_version("mammo-screening", version).tags
    assert tags["eval_dataset_version"] == built.version
    assert tags["eval_test_auc"] == f"{m['test_auc']:.4f}"
    assert tags["eval_test_auc_ci_low"] == f"{m['test_auc_ci_low']:.4f}"
    assert {"eval_test_sensitivity", "eval_test_specificity", "eval_test_ece",
            "eval_test_specificity_at_sens90"} <= set(tags)


@pytest.mark.usefixtures("built")
def test_evaluate_chooses_the_operating_point_on_validation_when_the_version_has_none() -> None:
    import mlflow
    from pipelines.params import load_params
    from pipelines.scoring import exam_table

    register("candidate", operating_point=None)
    out = evaluate.run(alias="candidate", split="test")
    assert out.operating_point_source == "validation"
    # the highest threshold at which the validation exams reach the target sensitivity
    model = mlflow.pytorch.load_model("models:/mammo-screening@candidate", map_location="cpu")
    rows, images, _ = evaluate.load_split("mammo", "val")
    exams = exam_table(rows, evaluate.view_scores(model, images))
    positives, target = exams.score[exams.label == 1], load_params().target_sensitivity
    assert (positives >= out.operating_point).mean() >= target > (positives > out.operating_point).mean()
