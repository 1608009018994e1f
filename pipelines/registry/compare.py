"""Score the challenger, the champion and the challenger's base on the same frozen test
split, by exam.

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
    """What the gate compares: labels, the scored models, subgroup attributes.

    `champion` is None at a first promotion; `base` is the base the challenger was
    fine-tuned from, as is (None from scratch, or when it could not be scored: then
    `base_problem` says why)."""

    labels: np.ndarray
    challenger: gate.ScoredModel
    champion: gate.ScoredModel | None
    attributes: pd.DataFrame
    dataset_version: str
    base: gate.ScoredModel | None = None
    base_uri: str = ""
    base_problem: str = ""


def operating_point(version: ModelVersion) -> float:
    """The version's `operating_point` tag (chosen on validation when it was trained).

    Raises:
        RegistryError: the tag is missing or not a number.
    """
    from pipelines.metrics.comparison import operating_point_of

    point = operating_point_of(version.tags)
    if point is None:
        raise RegistryError(f"{version.name} version {version.version} has no usable "
                            f"operating_point tag (got {(version.tags or {}).get('operating_point')!r})")
    return point


def score_versions(challenger: ModelVersion, champion: ModelVersion | None, policy: PromotionPolicy,
                   dataset: str, aggregation: Aggregation = "breast_mean_exam_max") -> GateInput:
    """The challenger's, the champion's and the base's exam scores on the labelled test split
    of the frozen `dataset` (the base: the challenger's `base_model_uri` tag, if any)."""
    from pipelines.frozen import load_split

    rows, images, dataset_version = load_split(dataset, "test")
    labelled = rows.label.notna().to_numpy()  # as in training: unlabelled views never count
    rows, images = rows[labelled].reset_index(drop=True), images[labelled]
    ours = _exam_scores(challenger, rows, images, aggregation)
    theirs = None if champion is None else _exam_scores(champion, rows, images, aggregation)
    if theirs is not None and not ours.exam_id.equals(theirs.exam_id):
        raise RegistryError("challenger and champion were scored on different exams")
    base_uri = (challenger.tags or {}).get("base_model_uri", "")
    base, problem = _base(base_uri, ours.exam_id, rows, images, aggregation) if base_uri else (None, "")
    log.info("promote: scored version %s%s%s on %d test exams of dataset %s", challenger.version,
             "" if champion is None else f", champion {champion.version}",
             f" and its base {base_uri}" if base is not None else "", len(ours), dataset_version)
    return GateInput(
        labels=ours.label.to_numpy(dtype=int),
        challenger=gate.ScoredModel(str(challenger.version), ours.score.to_numpy(),
                                    operating_point(challenger)),
        champion=None if champion is None or theirs is None else gate.ScoredModel(
            str(champion.version), theirs.score.to_numpy(), operating_point(champion)),
        attributes=ours[[c for c in policy.subgroups if c in ours]],
        dataset_version=dataset_version, base=base, base_uri=base_uri, base_problem=problem)


def _base(uri: str, exam_ids: pd.Series, rows: pd.DataFrame, images: np.ndarray,
          aggregation: Aggregation) -> tuple[gate.ScoredModel | None, str]:
    """The base as is, scored on the same exams; (None, why) when it cannot be loaded."""
    from pipelines.metrics.comparison import exam_scores

    try:
        scored = exam_scores(uri, rows, images, aggregation).set_index("exam_id")
    except Exception as exc:  # the gate then fails its base check, naming this
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"
    from pipelines.metrics.comparison import registered_operating_point
    from pipelines.tracking import mlflow_client

    point = registered_operating_point(mlflow_client(), uri)  # shown, never gated on
    return gate.ScoredModel(uri, scored.score.loc[exam_ids.to_numpy()].to_numpy(),
                            float("nan") if point is None else point), ""


def _exam_scores(version: ModelVersion, rows: pd.DataFrame, images: np.ndarray,
                 aggregation: Aggregation) -> pd.DataFrame:
    from pipelines.metrics.comparison import exam_scores

    return exam_scores(f"models:/{version.name}/{version.version}", rows, images, aggregation)
