"""The image lake: per-exam folders published by one rename, a manifest snapshot."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.imaging.storage import to_lake
from pipelines.layout import exam_dir
from pipelines.publish import publish_dir, write_file

if TYPE_CHECKING:
    import pandas as pd

STAGING = ".staging"  # under the lake: half-written exams and replaced ones on their way out


def publish_exam(lake: Path, study_date: str, exam_id: str, views: dict[str, np.ndarray],
                 headers: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write the views (and their de-identified DICOM JSON headers) to a staging folder,
    then swap it in with renames.

    A crash leaves either the old folder or the new one, never a half-written exam.
    """
    final = exam_dir(lake, study_date, exam_id)
    # staged under the lake's own .staging folder, which clear_staging empties after a crash
    with publish_dir(final, staging_root=lake / STAGING, prefix=f"{exam_id}-") as staging:
        for view, arr in views.items():
            save_view(staging / f"{view}.npy", to_lake(arr))  # uint16 fixed point, see storage.py
        for view, header in (headers or {}).items():
            (staging / f"{view}.dcm.json").write_text(json.dumps(header, sort_keys=True))
    return final


def save_view(path: Path, arr: np.ndarray) -> None:
    """`np.save` through Python's file writes. numpy writes an array to a real file with
    fwrite (`ndarray.tofile`), which reports a full disk as a short write without an errno
    ("12288 requested and 8128 written"); Python's writes raise OSError(ENOSPC), which
    publishing turns into DiskFull naming the path."""
    buffer = io.BytesIO()
    np.save(buffer, arr)
    path.write_bytes(buffer.getbuffer())


def write_manifest(lake: Path, frame: pd.DataFrame) -> Path:
    """Publish the manifest snapshot (parquet) atomically."""
    return write_file(lake / "manifest" / "manifest.parquet",
                      lambda tmp: frame.to_parquet(tmp, index=False))


def clear_staging(lake: Path) -> int:
    """Remove what a crashed run left in the staging folder (call with the ingest lock held)."""
    staging = lake / STAGING
    if not staging.is_dir():
        return 0
    leftovers = list(staging.iterdir())
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return len(leftovers)
