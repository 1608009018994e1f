"""`radflow evaluate`: a registered model (by alias) on a frozen dataset split, in MLflow.

The numbers are exam-level (exam score = max over its views, as in training and
screening) and are logged as a run tagged with the model version and the dataset version
(DVC hash), and copied onto the model version as `eval_<split>_*` tags for promotion.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import get_settings
from pipelines.datasets import frozen
from pipelines.domain import StageResult
from pipelines.errors import NoTrainingData
from pipelines.imaging.storage import from_lake

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EvaluationResult(StageResult):
    run_id: str
    model_name: str
    model_version: str
    alias: str
    dataset_version: str
    split: str
    exams: int
    auc: float
    sensitivity: float
    specificity: float
    operating_point: float


def load_split(name: str, split: str) -> tuple[pd.DataFrame, np.ndarray, str]:
    """The rows and [N, 1, H, W] float32 images of `split`, and the dataset version."""
    dataset = frozen.load(name)
    rows = dataset.splits[split]
    if rows.empty:
        raise NoTrainingData(f"dataset {name!r} has no {split} rows")
    images = np.stack([from_lake(np.load(p)) for p in rows.image_path])[:, None]
    return rows, images, dataset.version


def exam_metrics(view_scores: np.ndarray, rows: pd.DataFrame, threshold: float) -> dict[str, float]:
    """AUC, sensitivity and specificity by exam at `threshold`."""
    from sklearn.metrics import roc_auc_score

    frame = pd.DataFrame({"exam": rows.exam_id, "score": view_scores, "label": rows.label})
    exams = frame.groupby("exam").max()
    flagged, positive = exams.score >= threshold, exams.label == 1
    auc = float(roc_auc_score(exams.label, exams.score)) if exams.label.nunique() == 2 else float("nan")
    return {"auc": auc, "exams": float(len(exams)),
            "sensitivity": float((flagged & positive).sum() / max(int(positive.sum()), 1)),
            "specificity": float((~flagged & ~positive).sum() / max(int((~positive).sum()), 1))}


def view_scores(model: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The model's probability per view.

    MLflow 3 logs PyTorch models as exported programs (pt2), which are already in eval
    mode and refuse `.eval()`, so this does not call it (unlike `training.fit.predict`).
    """
    import torch

    with torch.no_grad():
        out = [model(torch.from_numpy(images[i:i + batch_size])).numpy()[:, 0]
               for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def run(alias: str = "challenger", split: str = "test", dataset: str = "mammo") -> EvaluationResult:
    """Evaluate `models:/<registered model>@<alias>` on `split` of the frozen dataset."""
    import mlflow
    from pipelines.registry.client import mlflow_client, model_uri, require_version

    s = get_settings()
    rows, images, data_version = load_split(dataset, split)
    client = mlflow_client()
    version = require_version(client, s.registered_model, alias)
    threshold = float((version.tags or {}).get("operating_point", 0.5))
    model = mlflow.pytorch.load_model(model_uri(s.registered_model, alias), map_location="cpu")
    metrics = exam_metrics(view_scores(model, images), rows, threshold)
    mlflow.set_experiment(s.mlflow_experiment)
    with mlflow.start_run(run_name=f"evaluate-{alias}-{split}") as active:
        mlflow.set_tags({"stage": "evaluate", "dataset_version": data_version, "split": split,
                         "model_version": str(version.version), "alias": alias})
        mlflow.log_metrics({f"{split}_{k}": v for k, v in metrics.items()})
    for key in ("auc", "sensitivity", "specificity"):
        client.set_model_version_tag(s.registered_model, str(version.version),
                                     f"eval_{split}_{key}", f"{metrics[key]:.4f}")
    client.set_model_version_tag(s.registered_model, str(version.version), "eval_dataset_version",
                                 data_version)
    log.info("evaluate: %s@%s on %s %s: AUC %.3f", s.registered_model, alias, dataset, split,
             metrics["auc"])
    return EvaluationResult(
        run_id=active.info.run_id, model_name=s.registered_model, model_version=str(version.version),
        alias=alias, dataset_version=data_version, split=split, exams=int(metrics["exams"]),
        auc=round(metrics["auc"], 4), sensitivity=round(metrics["sensitivity"], 4),
        specificity=round(metrics["specificity"], 4), operating_point=threshold)
