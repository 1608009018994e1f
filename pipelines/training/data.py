"""Labelled views from the manifest, split by patient so no patient is in two splits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from pipelines import frozen
from pipelines.errors import NoTrainingData

MIN_EXAMS_PER_SPLIT = 3


@dataclasses.dataclass(frozen=True)
class Split:
    """Views of one split: images [N, 1, H, W] float32, view labels, exam ids, lateralities."""

    images: np.ndarray
    labels: np.ndarray
    exam_ids: np.ndarray
    laterality: np.ndarray

    @property
    def exams(self) -> int:
        return len(set(self.exam_ids.tolist()))

    def rows(self) -> pd.DataFrame:
        """The view rows `pipelines.scoring` needs (exam_id, laterality, label)."""
        return pd.DataFrame({"exam_id": self.exam_ids, "laterality": self.laterality,
                             "label": self.labels})


def split_patients(frame: pd.DataFrame, val: float, test: float, seed: int) -> dict[str, pd.DataFrame]:
    """train / val / test frames with disjoint patients; each holds positives and negatives."""
    rng = np.random.default_rng(seed)
    patients = np.array(sorted(frame.patient_id.unique()))
    for _ in range(50):
        order = rng.permutation(patients)
        n_test, n_val = int(round(len(order) * test)), int(round(len(order) * val))
        groups = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
                  "train": order[n_test + n_val:]}
        parts = {k: frame[frame.patient_id.isin(v)] for k, v in groups.items()}
        if all(_usable(p) for p in parts.values()):
            return parts
    raise NoTrainingData(
        f"cannot split {frame.exam_id.nunique()} labelled exams of {len(patients)} patients into "
        f"train/val/test with both classes and at least {MIN_EXAMS_PER_SPLIT} exams each"
    )


def _usable(part: pd.DataFrame) -> bool:
    exam_labels = part.groupby("exam_id").label.max()
    return len(exam_labels) >= MIN_EXAMS_PER_SPLIT and exam_labels.nunique() == 2


def to_split(part: pd.DataFrame, images: np.ndarray | None = None) -> Split:
    """The views of a split, their images loaded from the lake unless given [N, 1, H, W]."""
    if images is None:
        images = frozen.images(part)
    return Split(images=images, labels=part.label.to_numpy(np.float32),
                 exam_ids=part.exam_id.to_numpy(), laterality=part.laterality.to_numpy())
