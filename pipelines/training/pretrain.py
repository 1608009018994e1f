"""`radflow pretrain`: a base model trained on a large synthetic "public" site.

It stands for the model a hospital gets from elsewhere (a vendor, a consortium, a paper):
trained on another population and other detectors. The exams are drawn by `synth` and
preprocessed by the same function ingest uses, in this process (no PACS involved, and
nothing of the hospital's). The model is registered as `<registered model>-base` with
alias `base`; `radflow train --base models:/mammo-screening-base@base` fine-tunes it.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from pipelines.config import get_settings
from pipelines.domain import TrainResult
from pipelines.params import load_dataset_params, load_params
from pipelines.tasks import get_task
from pipelines.tracking import mlflow_client
from pipelines.training import data, fit
from pipelines.training.base import BASE_ALIAS, FROM_SCRATCH, registered_base_name

log = logging.getLogger(__name__)


def run(frame: pd.DataFrame, images: np.ndarray, *, site: str, seed: int,
        epochs: int | None = None, task: str = "mammo") -> TrainResult:
    """Train the base model of `task` on a public site's labelled views and register it as
    `<the task's registered model>-base`.

    Args:
        frame: one row per view (exam_id, patient_id, view, laterality, label, manufacturer,
            density), e.g. `pipelines.synth.views.synthetic_views`.
        images: their model inputs [N, 1, H, W] float32, in the same order.
        site: the site's name (a tag); seed: splits and initialisation.
    """
    import mlflow
    from pipelines.training.run import register

    s = get_settings()
    params = load_params(task=task, epochs=epochs or s.train_epochs, seed=seed)
    exams = int(frame.exam_id.nunique())
    frame = frame.assign(row=np.arange(len(frame)))
    fractions = load_dataset_params()  # the same patient split shares as the hospital's datasets
    parts = data.split_patients(frame, fractions.val_fraction, fractions.test_fraction, seed)
    rows = {k: v.reset_index(drop=True) for k, v in parts.items()}
    splits = {k: data.to_split(v, images[v.row.to_numpy()]) for k, v in rows.items()}
    name = registered_base_name(get_task(task).registered_model)
    mlflow_client()
    mlflow.set_experiment(s.mlflow_experiment)
    with mlflow.start_run(run_name=f"pretrain-{site}-{time.strftime('%Y%m%d-%H%M%S')}") as active:
        model, history = fit.fit(splits["train"], splits["val"], params)
        version, metrics = register(
            model, params, splits, rows, history, registered_model=name, alias=BASE_ALIAS,
            tags={"stage": "pretrain", "pretrain_site": site, "pretrain_exams": str(exams),
                  "pretrain_seed": str(seed), "dataset_version": f"synthetic:{site}:{seed}:{exams}",
                  "base_model": FROM_SCRATCH})
    log.info("pretrain: registered %s version %s as %s (test AUC %.3f)", name, version,
             BASE_ALIAS, metrics["test_auc"])
    return TrainResult(
        run_id=active.info.run_id, model_name=name, model_version=version, alias=BASE_ALIAS,
        test_auc=round(metrics["test_auc"], 4), val_auc=round(metrics["val_auc"], 4),
        operating_point=round(metrics["operating_point"], 6), train_exams=splits["train"].exams,
        val_exams=splits["val"].exams, test_exams=splits["test"].exams, epochs=len(history),
        test_auc_ci=(round(metrics["test_auc_ci_low"], 4), round(metrics["test_auc_ci_high"], 4)),
    )
