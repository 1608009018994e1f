"""Several models on the same exams: the base as is, the fine-tuned challenger, the champion.

Whether fine-tuning helped is only visible against the base it started from, on the same
frozen test split as the champion. One row per model: exam AUC with its stratified
bootstrap CI (the same resampled exams for every model, so the rows are comparable), and
sensitivity and specificity at the model's own operating point. Evaluation logs the table
with the challenger's evaluation; the promotion report shows it beside the gate.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.metrics import binary
from pipelines.scoring import Aggregation

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
BASE, CHALLENGER, CHAMPION = "base as is", "challenger (fine-tuned)", "champion"
CHALLENGER_FROM_SCRATCH = "challenger (from scratch)"


@dataclasses.dataclass(frozen=True)
class Contender:
    """One model's exam scores on the compared exams (in the labels' order)."""

    role: str
    model: str  # what it is: an MLflow URI or "name version N"
    scores: np.ndarray
    operating_point: float | None  # None: the model carries none (no sensitivity then)


@dataclasses.dataclass(frozen=True)
class ComparedModel:
    """One row of the comparison."""

    role: str
    model: str
    exams: int
    positives: int
    auc: float
    auc_ci_low: float
    auc_ci_high: float
    operating_point: float | None
    sensitivity: float | None
    specificity: float | None


def compare(labels: np.ndarray, contenders: Sequence[Contender], *,
            resamples: int = binary.DEFAULT_RESAMPLES, seed: int = 0,
            level: float = binary.CI_LEVEL) -> list[ComparedModel]:
    """The comparison table, one row per contender, in their order.

    Raises:
        ValueError: the labels are of one class only (no AUC), or a contender's scores do
            not have one entry per label.
    """
    y = np.asarray(labels, dtype=int)
    rows = []
    for c in contenders:
        if len(c.scores) != len(y):
            raise ValueError(f"{c.role} {c.model}: {len(c.scores)} scores for {len(y)} exams")
        # the same seed for every contender: the same resampled exams, as in a paired bootstrap
        auc = binary.auc_with_ci(y, c.scores, resamples=resamples, seed=seed, level=level)
        sens, spec = (binary.sensitivity_specificity(y, c.scores, c.operating_point)
                      if c.operating_point is not None else (None, None))
        rows.append(ComparedModel(
            role=c.role, model=c.model, exams=len(y), positives=int(y.sum()),
            auc=round(auc.auc, 4), auc_ci_low=round(auc.ci_low, 4), auc_ci_high=round(auc.ci_high, 4),
            operating_point=c.operating_point,
            sensitivity=None if sens is None else round(sens, 4),
            specificity=None if spec is None else round(spec, 4)))
    return rows


def as_json(rows: Sequence[ComparedModel]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in rows]


def exam_scores(model_uri: str, rows: pd.DataFrame, images: np.ndarray,
                aggregation: Aggregation) -> pd.DataFrame:
    """The exam table (pipelines.scoring.exam_table) of the MLflow model at `model_uri`."""
    import mlflow
    from pipelines.modelfiles.inference import view_scores
    from pipelines.scoring import exam_table

    model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    return exam_table(rows, view_scores(model, images), aggregation)


def registered_operating_point(client: MlflowClient, uri: str) -> float | None:
    """The `operating_point` tag of the registered version `models:/NAME/VERSION`; None for
    other URIs (a base logged in a run carries no threshold)."""
    match = _VERSION_URI.match(uri)
    if match is None:
        return None
    return operating_point_of(client.get_model_version(match["name"], match["version"]).tags)


def operating_point_of(tags: dict[str, str] | None) -> float | None:
    """A model version's `operating_point` tag as a number, None when absent or malformed."""
    try:
        return float((tags or {})["operating_point"])
    except (KeyError, TypeError, ValueError):
        return None
