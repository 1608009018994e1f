"""The evaluation report of one held-out split: exam-level numbers, figures, MLflow.

View scores become exam scores through `pipelines.scoring.exam_table` (breast = mean
of its views, exam = max of its breasts), the one aggregation the pipeline shares. The
operating point is chosen on validation by the caller; this module only applies it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import get_settings
from pipelines.errors import MisusedApi, NoTrainingData
from pipelines.metrics import binary as metrics
from pipelines.metrics import plots
from pipelines.modelfiles.inference import view_outputs
from pipelines.scoring import Aggregation, exam_table

log = logging.getLogger(__name__)

REPORT_FILE = "evaluation.json"
ROC_FILE = "roc.png"
RELIABILITY_FILE = "reliability.png"
GALLERY_FILE = "heatmap_gallery.png"
ARTIFACT_DIR = "evaluation"  # artifacts of split s go under evaluation/<s>/ in the run
SUBGROUP_ATTRIBUTES = ("manufacturer", "density")
GALLERY_VIEWS_PER_ROW = 4
# The report's scalars, logged to MLflow as <split>_<key>.
SCALARS = ("views", "exams", "positive_exams", "auc", "auc_ci_low", "auc_ci_high", "operating_point",
           "sensitivity", "specificity", "specificity_at_sens90", "ece")


def write_report(rows: pd.DataFrame, view_scores: np.ndarray, operating_point: float, folder: Path, *,
                 images: np.ndarray | None = None, heatmaps: np.ndarray | None = None,
                 split: str = "test", resamples: int = metrics.DEFAULT_RESAMPLES,
                 seed: int = 0, aggregation: Aggregation = "breast_mean_exam_max") -> dict[str, Any]:
    """Evaluate one split by exam and write the figures and evaluation.json into `folder`.

    Args:
        rows: view rows with exam_id, laterality and label; manufacturer and density are
            used when present (a missing density is the group "unknown"). Views without
            a label are left out and counted.
        view_scores: the model's probability per row, in the same order.
        operating_point: the exam-score threshold chosen on validation.
        folder: where roc.png, reliability.png, heatmap_gallery.png and evaluation.json go.
        images: the views [N, 1, H, W] in [0, 1], for the heatmap gallery.
        heatmaps: the model's heatmaps [N, 1, h, w] in [0, 1]; without them (or without
            images) the gallery is skipped and the report says why.
        split: the split's name, as reported.
        resamples: bootstrap resamples of every AUC interval.
        seed: seed of the bootstrap.
        aggregation: how view scores become exam scores (the task's; pipelines/scoring.py).

    Returns:
        The report as written to evaluation.json (JSON types only).

    Raises:
        NoTrainingData: the split's labelled exams are not of both classes.
        ValueError: scores, images or heatmaps not one per row.
    """
    scores = np.asarray(view_scores, dtype=np.float64)
    for name, array in (("view scores", scores), ("images", images), ("heatmaps", heatmaps)):
        if array is not None and len(array) != len(rows):
            raise ValueError(f"{name}: {len(array)} for {len(rows)} view rows")
    labelled = rows.label.notna().to_numpy()
    rows, scores = rows[labelled].reset_index(drop=True), scores[labelled]
    exams = exam_table(rows, scores, aggregation)
    y, s = exams.label.to_numpy(np.int64), exams.score.to_numpy()
    if int(y.sum()) in (0, len(y)):
        raise NoTrainingData(f"{split} split has {int(y.sum())} positive of {len(y)} labelled exams: "
                             "an AUC needs both classes")
    auc = metrics.auc_with_ci(y, s, resamples=resamples, seed=seed)
    sensitivity, specificity = metrics.sensitivity_specificity(y, s, operating_point)
    curve = metrics.reliability_bins(y, s)
    ece = metrics.expected_calibration_error(curve)
    report: dict[str, Any] = {
        "split": split, "views": len(rows), "unlabelled_views": int((~labelled).sum()),
        "exams": len(exams), "positive_exams": int(y.sum()),
        "auc": auc.auc, "auc_ci_low": auc.ci_low, "auc_ci_high": auc.ci_high, "ci_level": auc.level,
        "bootstrap_resamples": resamples, "bootstrap_seed": seed,
        "operating_point": float(operating_point), "sensitivity": sensitivity, "specificity": specificity,
        "specificity_at_sens90": metrics.specificity_at_sensitivity(y, s, 0.9),
        "ece": ece, "reliability": [dataclasses.asdict(b) for b in curve],
        "subgroups": _subgroups(exams, y, s, resamples, seed),
    }
    folder.mkdir(parents=True, exist_ok=True)
    plots.roc_plot(y, s, folder / ROC_FILE, operating_point=operating_point, auc=auc)
    plots.reliability_plot(curve, ece, folder / RELIABILITY_FILE)
    report.update(_gallery(rows, scores, _subset(images, labelled), _subset(heatmaps, labelled),
                           operating_point, folder / GALLERY_FILE))
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The report's numbers under flat MLflow names: `<split>_auc`, `<split>_ece`, ...,
    `<split>_auc_<attribute>_<group slug>` (with `_ci_low`, `_ci_high`) and
    `<split>_exams_<attribute>_<group slug>`, `<split>_positive_exams_<attribute>_<group slug>`."""
    split = report["split"]
    out = {f"{split}_{key}": float(report[key]) for key in SCALARS}
    for attribute, groups in report["subgroups"].items():
        for group in groups:
            name = f"{attribute}_{slug(group['group'])}"
            out[f"{split}_exams_{name}"] = float(group["exams"])
            out[f"{split}_positive_exams_{name}"] = float(group["positives"])
            if group["auc"] is not None:
                out[f"{split}_auc_{name}"] = group["auc"]
                out[f"{split}_auc_{name}_ci_low"] = group["ci_low"]
                out[f"{split}_auc_{name}_ci_high"] = group["ci_high"]
    return out


def log_evaluation(model: Any, rows: pd.DataFrame, images: np.ndarray, operating_point: float, *,
                   split: str = "test", folder: Path | None = None, batch_size: int = 64,
                   resamples: int = metrics.DEFAULT_RESAMPLES, seed: int = 0,
                   aggregation: Aggregation = "breast_mean_exam_max") -> dict[str, float]:
    """Evaluate `model` on the views of one split and log it into the active MLflow run:
    the metrics of `flat_metrics` and the report folder as artifacts under evaluation/<split>/.

    Args:
        model: returns probability [n, 1], or (probability, heatmap [n, 1, h, w]).
        rows: the split's view rows (see `write_report`), in the order of `images`.
        images: the views [N, 1, H, W] float32 in [0, 1].
        operating_point: the exam-score threshold chosen on validation.
        split: the split's name; metric names start with it.
        folder: where the report is written; default `<state>/evaluation/<run id>/<split>`.
        batch_size: views per forward pass.
        resamples: bootstrap resamples of every AUC interval.
        seed: seed of the bootstrap.
        aggregation: how view scores become exam scores (the task's).

    Returns:
        The metrics logged, by their MLflow names (`flat_metrics`); the whole report is
        the artifact evaluation/<split>/evaluation.json.

    Raises:
        MisusedApi: no MLflow run is active.
        NoTrainingData: the split's labelled exams are not of both classes.
    """
    import mlflow

    active = mlflow.active_run()
    if active is None:
        raise MisusedApi("log_evaluation logs into the active MLflow run: start one first")
    folder = folder or get_settings().state / "evaluation" / active.info.run_id / split
    scores, heatmaps = view_outputs(model, images, batch_size)
    report = write_report(rows, scores, operating_point, folder, images=images, heatmaps=heatmaps,
                          split=split, resamples=resamples, seed=seed, aggregation=aggregation)
    logged = flat_metrics(report)
    mlflow.log_metrics(logged)
    mlflow.log_artifacts(str(folder), artifact_path=f"{ARTIFACT_DIR}/{split}")
    log.info("evaluation: %s split, %d exams: AUC %.3f (%.3f-%.3f), ECE %.3f", split,
             report["exams"], report["auc"], report["auc_ci_low"], report["auc_ci_high"], report["ece"])
    return logged


def slug(group: str) -> str:
    """A group name as a metric-name part: "HOLOGIC, Inc." -> "hologic_inc"."""
    return re.sub(r"[^a-z0-9]+", "_", group.lower()).strip("_") or "unnamed"


def _group_name(value: Any) -> str:
    """A manufacturer or density value as a group name; missing values are "unknown"."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return "unknown"
    if isinstance(value, float) and value.is_integer():  # density 2 read back as 2.0
        return str(int(value))
    return str(value).strip()


def _subgroups(exams: pd.DataFrame, y: np.ndarray, s: np.ndarray, resamples: int,
               seed: int) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for attribute in SUBGROUP_ATTRIBUTES:
        values = exams[attribute].tolist() if attribute in exams else [None] * len(exams)
        groups = [_group_name(v) for v in values]
        found = metrics.subgroup_aucs(y, s, groups, resamples=resamples, seed=seed)
        out[attribute] = [dataclasses.asdict(g) for g in found]
    return out


def _subset(array: np.ndarray | None, keep: np.ndarray) -> np.ndarray | None:
    return None if array is None else array[keep]


def _gallery(rows: pd.DataFrame, scores: np.ndarray, images: np.ndarray | None,
             heatmaps: np.ndarray | None, operating_point: float, path: Path) -> dict[str, Any]:
    """The highest-scoring true- and false-positive views (a view is positive by its own
    label, flagged when its score reaches the operating point), drawn with their heatmaps."""
    if heatmaps is None or images is None:
        reason = "the model returns no heatmaps" if heatmaps is None else "no images were given"
        log.info("evaluation: heatmap gallery skipped: %s", reason)
        return {"gallery": None, "gallery_skipped": reason}
    labels, flagged = rows.label.to_numpy(), scores >= operating_point
    picks = {"true positives": _top(scores, flagged & (labels == 1)),
             "false positives": _top(scores, flagged & (labels == 0))}
    name = rows["view"] if "view" in rows else rows["laterality"]
    panels = {kind: [plots.GalleryView(images[i, 0], heatmaps[i, 0],
                                       f"{rows.exam_id.iloc[i]} {name.iloc[i]} p={scores[i]:.2f}")
                     for i in idx] for kind, idx in picks.items()}
    plots.heatmap_gallery(panels, path)
    return {"gallery": {"true_positive_views": len(picks["true positives"]),
                        "false_positive_views": len(picks["false positives"])},
            "gallery_skipped": None}


def _top(scores: np.ndarray, mask: np.ndarray) -> list[int]:
    idx = np.flatnonzero(mask)
    return idx[np.argsort(-scores[idx], kind="stable")][:GALLERY_VIEWS_PER_ROW].tolist()
