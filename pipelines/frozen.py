"""Read a published dataset version: its DVC hash and its patient-level splits.

Training and evaluation read the frozen dataset, not the live manifest, so the version
they are tagged with is exactly the data they saw.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
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

    A build swaps the dataset's files in before it records their version: files that are
    not the recorded version's (the manifest's SHA-256 differs) are refused, never labelled
    with the version before them.

    Raises:
        NoTrainingData: the dataset has not been built yet, or its files are not those of its
            recorded version (a build was killed before recording its own, or is publishing).
    """
    folder, path = dataset_dir(name), version_file(name)
    if not path.exists() or not (folder / MANIFEST).exists():
        raise NoTrainingData(f"no dataset {name!r}: run `radflow build-dataset` first")
    info = json.loads(path.read_text())
    version, manifest = str(info["version"]), (folder / MANIFEST).read_bytes()
    recorded = info.get("manifest_sha256")  # absent from the records of older builds
    if recorded and hashlib.sha256(manifest).hexdigest() != recorded:
        raise NoTrainingData(f"dataset {name!r}: its files are not those of its recorded version "
                             f"{version[:12]} (a build was interrupted before recording its own, or "
                             "is publishing now): run `radflow build-dataset`")
    rows = pd.read_parquet(io.BytesIO(manifest))
    rows["image_path"] = [str(folder / f) for f in rows.image_file]
    contract = str(info.get("contract", ""))
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
