"""Score the challenger and the champion on the same frozen test split, by exam.

Both registered versions are loaded from MLflow by version number (resolved from their
aliases once, before scoring, so an alias moving mid-gate cannot mix two models). View
scores come from `datasets.evaluate.view_scores` and become exam scores only through
`pipelines.scoring.exam_table`, the aggregation training and screening use.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.errors import RegistryError
from pipelines.registry import gate
from pipelines.registry.policy import PromotionPolicy
from pipelines.scoring import Aggregation

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GateInput:
    """What the gate compares: labels, the two scored models, subgroup attributes."""

    labels: np.ndarray
    challenger: gate.ScoredModel
    champion: gate.ScoredModel
    attributes: pd.DataFrame
    dataset_version: str


def operating_point(version: ModelVersion) -> float:
    """The version's `operating_point` tag (chosen on validation when it was trained).

    Raises:
        RegistryError: the tag is missing or not a number.
    """
    raw = (version.tags or {}).get("operating_point")
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RegistryError(f"{version.name} version {version.version} has no usable "
                            f"operating_point tag (got {raw!r})") from None


def score_both(challenger: ModelVersion, champion: ModelVersion, policy: PromotionPolicy,
               dataset: str, aggregation: Aggregation = "breast_mean_exam_max") -> GateInput:
    """Both versions' exam scores on the labelled test split of the frozen `dataset`."""
    from pipelines.frozen import load_split

    rows, images, dataset_version = load_split(dataset, "test")
    labelled = rows.label.notna().to_numpy()  # as in training: unlabelled views never count
    rows, images = rows[labelled].reset_index(drop=True), images[labelled]
    ours = _exam_scores(challenger, rows, images, aggregation)
    theirs = _exam_scores(champion, rows, images, aggregation)
    if not ours.exam_id.equals(theirs.exam_id):
        raise RegistryError("challenger and champion were scored on different exams")
    attributes = ours[[c for c in policy.subgroups if c in ours]]
    log.info("promote: scored versions %s and %s on %d test exams of dataset %s",
             challenger.version, champion.version, len(ours), dataset_version)
    return GateInput(
        labels=ours.label.to_numpy(dtype=int),
        challenger=gate.ScoredModel(str(challenger.version), ours.score.to_numpy(),
                                    operating_point(challenger)),
        champion=gate.ScoredModel(str(champion.version), theirs.score.to_numpy(),
                                  operating_point(champion)),
        attributes=attributes, dataset_version=dataset_version)


def _exam_scores(version: ModelVersion, rows: pd.DataFrame, images: np.ndarray,
                 aggregation: Aggregation) -> pd.DataFrame:
    import mlflow
    from pipelines.modelfiles.inference import view_scores
    from pipelines.scoring import exam_table

    model = mlflow.pytorch.load_model(f"models:/{version.name}/{version.version}",
                                      map_location="cpu")
    return exam_table(rows, view_scores(model, images), aggregation)
