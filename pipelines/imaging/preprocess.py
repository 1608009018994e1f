"""DICOM pixels to the model's input: one function used by ingest, training and Triton.

Steps: modality LUT, VOI LUT or window, MONOCHROME1 inverted, chest wall to the left
(right-breast images are mirrored), scaled to [0, 1], resized to the configured size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import InvalidStudy

if TYPE_CHECKING:
    from pydicom import Dataset


def display_pixels(ds: Dataset) -> np.ndarray:
    """The image as displayed (float32, bright = dense), before orientation and resizing.

    Raises:
        InvalidStudy: the pixel data cannot be decoded.
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        raw = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for undecodable pixel data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise InvalidStudy(f"pixel data cannot be decoded (transfer syntax {syntax}): {exc}") from exc
    if raw.ndim != 2:
        raise InvalidStudy(f"expected a single-frame 2-D image, got shape {raw.shape}")
    arr = apply_modality_lut(raw, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds, prefer_lut=True)
    arr = np.asarray(arr, dtype=np.float32)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")) == "MONOCHROME1":
        arr = arr.max() - arr
    return arr


def canonical(arr: np.ndarray, laterality: str) -> np.ndarray:
    """Mirror right-breast images so the chest wall is on the left for every view."""
    return arr[:, ::-1] if laterality == "R" else arr


def rescale(arr: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (a constant image becomes all zeros)."""
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo < 1e-6:
        return np.zeros_like(arr, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bilinear resize of a float image."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def preprocess(ds: Dataset, laterality: str, height: int, width: int) -> np.ndarray:
    """The model input of one view: float32 [height, width] in [0, 1]."""
    arr = canonical(display_pixels(ds), laterality)
    return np.clip(resize(rescale(arr), height, width), 0.0, 1.0)
