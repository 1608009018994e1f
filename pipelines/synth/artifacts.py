"""Image artifacts planted into synthetic views, so QC tests know the truth.

An exam drawn with `artifact_rate` gets, with that probability, one artifact on one view:
a metal foreign object (a button or a ring, a few mm, over the breast or on the skin line),
motion blur (the tissue smeared along one axis by 3-5 mm), grid lines (faint periodic
lines across the whole detector), clipped exposure (15-35% of the breast at the detector's
saturation value) or a missing pectoral muscle (MLO only: the muscle triangle is not drawn).
Burned-in text has its own rate (`burned_in_text_rate`). The choice comes from its own
random stream, so an exam without an artifact is byte-identical to one drawn at rate 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipelines.synth.seeding import rng_for

if TYPE_CHECKING:
    from pipelines.synth.images import BreastShape

# The QC codes (pipelines.domain.QC_CODES) that `artifact_rate` plants.
ARTIFACT_CODES: tuple[str, ...] = (
    "foreign_object", "motion_blur", "grid_lines", "clipped_exposure", "missing_pectoral",
)
MLO_ONLY = frozenset({"missing_pectoral"})


def plan_artifacts(
    seed: int, site: str, study_date: str, index: int, rate: float
) -> tuple[tuple[str, str], ...]:
    """The (view, code) planted in exam `index`: none, or one with probability `rate`.

    The code is drawn first, uniformly from ARTIFACT_CODES; the view among those it can
    appear on (MLO views for a missing pectoral muscle).
    """
    from pipelines.domain import SCREENING_VIEWS

    if rate <= 0.0:
        return ()
    rng = rng_for("artifact", seed, site, study_date, index)
    if rng.random() >= rate:
        return ()
    code = str(rng.choice(ARTIFACT_CODES))
    views = [v for v in SCREENING_VIEWS if code not in MLO_ONLY or v.endswith("MLO")]
    return ((str(rng.choice(views)), code),)


def motion_blur(att: np.ndarray, spacing_mm: float, rng: np.random.Generator) -> np.ndarray:
    """`att` smeared along one image axis by 3-5 mm (a box blur: uniform motion)."""
    from scipy import ndimage

    length = max(3, int(round(float(rng.uniform(3.0, 5.0)) / spacing_mm)))
    axis = int(rng.integers(2))
    return np.asarray(ndimage.uniform_filter1d(att, size=length, axis=axis, mode="nearest"))


def grid_lines(att: np.ndarray, spacing_mm: float, rng: np.random.Generator) -> np.ndarray:
    """`att` plus faint lines across the detector, 1.5-3 mm apart, vertical or horizontal."""
    period_px = max(4.0, float(rng.uniform(1.5, 3.0)) / spacing_mm)
    amplitude = float(rng.uniform(0.03, 0.045))
    axis = int(rng.integers(2))
    position = np.arange(att.shape[1 - axis], dtype=np.float32)
    lines = ((position / period_px) % 1.0 < 0.3).astype(np.float32) * amplitude
    return att + (lines[None, :] if axis == 0 else lines[:, None])


def foreign_object(
    shape: tuple[int, int], breast: BreastShape, spacing_mm: float, rng: np.random.Generator
) -> np.ndarray:
    """Where a metal button (disc) or ring lies: over the breast, or on its skin line.

    Args:
        shape: (rows, cols) of the canonical image.
        breast: the view's breast outline (chest wall on the left).
        spacing_mm: pixel spacing.
        rng: the artifact's random stream.

    Returns:
        A boolean image: the pixels the metal covers (they saturate the detector).
    """
    radius = max(2.0, float(rng.uniform(2.0, 5.0)) / spacing_mm)
    inner = 0.55 * radius if rng.random() < 0.5 else 0.0  # a ring or a button
    if rng.random() < 0.5:  # on the skin line (just inside the outline: the skin fades)
        angle, reach = float(rng.uniform(-1.1, 1.1)), float(rng.uniform(0.92, 0.97))
        x, y = reach * float(np.cos(angle)), reach * float(np.sin(angle))
    else:  # over the breast
        x, y = float(rng.uniform(0.2, 0.7)), float(rng.uniform(-0.6, 0.6))
    row = breast.center_row + y * breast.half_height_px
    col = x * breast.depth_px
    row = float(np.clip(row, radius, shape[0] - 1 - radius))
    col = float(np.clip(col, radius, shape[1] - 1 - radius))
    yy, xx = np.ogrid[0:shape[0], 0:shape[1]]
    top, bottom = int(row - radius) - 1, int(row + radius) + 2
    left, right = int(col - radius) - 1, int(col + radius) + 2
    region = np.zeros(shape, dtype=bool)
    dist = np.sqrt((yy[max(top, 0):bottom] - row) ** 2 + (xx[:, max(left, 0):right] - col) ** 2)
    region[max(top, 0):bottom, max(left, 0):right] = (dist <= radius) & (dist >= inner)
    return region


def clipped_region(att: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The densest 15-35% of the breast: the pixels an overexposed detector saturates."""
    share = float(rng.uniform(0.15, 0.35))
    level = float(np.quantile(att[mask], 1.0 - share)) if mask.any() else np.inf
    return mask & (att >= level)


def saturate(pixels: np.ndarray, region: np.ndarray, max_value: int, monochrome1: bool) -> None:
    """Set `region` of the stored pixels, in place, to the value displayed brightest: the
    largest stored value, or 0 for MONOCHROME1 (which stores the inverse)."""
    pixels[region] = 0 if monochrome1 else max_value
