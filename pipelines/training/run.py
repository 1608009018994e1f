"""`radflow train`: fit the view classifier on the frozen dataset, from scratch or
fine-tuning a base model, evaluate it by exam on held-out patients, log the run with its
lineage to MLflow and register it as `challenger`.

The version's monitoring reference is monitoring's to build (pipelines/monitoring/reference.py),
called after this by the retraining DAG and by `radflow train`.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipelines import db, frozen, tracking
from pipelines.config import get_settings
from pipelines.domain import TrainResult
from pipelines.errors import NoTrainingData
from pipelines.modelfiles.onnx import INPUT, ONNX_ARTIFACT_DIR, OUTPUTS
from pipelines.params import TrainParams, load_params
from pipelines.scoring import SUSPICION_TAG, Aggregation, suspicion_cuts
from pipelines.tasks import get_task
from pipelines.tracking import mlflow_client
from pipelines.training import base as base_choice
from pipelines.training import data, fit, profiles, weights

log = logging.getLogger(__name__)
CHALLENGER = "challenger"
# The version tag naming the Airflow run that registered it ("<dag_id>/<run_id>"): a cleared
# or retried run finds its version there instead of training and registering another.
RUN_KEY_TAG = "airflow_run"
_RUN_KEY = re.compile(r"[A-Za-z0-9_.~:+\-]+/[A-Za-z0-9_.~:+\-]+")


def _export_onnx(model: Any, example: np.ndarray, folder: Path) -> tuple[Path, str]:
    """The serving file, exported and parity-checked before the model is registered."""
    from pipelines.modelfiles.onnx import export, sha256

    path = folder / "model.onnx"
    diff = export(model, example, path)
    log.info("train: ONNX export parity max abs diff %.2e", diff)
    return path, sha256(path)


def signature(model: Any, example: np.ndarray) -> Any:
    """The MLflow signature: image in, probability and heatmap out (batch dimension free)."""
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    with torch.no_grad():
        prob, heatmap = model(torch.from_numpy(example))
    free = lambda shape: (-1, *shape[1:])  # noqa: E731
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), free(example.shape), INPUT)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), free(tuple(prob.shape)), OUTPUTS[0]),
                        TensorSpec(np.dtype(np.float32), free(tuple(heatmap.shape)), OUTPUTS[1])]))


def _log_base_as_is(start: base_choice.BaseChoice, example: np.ndarray) -> str | None:
    """A base from a file, logged unchanged in the active run (before fine-tuning changes it)
    so that evaluation and promotion can score it as is; returns its model URI."""
    if start.model is None:
        return None
    import torch

    import mlflow

    model = copy.deepcopy(start.model).eval()
    info = mlflow.pytorch.log_model(model, name="base_model", input_example=example,
                                    signature=signature(model, example),
                                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    return str(info.model_uri)


def watermark_range(exam_ids: list[str]) -> tuple[int, int]:
    """The ingest change sequences the dataset's exams came in with (first, last)."""
    with db.get_engine().connect() as conn:
        low, high = conn.execute(
            sa.select(sa.func.min(db.images.c.ingest_seq), sa.func.max(db.images.c.ingest_seq))
            .where(db.images.c.exam_id.in_(exam_ids))).one()
    return int(low or 0), int(high or 0)


def register(model: Any, params: TrainParams, splits: dict[str, data.Split],
             rows: dict[str, pd.DataFrame], history: list[dict[str, float]], *,
             registered_model: str, alias: str, tags: dict[str, str],
             aggregation: Aggregation = "breast_mean_exam_max") -> tuple[str, dict[str, float]]:
    """Inside an active MLflow run: log params, history, the test evaluation, the weights
    file, the ONNX file and the model; register it under `alias`. Returns (version, metrics)."""
    import torch

    import mlflow
    from pipelines.metrics import log_evaluation

    s = get_settings()
    client = mlflow_client()
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    mlflow.set_tags({"git_sha": tracking.git_sha(), "data_contracts": tracking.contract_versions(),
                     **tags})
    height, width = splits["train"].images.shape[2:]  # the dataset's model inputs
    mlflow.log_params({**params.model_dump(), "image_height": height, "image_width": width,
                       "views": sum(len(p) for p in rows.values())})
    for step, row in enumerate(history):
        mlflow.log_metrics(row, step=step)
    val_auc = fit.exam_auc(model, splits["val"], aggregation)
    threshold = fit.operating_point(model, splits["val"], params.target_sensitivity, aggregation)
    cuts = suspicion_cuts(fit.exam_scores(model, splits["val"], aggregation)[0])
    test = splits["test"]
    metrics = log_evaluation(model, rows["test"], test.images, threshold, split="test",
                             aggregation=aggregation)
    mlflow.log_metrics({"val_auc": val_auc, "operating_point": threshold,
                        **{f"{k}_exams": v.exams for k, v in splits.items()}})
    folder = s.state / "training" / run_id
    mlflow.log_artifact(str(weights.save(model, folder / "view_classifier.pt")),
                        artifact_path=str(Path(weights.WEIGHTS_ARTIFACT).parent))
    example = test.images[:2]
    onnx_file, onnx_sha = _export_onnx(model, example, folder)
    mlflow.log_artifact(str(onnx_file), artifact_path=ONNX_ARTIFACT_DIR)
    info = mlflow.pytorch.log_model(
        model, name="model", input_example=example, signature=signature(model, example),
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    version_tags = {"operating_point": f"{threshold:.6f}", "test_auc": f"{metrics['test_auc']:.4f}",
                    "onnx_sha256": onnx_sha, SUSPICION_TAG: json.dumps(cuts),
                    "input_shape": f"1,{height},{width}",
                    **tags}
    # The version is created with its tags in one call (one transaction of the registry): a
    # run killed at any moment never leaves a version without the hash deploy checks its file
    # against (issue 18: tagged one by one afterwards, a kill -9 between left such versions).
    version = str(mlflow.register_model(info.model_uri, registered_model, tags=version_tags).version)
    client.set_registered_model_alias(registered_model, alias, version)
    return version, {"val_auc": val_auc, "operating_point": threshold, **metrics}


def registered_by(run_key: str, registered_model: str, dataset_version: str) -> TrainResult | None:
    """The result of the version the Airflow run `run_key` already registered completely (its
    serving file's hash tagged) on this dataset version, read back from MLflow; None if it
    registered none (or trained on another dataset: new data came in since, train again)."""
    client = mlflow_client()
    found = [mv for mv in client.search_model_versions(
        f"name = '{registered_model}' and tags.{RUN_KEY_TAG} = '{run_key}'")
        if "onnx_sha256" in mv.tags and mv.tags.get("dataset_version") == dataset_version]
    if not found:
        return None
    mv = max(found, key=lambda v: int(v.version))
    metrics = client.get_run(str(mv.run_id)).data.metrics
    return TrainResult(
        run_id=str(mv.run_id), model_name=registered_model, model_version=str(mv.version),
        alias=CHALLENGER, test_auc=round(metrics["test_auc"], 4), val_auc=round(metrics["val_auc"], 4),
        operating_point=round(metrics["operating_point"], 6), train_exams=int(metrics["train_exams"]),
        val_exams=int(metrics["val_exams"]), test_exams=int(metrics["test_exams"]),
        epochs=int(metrics.get("epochs_trained", 0)),
        base_model=mv.tags.get("base_model", "") if mv.tags.get("training_start") == "fine-tuned" else "",
        test_auc_ci=(round(metrics.get("test_auc_ci_low", 0.0), 4),
                     round(metrics.get("test_auc_ci_high", 0.0), 4)))


@tracking.reaching_mlflow("training")
def run(epochs: int | None = None, seed: int | None = None, base: str | None = None,
        task: str = "mammo", patience: int | None = None, run_key: str | None = None) -> TrainResult:
    """Fine-tune a base model (or train from scratch) on the dataset of `task`
    (pipelines/tasks.yaml), evaluate and register it under the task's registered model;
    returns the new registered version. `epochs`, `seed` and `patience` override
    params.yaml's `train` section.

    Args:
        base: None: the task's registered base (`models:/<model>-base@base`) when one
            exists, else from scratch; `scratch`; an MLflow model URI; a weights file.
            The version's tags `base_model` (pinned), `base_model_uri` and `training_start`
            record which (pipelines/training/base.py).
        run_key: the Airflow run training for ("<dag_id>/<logical date or run id>"), tagged on
            the version: when that run already registered one on the published dataset (the
            run was cleared, or the task retried after registering), its result is returned
            and nothing is trained or registered.
    """
    import mlflow

    s = get_settings()
    definition = get_task(task)
    if run_key is not None and not _RUN_KEY.fullmatch(run_key):
        raise ValueError(f"train: run_key must be '<dag_id>/<run>' (letters, digits, _.~:+-), "
                         f"got {run_key!r}")
    params = load_params(task=task, epochs=epochs or s.train_epochs, seed=seed, patience=patience)
    start = base_choice.choose(base, definition.registered_model)
    dataset = frozen.load(definition.dataset)  # the published DVC version: exactly the data trained on
    done = registered_by(run_key, definition.registered_model, dataset.version) if run_key else None
    if done is not None:
        log.info("train: run %s already registered %s version %s on dataset %s; nothing trained again",
                 run_key, definition.registered_model, done.model_version, dataset.version[:12])
        return done
    rows = {k: v[v.label.notna()].reset_index(drop=True) for k, v in dataset.splits.items()}
    if any(p.empty for p in rows.values()):
        raise NoTrainingData(f"dataset version {dataset.version} has an empty split: "
                             "ingest more labelled exams and rebuild it")
    splits = {k: data.to_split(v) for k, v in rows.items()}
    first, last = watermark_range(sorted({e for p in rows.values() for e in p.exam_id}))
    mlflow_client()
    mlflow.set_experiment(s.mlflow_experiment)
    with mlflow.start_run(run_name=f"train-{time.strftime('%Y%m%d-%H%M%S')}") as active:
        base_uri = start.uri or _log_base_as_is(start, splits["test"].images[:2])
        model, history = fit.fit(splits["train"], splits["val"], params, base=start.model,
                                 aggregation=definition.aggregation)
        mlflow.log_metric("epochs_trained", len(history))
        version, metrics = register(
            model, params, splits, rows, history, registered_model=definition.registered_model,
            aggregation=definition.aggregation,
            alias=CHALLENGER,
            tags={"stage": "train", "dataset_version": dataset.version,
                  "dataset_hash": dataset.version, "dataset_contract": dataset.contract,
                  "ingest_watermark_first": str(first), "ingest_watermark_last": str(last),
                  "base_model": start.source, "base_model_uri": base_uri or "",
                  "base_requested": start.requested, "training_start": start.start,
                  "model_profile": s.model_profile, "architecture": profiles.architecture_of(model),
                  **({RUN_KEY_TAG: run_key} if run_key else {})})
    log.info("train: registered %s version %s as %s, %s from %s (test AUC %.3f)",
             definition.registered_model, version, CHALLENGER, start.start, start.source,
             metrics["test_auc"])
    return TrainResult(
        run_id=active.info.run_id, model_name=definition.registered_model, model_version=version,
        alias=CHALLENGER, test_auc=round(metrics["test_auc"], 4),
        val_auc=round(metrics["val_auc"], 4), operating_point=round(metrics["operating_point"], 6),
        train_exams=splits["train"].exams, val_exams=splits["val"].exams,
        test_exams=splits["test"].exams, epochs=len(history),
        base_model="" if start.model is None else start.source,
        test_auc_ci=(round(metrics["test_auc_ci_low"], 4), round(metrics["test_auc_ci_high"], 4)),
    )
