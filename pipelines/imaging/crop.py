"""Crop a mammogram to the breast: the bounding box of the largest bright region.

Air is dark once the image is displayed (MONOCHROME1 already inverted), the breast is
the biggest connected bright region, and what else is bright in the background (lead
markers, laterality letters, burned-in labels, a paddle edge) is small and apart from it.
"""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]  # top, bottom, left, right (half-open, like slices)

# Below this share of the image the "largest region" is noise, not a breast: keep it all.
MIN_BREAST_FRACTION = 0.01
# Work on an image of at most this many rows: the box needs no more resolution.
WORK_ROWS = 512


def otsu_threshold(arr: np.ndarray, bins: int = 256) -> float:
    """The threshold that best separates the histogram into two classes (Otsu)."""
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo < 1e-12:
        return hi
    hist, edges = np.histogram(arr, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist).astype(np.float64)
    mass = np.cumsum(hist * centers)
    total_w, total_m = weight[-1], mass[-1]
    back, fore = weight[:-1], total_w - weight[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_m * back / total_w - mass[:-1]) ** 2 / (back * fore) * total_w
    between = np.nan_to_num(between, nan=-1.0)
    return float(edges[1:][int(np.argmax(between))])


def breast_mask(arr: np.ndarray) -> np.ndarray:
    """The largest connected region above the Otsu threshold (empty if none is large enough)."""
    from scipy import ndimage

    bright = arr > otsu_threshold(arr)
    # An opening cuts thin bridges (a marker touching the skin line, a text stroke).
    bright = ndimage.binary_opening(bright, structure=np.ones((3, 3), dtype=bool))
    labels, count = ndimage.label(bright)
    if count == 0:
        return np.zeros_like(bright)
    sizes = np.bincount(labels.ravel())[1:]
    biggest = int(np.argmax(sizes)) + 1
    if sizes[biggest - 1] < MIN_BREAST_FRACTION * arr.size:
        return np.zeros_like(bright)
    return np.asarray(labels == biggest)


def breast_box(arr: np.ndarray, margin: float = 0.02) -> Box:
    """Bounding box of the breast, grown by `margin` (a fraction of each side), in `arr`'s pixels.

    Falls back to the whole image when no region is large enough (a blank or unusual image
    is kept whole rather than cropped to noise).
    """
    rows, cols = arr.shape
    step = max(1, int(np.ceil(rows / WORK_ROWS)))
    mask = breast_mask(arr[::step, ::step])
    if not mask.any():
        return 0, rows, 0, cols
    ys, xs = np.nonzero(mask)
    top, bottom = int(ys.min()) * step, min(rows, (int(ys.max()) + 1) * step)
    left, right = int(xs.min()) * step, min(cols, (int(xs.max()) + 1) * step)
    dy, dx = int(round(margin * rows)), int(round(margin * cols))
    return max(0, top - dy), min(rows, bottom + dy), max(0, left - dx), min(cols, right + dx)


def crop_to_breast(arr: np.ndarray, margin: float = 0.02) -> np.ndarray:
    """`arr` cut to `breast_box(arr, margin)` (a view, not a copy)."""
    top, bottom, left, right = breast_box(arr, margin)
    return arr[top:bottom, left:right]
