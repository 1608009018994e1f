"""A screened night's monitoring features, computed by each scoring batch and published
by the night's merge.

Only the scoring batches hold the night's pixels and headers, so each computes what
monitoring needs while it has them: per exam, the acquisition metadata, the image
statistics and the embedding of the model inputs (with the deployed ONNX file, checked
against its registered SHA-256) and the exam score. The frame holds pseudonyms and device
names only; it is published by one rename per night and model version, so a rerun
replaces it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines import features
from pipelines.config import get_settings
from pipelines.features import night_path
from pipelines.modelfiles.embeddings import Embedder
from pipelines.publish import write_file

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.deployments import Deployment
    from pipelines.screening.collect import PreparedExam
    from pipelines.screening.results import ExamRow

log = logging.getLogger(__name__)


def model_file(deployed: Deployment) -> Path:
    """The deployed version's ONNX file: Triton's copy when the repository is local (verified
    against the registered hash), else the registered artifact from MLflow (cached)."""
    from pipelines.modelfiles import integrity

    repo = get_settings().triton_repository
    live = repo / deployed.triton_model / str(deployed.triton_version) / "model.onnx"
    if live.is_file():
        integrity.verify(live, deployed.model_name, deployed.model_version, deployed.sha256)
        return live
    from pipelines.modelfiles.integrity import fetch_onnx
    from pipelines.tracking import mlflow_client

    cache = get_settings().state / "monitoring" / "models" / deployed.model_name / deployed.model_version
    if (cache / "model.onnx").is_file() and integrity.sha256(cache / "model.onnx") == deployed.sha256:
        return cache / "model.onnx"
    run_id = mlflow_client().get_model_version(deployed.model_name, deployed.model_version).run_id
    return fetch_onnx(str(run_id), deployed.sha256, cache)


def night_frame(prepared: list[PreparedExam], rows: list[ExamRow], images: np.ndarray,
                onnx_file: Path) -> pd.DataFrame:
    """One features row per screened exam (`rows` and `prepared` in the same order;
    `images` [V, 1, H, W] every view, exam by exam)."""
    embeddings = Embedder(onnx_file).embed(images) if len(images) else np.zeros((0, 0), np.float32)
    out, i = [], 0
    for exam, row in zip(prepared, rows, strict=True):
        views = list(exam.views.values())
        out.append(features.exam_row(exam.exam_id, [v.header for v in views], [v.image for v in views],
                                     embeddings[i:i + len(views)], row.score))
        i += len(views)
    return features.frame(out)


def write_night(task: str, study_date: str, model_version: str, frame: pd.DataFrame) -> Path:
    """Publish the night's features (one rename; a rerun replaces them)."""
    path = write_file(night_path(task, study_date, model_version),
                      lambda tmp: frame.to_parquet(tmp, index=False))
    log.info("monitoring features %s %s: %d exams", task, study_date, len(frame))
    return path
