"""The evaluated version beside the base it was fine-tuned from and the current champion,
on the same split (pipelines/metrics/comparison.py), as evaluation logs it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.metrics import comparison
from pipelines.modelfiles.inference import view_scores
from pipelines.scoring import exam_table
from pipelines.tasks import TaskDefinition

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)


def three_way(client: MlflowClient, version: ModelVersion, model: Any, rows: pd.DataFrame,
              images: np.ndarray, task: TaskDefinition, threshold: float,
              ) -> tuple[list[comparison.ComparedModel], list[dict[str, str]]]:
    """(rows of the comparison, models that could not be scored with the reason).

    The base comes from the version's `base_model_uri` tag (none when trained from
    scratch); the champion is left out when it is the evaluated version itself.
    """
    from pipelines.tracking import version_by_alias

    exams = exam_table(rows, view_scores(model, images), task.aggregation).dropna(subset=["label"])
    ids = exams.exam_id.to_numpy()
    tags = version.tags or {}
    base_uri = tags.get("base_model_uri", "")
    role = comparison.CHALLENGER if base_uri else comparison.CHALLENGER_FROM_SCRATCH
    contenders = [comparison.Contender(role, f"{version.name} version {version.version}",
                                       exams.score.to_numpy(), threshold)]
    missing: list[dict[str, str]] = []
    others: list[tuple[str, str, float | None]] = []
    if base_uri:
        others.append((comparison.BASE, base_uri, comparison.registered_operating_point(client, base_uri)))
    champion = version_by_alias(client, version.name, "champion")
    if champion is not None and str(champion.version) != str(version.version):
        others.append((comparison.CHAMPION, f"models:/{champion.name}/{champion.version}",
                       comparison.operating_point_of(champion.tags)))
    for other_role, uri, point in others:
        try:
            scored = comparison.exam_scores(uri, rows, images, task.aggregation).set_index("exam_id")
            contenders.insert(0 if other_role == comparison.BASE else len(contenders),
                              comparison.Contender(other_role, uri, scored.score.loc[ids].to_numpy(), point))
        except Exception as exc:  # a model this process cannot load is listed, not fatal
            log.warning("evaluate: %s %s not scored: %s", other_role, uri, type(exc).__name__)
            missing.append({"role": other_role, "model": uri,
                            "reason": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return comparison.compare(exams.label.to_numpy(dtype=int), contenders), missing
