"""`radflow evaluate`: the challenger on the frozen test split, logged to a real MLflow
(SQLite tracking + registry in the temp state dir), tagged with the dataset version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import reset_settings
from pipelines.datasets import build, evaluate, frozen
from tests.unit.test_datasets_build import ingest


def test_exam_metrics_score_an_exam_by_its_most_suspicious_view() -> None:
    rows = pd.DataFrame({"exam_id": ["a", "a", "b", "b", "c", "c"], "label": [0, 1, 0, 0, 0, 0]})
    scores = np.array([0.1, 0.9, 0.2, 0.6, 0.3, 0.1])
    out = evaluate.exam_metrics(scores, rows, threshold=0.5)
    assert out == {"auc": 1.0, "exams": 3.0, "sensitivity": 1.0, "specificity": 0.5}


def test_frozen_load_gives_the_published_splits_with_their_files(isolated_settings: Path) -> None:
    ingest(12)
    built = build.run()
    dataset = frozen.load()
    assert dataset.version == built.version == frozen.published_version()
    assert dataset.contract == "mammo_dataset.v1"
    assert {k: v.exam_id.nunique() for k, v in dataset.splits.items()} == built.split_exams
    assert all(Path(p).is_file() for part in dataset.splits.values() for p in part.image_path)


def test_evaluate_logs_the_challenger_on_the_test_split_with_the_dataset_version(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import mlflow
    from pipelines.registry.client import mlflow_client, quiet_mlflow
    from pipelines.training.model import ViewClassifier

    quiet_mlflow()
    monkeypatch.setenv("RADFLOW_MLFLOW_TRACKING_URI", f"sqlite:///{isolated_settings}/mlflow.db")
    isolated_settings.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(isolated_settings)  # MLflow on SQLite puts artifacts in ./mlruns
    reset_settings()
    ingest(12)
    built = build.run()
    client = mlflow_client()
    torch.manual_seed(0)
    with mlflow.start_run():
        # as training logs it: an eval-mode model, a batch of 2 so the batch dim stays dynamic
        info = mlflow.pytorch.log_model(
            ViewClassifier(width=4).eval(), name="model", registered_model_name="mammo-screening",
            input_example=np.zeros((2, 1, 32, 24), np.float32),
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    version = str(info.registered_model_version)
    client.set_registered_model_alias("mammo-screening", "challenger", version)
    client.set_model_version_tag("mammo-screening", version, "operating_point", "0.5")

    out = evaluate.run(alias="challenger", split="test")
    assert (out.model_version, out.dataset_version, out.exams) == (version, built.version,
                                                                   built.split_exams["test"])
    run = client.get_run(out.run_id)
    assert run.data.tags["dataset_version"] == built.version and run.data.tags["stage"] == "evaluate"
    assert run.data.metrics["test_exams"] == built.split_exams["test"]
    assert 0.0 <= run.data.metrics["test_sensitivity"] <= 1.0
    tags = client.get_model_version("mammo-screening", version).tags
    assert tags["eval_dataset_version"] == built.version and "eval_test_auc" in tags
