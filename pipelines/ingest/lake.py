"""The image lake: per-exam folders published by one rename, a manifest snapshot."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.imaging.storage import to_lake

if TYPE_CHECKING:
    import pandas as pd


def exam_dir(lake: Path, study_date: str, exam_id: str) -> Path:
    return lake / "images" / f"study_date={study_date}" / exam_id


def publish_exam(lake: Path, study_date: str, exam_id: str, views: dict[str, np.ndarray],
                 headers: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write the views (and their de-identified DICOM JSON headers) to a staging folder,
    then swap it in with renames.

    A crash leaves either the old folder or the new one, never a half-written exam.
    """
    final = exam_dir(lake, study_date, exam_id)
    staging = lake / ".staging" / f"{exam_id}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    for view, arr in views.items():
        np.save(staging / f"{view}.npy", to_lake(arr))  # uint16 fixed point, see storage.py
    for view, header in (headers or {}).items():
        (staging / f"{view}.dcm.json").write_text(json.dumps(header, sort_keys=True))
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        trash = lake / ".staging" / f"old-{exam_id}-{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
        os.replace(staging, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, final)
    return final


def write_manifest(lake: Path, frame: pd.DataFrame) -> Path:
    """Publish the manifest snapshot (parquet) atomically."""
    path = lake / "manifest" / "manifest.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{uuid.uuid4().hex[:8]}")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def clear_staging(lake: Path) -> int:
    """Remove what a crashed run left in the staging folder (call with the ingest lock held)."""
    staging = lake / ".staging"
    if not staging.is_dir():
        return 0
    leftovers = list(staging.iterdir())
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return len(leftovers)
