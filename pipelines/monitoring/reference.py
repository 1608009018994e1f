"""The reference a night is compared with: the champion's validation exams.

Built right after training (the retraining DAG's `build_monitoring_reference` task, and
`radflow train`) from the validation split training chose its operating point on: per exam,
the acquisition metadata (from the lake's de-identified DICOM headers), the image
statistics and the embedding of the model inputs, and the exam score, all computed with
the registered ONNX file, the one Triton serves. It is logged with the run
(`monitoring/reference.parquet`), so each registered version carries its own reference
and monitoring always compares a night with the data of the model that scored it.
Versions registered before monitoring existed get theirs from `radflow monitor-reference`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines import features
from pipelines.config import get_settings
from pipelines.errors import PermanentError
from pipelines.modelfiles.embeddings import Embedder
from pipelines.publish import write_file
from pipelines.scoring import Aggregation
from pipelines.tasks import get_task

if TYPE_CHECKING:
    import pandas as pd
    from pydicom import Dataset

log = logging.getLogger(__name__)

ARTIFACT_DIR = "monitoring"
ARTIFACT_FILE = "reference.parquet"


def _header(lake: Path, row: Any) -> Dataset:
    """The view's de-identified header from the lake; the manifest's device fields if it is gone."""
    from pydicom import Dataset

    from pipelines.layout import exam_dir

    study_date = getattr(row, "study_date", None)  # pretraining pools have no lake folder
    path = exam_dir(lake, str(study_date), str(row.exam_id)) / f"{row.view}.dcm.json"
    if study_date is not None and path.exists():
        return Dataset.from_json(json.loads(path.read_text()))
    ds = Dataset()
    ds.Manufacturer = str(getattr(row, "manufacturer", "") or "")
    spacing = getattr(row, "pixel_spacing_mm", None)
    if spacing is not None and np.isfinite(spacing):
        ds.PixelSpacing = [float(spacing), float(spacing)]
    return ds


def build(rows: pd.DataFrame, images: np.ndarray, onnx_file: Path, lake: Path | None = None,
          aggregation: Aggregation = "breast_mean_exam_max") -> pd.DataFrame:
    """The reference frame (one row per exam, pipelines.features columns).

    Args:
        rows: the validation view rows (exam_id, view, study_date, laterality; manifest columns).
        images: their model inputs [N, 1, H, W], in the same order.
        onnx_file: the registered model file (embeddings and scores).
        lake: where the de-identified headers are (default: the configured lake).
        aggregation: how view scores become the exam score (the task's).
    """
    from pipelines.scoring import exam_score

    lake = lake or get_settings().lake_dir
    embeddings, probs = Embedder(onnx_file).embed_and_score(images)
    out = []
    for exam_id, index in rows.groupby("exam_id", sort=True).indices.items():
        views = rows.iloc[index]
        score = exam_score({str(v): float(probs[i]) for v, i in zip(views.view, index, strict=True)},
                           aggregation)
        out.append(features.exam_row(str(exam_id), [_header(lake, r) for r in views.itertuples()],
                                     [images[i, 0] for i in index], embeddings[index], score))
    log.info("monitoring reference: %d exams, %d views, %d embedding dimensions", len(out), len(rows),
             embeddings.shape[1] if embeddings.ndim == 2 else 0)
    return features.frame(out)


def log_to_run(frame: pd.DataFrame, folder: Path) -> None:
    """Log the reference as an artifact of the active MLflow run."""
    import mlflow

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ARTIFACT_FILE
    frame.to_parquet(path, index=False)
    mlflow.log_artifact(str(path), artifact_path=ARTIFACT_DIR)


def load(model_name: str, version: str) -> pd.DataFrame:
    """The reference of a registered version (cached under the state dir).

    Raises:
        PermanentError: the version carries no reference (registered before monitoring):
            the message says how to make one.
    """
    import pandas as pd

    cache = get_settings().state / "monitoring" / "reference" / model_name / f"{version}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    import mlflow.artifacts

    from pipelines.tracking import mlflow_client

    run_id = mlflow_client().get_model_version(model_name, version).run_id

    def download(tmp: Path) -> None:
        # MLflow names the file inside dst_path itself; a hidden folder beside the cache keeps
        # the move to `tmp` a rename, and is deleted with whatever a failed download left
        with tempfile.TemporaryDirectory(prefix=".dl-", dir=tmp.parent) as folder:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=f"{ARTIFACT_DIR}/{ARTIFACT_FILE}", dst_path=folder)
            except Exception as exc:
                raise PermanentError(f"{model_name} version {version} has no monitoring reference "
                                     f"({ARTIFACT_DIR}/{ARTIFACT_FILE} in run {run_id}): run `radflow "
                                     f"monitor-reference --version {version}` to build it from its "
                                     "validation split") from exc
            shutil.move(local, tmp)

    write_file(cache, download)
    return pd.read_parquet(cache)


def build_for_version(version: str, task: str = "mammo") -> dict[str, Any]:
    """Build and log the reference of a version of `task`'s registered model, from the
    `monitoring_reference` split (validation by default) of the task's published dataset,
    which must be the one the version was trained on. Called after every training.

    Raises:
        PermanentError: the published dataset is not the one the version was trained on.
    """
    import mlflow
    from pipelines import frozen
    from pipelines.modelfiles.integrity import fetch_onnx, registered_sha
    from pipelines.tracking import mlflow_client

    definition = get_task(task)
    model_name = definition.registered_model
    client = mlflow_client()
    mv = client.get_model_version(model_name, version)
    dataset = frozen.load(definition.dataset)
    trained_on = (mv.tags or {}).get("dataset_version", "")
    if trained_on and trained_on != dataset.version:
        raise PermanentError(f"{model_name} version {version} was trained on dataset {trained_on[:12]}, "
                             f"the published one is {dataset.version[:12]}: its validation split is gone")
    rows = dataset.splits[definition.monitoring_reference]
    rows = rows[rows.label.notna()].reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = fetch_onnx(str(mv.run_id), registered_sha(mv), Path(tmp))
        frame = build(rows, frozen.images(rows), onnx_file, aggregation=definition.aggregation)
        with mlflow.start_run(run_id=mv.run_id):
            log_to_run(frame, Path(tmp) / "reference")
    return {"task": task, "model_name": model_name, "version": str(version), "exams": len(frame),
            "split": definition.monitoring_reference}
