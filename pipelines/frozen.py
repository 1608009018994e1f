"""Read a published dataset version: its DVC hash and its patient-level splits.

Training and evaluation read the frozen dataset, not the live manifest, so the version
they are tagged with is exactly the data they saw.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from pipelines.errors import NoTrainingData
from pipelines.imaging.storage import from_lake
from pipelines.layout import MANIFEST, SPLITS, dataset_dir, version_file


@dataclasses.dataclass(frozen=True)
class FrozenDataset:
    """A dataset version: `splits[name]` has `image_path` (absolute) for every view."""

    name: str
    version: str
    contract: str
    splits: dict[str, pd.DataFrame]


def published_version(name: str = "mammo") -> str | None:
    """The DVC hash of the published version of `name`, or None before the first build."""
    path = version_file(name)
    return str(json.loads(path.read_text())["version"]) if path.exists() else None


def load(name: str = "mammo") -> FrozenDataset:
    """The published version of dataset `name`, split into train / val / test frames.

    Raises:
        NoTrainingData: the dataset has not been built yet.
    """
    folder, version = dataset_dir(name), published_version(name)
    if version is None or not (folder / MANIFEST).exists():
        raise NoTrainingData(f"no dataset {name!r}: run `radflow build-dataset` first")
    rows = pd.read_parquet(folder / MANIFEST)
    rows["image_path"] = [str(folder / f) for f in rows.image_file]
    contract = str(json.loads(version_file(name).read_text()).get("contract", ""))
    splits = {s: rows[rows.split == s].sort_values(["exam_id", "view"]).reset_index(drop=True)
              for s in SPLITS}
    return FrozenDataset(name=name, version=version, contract=contract, splits=splits)


def images(rows: pd.DataFrame) -> np.ndarray:
    """The model inputs [N, 1, H, W] float32 of view rows, from their `image_path` files."""
    return np.stack([from_lake(np.load(p)) for p in rows.image_path])[:, None]


def load_split(name: str, split: str) -> tuple[pd.DataFrame, np.ndarray, str]:
    """The rows and [N, 1, H, W] float32 images of `split`, and the dataset version."""
    dataset = load(name)
    rows = dataset.splits[split]
    if rows.empty:
        raise NoTrainingData(f"dataset {name!r} has no {split} rows")
    return rows, images(rows), dataset.version
