"""`radflow train`: fit the CNN on the lake, evaluate by exam on held-out patients,
log the run and the model to MLflow and register it as `challenger`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.config import get_settings
from pipelines.datasets import frozen
from pipelines.domain import TrainResult
from pipelines.errors import NoTrainingData
from pipelines.registry import lineage
from pipelines.registry.client import mlflow_client
from pipelines.serving.onnx_export import ONNX_ARTIFACT_DIR
from pipelines.training import data, fit
from pipelines.training.params import load_params

log = logging.getLogger(__name__)
CHALLENGER = "challenger"


def _export_onnx(model: Any, example: np.ndarray, run_id: str) -> tuple[Path, str]:
    """The serving file, exported and parity-checked before the model is registered."""
    from pipelines.serving.onnx_export import export, sha256

    folder = get_settings().state / "training" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    diff = export(model, example, path)
    log.info("train: ONNX export parity max abs diff %.2e", diff)
    return path, sha256(path)


def run(epochs: int | None = None, seed: int | None = None) -> TrainResult:
    """Train, evaluate and register; returns the new registered version."""
    import torch

    import mlflow

    s = get_settings()
    params = load_params(epochs=epochs or s.train_epochs, seed=seed)
    dataset = frozen.load("mammo")  # the published DVC version: exactly the data trained on
    parts = {k: v[v.label.notna()] for k, v in dataset.splits.items()}
    if any(p.empty for p in parts.values()):
        raise NoTrainingData(f"dataset version {dataset.version} has an empty split: "
                             "ingest more labelled exams and rebuild it")
    splits = {k: data.to_split(v) for k, v in parts.items()}
    client = mlflow_client()
    mlflow.set_experiment(s.mlflow_experiment)
    with mlflow.start_run(run_name=f"train-{time.strftime('%Y%m%d-%H%M%S')}") as active:
        mlflow.set_tags({
            "git_sha": lineage.git_sha(), "dataset_version": dataset.version,
            "dataset_hash": dataset.version, "dataset_contract": dataset.contract,
            "data_contracts": lineage.contract_versions(), "stage": "train",
        })
        mlflow.log_params({**params.model_dump(), "image_height": s.image_height,
                           "image_width": s.image_width,
                           "views": sum(len(p) for p in parts.values())})
        model, history = fit.fit(splits["train"], splits["val"], params)
        for step, row in enumerate(history):
            mlflow.log_metrics(row, step=step)
        val_auc = fit.exam_auc(model, splits["val"])
        test_auc = fit.exam_auc(model, splits["test"])
        threshold = fit.operating_point(model, splits["val"], params.target_sensitivity)
        mlflow.log_metrics({"val_auc": val_auc, "test_auc": test_auc, "operating_point": threshold,
                            **{f"{k}_exams": v.exams for k, v in splits.items()}})
        example = splits["test"].images[:2]
        onnx_file, onnx_sha = _export_onnx(model, example, active.info.run_id)
        mlflow.log_artifact(str(onnx_file), artifact_path=ONNX_ARTIFACT_DIR)
        info = mlflow.pytorch.log_model(
            model, name="model", registered_model_name=s.registered_model,
            input_example=example, pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
        version = str(info.registered_model_version)
        client.set_model_version_tag(s.registered_model, version, "operating_point", f"{threshold:.6f}")
        client.set_model_version_tag(s.registered_model, version, "test_auc", f"{test_auc:.4f}")
        client.set_model_version_tag(s.registered_model, version, "onnx_sha256", onnx_sha)
        client.set_model_version_tag(s.registered_model, version, "input_shape",
                                     f"1,{s.image_height},{s.image_width}")
        client.set_registered_model_alias(s.registered_model, CHALLENGER, version)
    log.info("train: registered %s version %s as %s (test AUC %.3f)", s.registered_model,
             version, CHALLENGER, test_auc)
    return TrainResult(
        run_id=active.info.run_id, model_name=s.registered_model, model_version=version,
        alias=CHALLENGER, test_auc=round(test_auc, 4), val_auc=round(val_auc, 4),
        operating_point=round(threshold, 6), train_exams=splits["train"].exams,
        val_exams=splits["val"].exams, test_exams=splits["test"].exams, epochs=len(history),
    )



