"""What monitoring compares, per exam: acquisition metadata, image statistics, the
model's embedding and its score.

The unit is the exam, never the view: the four views of one woman are correlated, and a
test that counted them as four samples would see drift in every ordinary night. Numbers
are averaged over the exam's views; categorical values are the exam's first view's.

Image statistics are taken on the model input (cropped, resized, [0, 1]), the image the
model sees, so the nightly values and those of the reference (the lake's preprocessed
validation views) are computed from the same representation.

The screening run writes a night's features (pipelines/screening/capture.py) to
`night_path`; monitoring reads them with `read_night`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.config import get_settings
from pipelines.errors import PermanentError

if TYPE_CHECKING:
    import pandas as pd
    from pydicom import Dataset

CATEGORICAL = ("manufacturer", "model_name", "software_version")
NUMERIC = ("kvp", "exposure_mas", "body_part_thickness_mm", "compression_force_n", "pixel_spacing_mm")
IMAGE_STATS = ("img_mean", "img_std", "img_p05", "img_p50", "img_p95", "img_breast_share", "img_noise",
               "img_gradient")
EMBEDDING_PREFIX = "emb_"
TISSUE_LEVEL = 0.1  # model-input intensity above which a pixel counts as breast tissue


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):  # multi-valued (SoftwareVersions)
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _number(ds: Dataset, keyword: str) -> float:
    value = ds.get(keyword)
    try:
        if value is not None and not isinstance(value, str) and hasattr(value, "__getitem__"):
            value = value[0]  # PixelSpacing: row spacing
        return float(value) if value not in (None, "") else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def header_values(ds: Dataset) -> dict[str, Any]:
    """The acquisition metadata of one view (device identity without serial numbers)."""
    micro_as = _number(ds, "ExposureInuAs")
    spacing = _number(ds, "PixelSpacing")
    return {
        "manufacturer": _text(ds, "Manufacturer") or "UNKNOWN",
        "model_name": _text(ds, "ManufacturerModelName") or "UNKNOWN",
        "software_version": _text(ds, "SoftwareVersions") or "UNKNOWN",
        "kvp": _number(ds, "KVP"),
        "exposure_mas": micro_as / 1000 if np.isfinite(micro_as) else _number(ds, "Exposure"),
        "body_part_thickness_mm": _number(ds, "BodyPartThickness"),
        "compression_force_n": _number(ds, "CompressionForce"),
        "pixel_spacing_mm": spacing if np.isfinite(spacing) else _number(ds, "ImagerPixelSpacing"),
    }


def image_stats(image: np.ndarray) -> dict[str, float]:
    """Intensity, contrast, noise and sharpness summaries of a model input [H, W] in [0, 1]."""
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float64)
    p05, p50, p95 = np.percentile(img, [5, 50, 95])
    # Immerkaer (1996): noise sigma from a Laplacian-difference kernel, robust to structure
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    inner = ndimage.convolve(img, kernel, mode="reflect")[1:-1, 1:-1]
    noise = float(np.sqrt(np.pi / 2) * np.abs(inner).mean() / 6) if inner.size else 0.0
    gy, gx = np.gradient(img)
    return {"img_mean": float(img.mean()), "img_std": float(img.std()), "img_p05": float(p05),
            "img_p50": float(p50), "img_p95": float(p95),
            "img_breast_share": float((img > TISSUE_LEVEL).mean()), "img_noise": noise,
            "img_gradient": float(np.hypot(gx, gy).mean())}


def exam_row(exam_id: str, headers: Sequence[Dataset], images: Sequence[np.ndarray],
             embeddings: np.ndarray | None, score: float | None) -> dict[str, Any]:
    """One exam's monitoring features from its views' headers, model inputs and embeddings [V, C]."""
    views = [header_values(h) for h in headers]
    stats = [image_stats(i) for i in images]
    row: dict[str, Any] = {"exam_id": exam_id}
    first = views[0] if views else {}
    for key in CATEGORICAL:
        row[key] = first.get(key, "UNKNOWN")
    row["device"] = f"{row['manufacturer']} {row['model_name']}".strip()
    for key in NUMERIC:
        values = np.array([v[key] for v in views], dtype=np.float64)
        row[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    for key in IMAGE_STATS:
        row[key] = float(np.mean([s[key] for s in stats])) if stats else float("nan")
    if embeddings is not None and len(embeddings):
        for i, value in enumerate(np.asarray(embeddings, dtype=np.float64).mean(axis=0)):
            row[f"{EMBEDDING_PREFIX}{i}"] = float(value)
    row["score"] = float(score) if score is not None else float("nan")
    return row


def frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Exam rows as a frame, columns in a stable order."""
    import pandas as pd

    out = pd.DataFrame(list(rows))
    if out.empty:
        return pd.DataFrame(columns=["exam_id", "device", *CATEGORICAL, *NUMERIC, *IMAGE_STATS, "score"])
    embedding = sorted((c for c in out.columns if c.startswith(EMBEDDING_PREFIX)),
                       key=lambda c: int(c[len(EMBEDDING_PREFIX):]))
    return out[["exam_id", "device", *CATEGORICAL, *NUMERIC, *IMAGE_STATS, *embedding, "score"]]


def embedding_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if str(c).startswith(EMBEDDING_PREFIX)]


def night_path(task: str, study_date: str, model_version: str) -> Path:
    return get_settings().store / "monitoring" / "nights" / task / study_date / f"{model_version}.parquet"


def read_night(task: str, study_date: str, model_version: str) -> pd.DataFrame:
    """The night's features.

    Raises:
        PermanentError: the night was screened without them (rerun `radflow screen --date`).
    """
    import pandas as pd

    path = night_path(task, study_date, model_version)
    if not path.exists():
        raise PermanentError(f"no monitoring features for {task} {study_date} (model version "
                             f"{model_version}): rerun `radflow screen --date {study_date} --task {task}`")
    return pd.read_parquet(path)
