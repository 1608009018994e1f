"""View scores to exam scores: the one aggregation training, evaluation, promotion,
screening and monitoring share, chosen per task (`aggregation` in pipelines/tasks.yaml).

`breast_mean_exam_max` (mammography): a breast's score is the mean of its views (CC and MLO
see the same lesion from two angles, so both must agree for a high score); the exam's score
is the higher of its two breasts. `max` and `mean` take the exam's views directly. Labels
follow the same path with max: a breast is positive if any of its views is, the exam if
either breast is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

# Suspicion 1-10: training registers the deciles of the validation exam scores under this
# tag; screening maps a night's exam scores onto them (pipelines/screening/suspicion.py).
LEVELS = 10
SUSPICION_TAG = "suspicion_cuts"
# Exam attributes carried to the exam table when the view rows have them (first view's).
EXAM_ATTRIBUTES = ("patient_id", "manufacturer", "density", "study_date")
Aggregation = Literal["breast_mean_exam_max", "max", "mean"]


def breast_table(rows: pd.DataFrame, view_scores: np.ndarray) -> pd.DataFrame:
    """One row per (exam_id, laterality): score (mean of views) and label (max of views).

    Args:
        rows: view rows with exam_id, laterality and (optionally) label.
        view_scores: the model's probability for each row, in the same order.
    """
    frame = pd.DataFrame({"exam_id": rows["exam_id"].to_numpy(),
                          "laterality": rows["laterality"].to_numpy(),
                          "score": np.asarray(view_scores, dtype=np.float64)})
    if "label" in rows:
        frame["label"] = rows["label"].to_numpy()
    agg = {"score": "mean", **({"label": "max"} if "label" in frame else {})}
    return frame.groupby(["exam_id", "laterality"], sort=True).agg(agg).reset_index()


def exam_table(rows: pd.DataFrame, view_scores: np.ndarray,
               aggregation: Aggregation = "breast_mean_exam_max") -> pd.DataFrame:
    """One row per exam, sorted by exam_id: score, label (if known), score_R and score_L
    (breast aggregation only) and the exam attributes of EXAM_ATTRIBUTES the rows carry.

    Args:
        rows: view rows with exam_id (and laterality for breast aggregation), optionally
            label and attributes.
        view_scores: the model's probability for each row, in the same order.
        aggregation: how view scores become the exam score (module docstring).
    """
    if aggregation == "breast_mean_exam_max":
        breasts = breast_table(rows, view_scores)
        sides = breasts.pivot(index="exam_id", columns="laterality", values="score")
        exams = breasts.groupby("exam_id", sort=True).agg(
            {"score": "max", **({"label": "max"} if "label" in breasts else {})})
        for side in ("R", "L"):
            exams[f"score_{side}"] = sides[side] if side in sides else np.nan
    else:
        views = pd.DataFrame({"exam_id": rows["exam_id"].to_numpy(),
                              "score": np.asarray(view_scores, dtype=np.float64)})
        if "label" in rows:
            views["label"] = rows["label"].to_numpy()
        exams = views.groupby("exam_id", sort=True).agg(
            {"score": aggregation, **({"label": "max"} if "label" in views else {})})
    present = [c for c in EXAM_ATTRIBUTES if c in rows]
    if present:
        first = rows.drop_duplicates("exam_id").set_index("exam_id")[present]
        exams = exams.join(first)
    return exams.reset_index()


def exam_score(view_scores: Mapping[str, float], aggregation: Aggregation = "breast_mean_exam_max") -> float:
    """The exam score of one exam's view scores by view name ("R-CC", "PA", ...): `exam_table`'s."""
    rows = pd.DataFrame({"exam_id": "exam", "laterality": [v.split("-")[0] for v in view_scores]})
    return float(exam_table(rows, np.array(list(view_scores.values())), aggregation).score.iloc[0])


def suspicion_cuts(validation_scores: np.ndarray) -> list[float]:
    """The 9 cut points (deciles) of the validation exam scores (coarse with few exams:
    the number of validation exams is logged beside them)."""
    cuts = np.quantile(np.asarray(validation_scores, dtype=np.float64), np.arange(1, LEVELS) / LEVELS)
    return [round(float(c), 6) for c in cuts]
