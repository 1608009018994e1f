"""View scores to what the radiologist sees: exam score, suspicion 1-10 and the flag.

- Views with QC flags are left out of the exam score (their reasons are recorded); when
  every view is flagged the exam is scored on all of them, and says so.
- Suspicion 1-10 is calibrated on the model's validation exams: training registers the
  deciles of the validation exam scores (`suspicion_cuts`), so each level holds about a
  tenth of a screening population like the validation one, and 10 is its top decile.
- The flag is the validation operating point (the sensitivity target chosen in training),
  or, when a daily reading capacity k is configured, the k highest exam scores of the night.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from pipelines.errors import PermanentError
from pipelines.scoring import LEVELS, SUSPICION_TAG, exam_score
from pipelines.tasks import TaskDefinition


def score_without(task: TaskDefinition, view_scores: Mapping[str, float],
                  discounted: Sequence[str]) -> tuple[float, bool]:
    """The exam score (pipelines.scoring.exam_score, the task's aggregation) without the
    discounted views; (score, whether all views were kept because every one was flagged)."""
    kept = {v: s for v, s in view_scores.items() if v not in discounted}
    all_flagged = not kept
    return exam_score(kept or dict(view_scores), task.aggregation), all_flagged


def parse_cuts(tag: str | None) -> list[float]:
    """The cut points of a registered version's tag.

    Raises:
        PermanentError: the version was registered without them (retrain it) or they are malformed.
    """
    if not tag:
        raise PermanentError(f"the deployed model version has no {SUSPICION_TAG} tag, so suspicion "
                             "1-10 cannot be calibrated: retrain (training registers it) and deploy again")
    cuts = [float(c) for c in json.loads(tag)]
    if len(cuts) != LEVELS - 1 or cuts != sorted(cuts):
        raise PermanentError(f"{SUSPICION_TAG} must be {LEVELS - 1} ascending numbers, got {cuts}")
    return cuts


def suspicion(score: float, cuts: Sequence[float]) -> int:
    """1 (below the first decile of validation scores) to 10 (above the last)."""
    return int(np.searchsorted(np.asarray(cuts), score, side="right")) + 1


def flags(scores: np.ndarray, operating_point: float, capacity: int | None) -> tuple[np.ndarray, str]:
    """Which exams are flagged and why: the top `capacity` scores, else the operating point."""
    scores = np.asarray(scores, dtype=np.float64)
    if capacity is not None:
        flagged = np.zeros(len(scores), dtype=bool)
        order = np.argsort(-scores, kind="stable")  # ties: the earlier exam first (stable)
        flagged[order[:max(0, capacity)]] = True
        return flagged, f"reading capacity (top {capacity})"
    return scores >= operating_point, "operating point"
