"""Image QC of one screening view: measured features and the artifacts they reveal.

`assess` measures the displayed view (what `preprocess.view_pixels` returns) and flags a
problem for each measured feature past its limit in `QcLimits`. A flagged view is
discounted from its exam's score, and each flag's reason says what was measured against
which limit, for the radiologist reading the worklist.

Features (`ViewQc.features`; intensities are shares of the display range, sizes shares
of the image height):
    breast_share: share of the image covered by the breast (body mask, holes filled).
    foreign_object_contrast: edge contrast of the most metal-like compact bright object
        on or next to the breast (0 if none): its mean minus a ring just outside.
    foreign_object_size: that object's diameter (0 if none).
    sharpness: fine-band gradient energy of the breast over its fine-band variance, both
        with the pixel noise's share taken out (falls with blur).
    blur_anisotropy: weakest over strongest directional fine-band gradient energy above
        the noise (0-1); the band is about 0.5-1 mm (a share of the image height), so the
        same motion reads alike on every detector and matrix size.
    grid_peak: strongest narrow peak of the row/column profile spectra over the median.
    grid_period_px: the period of that peak in working pixels.
    text_glyphs: characters of burned-in text found outside the breast.
    clipped_high_share: share of breast pixels at the display maximum (saturated).
    clipped_low_share: share of breast pixels at the display minimum (burned out).
    pectoral_contrast: MLO only; chest-wall top corner minus breast median, over the
        breast's 10-90% spread (-1 if the corner is empty).

How the default limits were chosen is written beside each; `tests/unit/test_qc.py`
measures detection and false flags on synthetic views with planted artifacts.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipelines.domain import QcFlag, ViewQc
from pipelines.imaging import qc_features as measure
from pipelines.imaging.burned_in import body_mask, find_text_lines
from pipelines.imaging.crop import otsu_threshold
from pipelines.imaging.preprocess import canonical

# Measurements run on an image of about this many rows (block means), text on the display.
MEASURE_ROWS = 512
# Foreign objects are looked for on the breast and this far around it (share of the height):
# a skin marker sits where the displayed skin line has faded into the background.
NEAR_BREAST = 0.04


@dataclasses.dataclass(frozen=True)
class QcLimits:
    """Where a measured feature becomes a flag (see the module docstring for the units).

    Defaults were set from features measured on 4 vendors' synthetic views at working
    resolution (`tests/unit/test_qc.py` prints the distributions): each limit lies between
    the worst clean view and the weakest planted artifact, nearer the clean side where a
    real artifact is more varied than a synthetic one.
    """

    foreign_object_contrast: float = 0.25
    foreign_object_min_size: float = 0.006  # about 1.5 mm on a 24 cm tall image
    foreign_object_max_size: float = 0.1  # larger bright areas are exposure, not metal
    # clean views >= 0.76 (GE at 0.125 scale), planted 3-5 mm blur <= 0.71, all vendors and scales
    min_blur_balance: float = 0.75
    max_grid_peak: float = 80.0  # views without lines <= 76, planted lines >= 98
    min_text_glyphs: int = 6
    max_clipped_share: float = 0.05
    min_pectoral_contrast: float = 0.3


def assess(display: np.ndarray, mirror: bool, view: str, limits: QcLimits = QcLimits()) -> ViewQc:
    """Measure one view and flag its artifacts.

    Args:
        display: the view as displayed (float, bright = dense, stored orientation), at
            working resolution (`preprocess.view_pixels`).
        mirror: whether the chest wall is on the right (`preprocess.chest_wall_is_right`).
        view: the view label, "R-CC", "L-MLO", ...; a missing pectoral muscle is looked
            for on MLO views only.
        limits: the limits to flag at.

    Returns:
        The features and one flag per artifact found (in QC_CODES order).

    Raises:
        ValueError: `display` is not a 2-D image of at least 32 x 32 pixels.
    """
    if display.ndim != 2 or min(display.shape) < 32:
        raise ValueError(f"QC needs a 2-D image of at least 32x32 pixels, got {display.shape}")
    image = np.asarray(canonical(display, mirror), dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    if high - low < 1e-6:
        return ViewQc(view=view, features={"breast_share": 0.0})
    step = max(1, image.shape[0] // MEASURE_ROWS)
    image = (image - low) / (high - low)
    work = measure.block_mean(image, step)
    body = body_mask(work, otsu_threshold(work[::2, ::2]))
    features = measurements(image, work, body, view, limits)
    features["text_glyphs"] = float(_text_glyphs(display, limits))
    return ViewQc(view=view, features=features, flags=flags(features, limits))


def measurements(
    image: np.ndarray, work: np.ndarray, body: np.ndarray, view: str, limits: QcLimits
) -> dict[str, float]:
    """Every feature but the text.

    Args:
        image: the canonical view scaled to [0, 1] over its display range.
        work: `image` block-averaged to about MEASURE_ROWS rows.
        body: the breast in `work` (holes filled).
        view: the view label.
        limits: the limits (sizes of foreign objects; clipping that rules them out).
    """
    from scipy import ndimage

    high, low = measure.clipped_shares(work, body)
    shrink = max(1, int(0.03 * work.shape[0]))
    interior = ndimage.binary_erosion(body, iterations=shrink) & (work < measure.METAL_LEVEL)
    sharp, anisotropy = measure.sharpness(work, interior, work.shape[0] / MEASURE_ROWS)
    peak, period = measure.grid_peak(work, body)
    features = {
        "breast_share": float(body.mean()),
        "foreign_object_contrast": 0.0,
        "foreign_object_size": 0.0,
        "sharpness": sharp,
        "blur_anisotropy": anisotropy,
        "grid_peak": peak,
        "grid_period_px": period,
        "clipped_high_share": high,
        "clipped_low_share": low,
    }
    # A saturated breast breaks into bright islands: they are the exposure, not metal.
    if high + low <= limits.max_clipped_share:
        grow = max(1, int(NEAR_BREAST * work.shape[0]))
        near = ndimage.binary_dilation(body, iterations=grow)
        step = image.shape[0] // work.shape[0]
        near = np.pad(near.repeat(step, axis=0).repeat(step, axis=1),
                      ((0, image.shape[0] - step * near.shape[0]),
                       (0, image.shape[1] - step * near.shape[1])), mode="edge")
        found = measure.bright_object(image, near, limits.foreign_object_min_size,
                                      limits.foreign_object_max_size)
        features["foreign_object_contrast"] = found.contrast
        features["foreign_object_size"] = found.size
    if view.upper().endswith("MLO"):
        features["pectoral_contrast"] = measure.pectoral_contrast(work, body)
    return features


def _text_glyphs(display: np.ndarray, limits: QcLimits) -> int:
    """Characters on burned-in text lines outside the breast (a busy background: the limit,
    since text cannot be ruled out there)."""
    from pipelines.errors import InvalidStudy

    try:
        lines = find_text_lines(display, min_glyphs=limits.min_text_glyphs)
    except InvalidStudy:
        return limits.min_text_glyphs
    return sum(line.glyphs for line in lines)


def flags(features: dict[str, float], limits: QcLimits) -> tuple[QcFlag, ...]:
    """The flags the features raise, each with its reason in words (QC_CODES order)."""
    found: list[QcFlag] = []
    contrast = features.get("foreign_object_contrast", 0.0)
    if contrast >= limits.foreign_object_contrast:
        size = features.get("foreign_object_size", 0.0)
        found.append(QcFlag("foreign_object", (
            f"foreign object: metal-bright round object {100 * size:.1f}% of the image high "
            f"with edge contrast {contrast:.2f} above {limits.foreign_object_contrast:.2f}"),
            contrast))
    peak = features.get("grid_peak", 0.0)
    balance = features.get("blur_anisotropy", 1.0)
    clipped = features.get("clipped_high_share", 0.0) + features.get("clipped_low_share", 0.0)
    # Lines make detail directional and saturation erases it: then blur cannot be told.
    measurable = peak <= limits.max_grid_peak and clipped <= limits.max_clipped_share
    if balance < limits.min_blur_balance and measurable:
        found.append(QcFlag("motion_blur", (
            f"motion blur: fine detail in the weakest direction {balance:.2f} of the strongest, "
            f"below {limits.min_blur_balance:.2f}"), balance))
    if peak > limits.max_grid_peak:
        found.append(QcFlag("grid_lines", (
            f"grid lines: periodic lines every {features.get('grid_period_px', 0.0):.1f} pixels, "
            f"{peak:.0f} times the background spectrum, above {limits.max_grid_peak:.0f}"), peak))
    glyphs = features.get("text_glyphs", 0.0)
    if glyphs >= limits.min_text_glyphs:
        found.append(QcFlag("burned_in_text", (
            f"burned-in text: {glyphs:.0f} characters outside the breast, at least "
            f"{limits.min_text_glyphs} on one line"), glyphs))
    if clipped > limits.max_clipped_share:
        found.append(QcFlag("clipped_exposure", (
            f"clipped exposure: {100 * clipped:.1f}% of breast pixels saturated or burned "
            f"out, above {100 * limits.max_clipped_share:.1f}%"), clipped))
    pectoral = features.get("pectoral_contrast")
    if pectoral is not None and pectoral < limits.min_pectoral_contrast:
        found.append(QcFlag("missing_pectoral", (
            f"missing pectoral muscle: chest-wall corner contrast {pectoral:.2f} below "
            f"{limits.min_pectoral_contrast:.2f}"), pectoral))
    return tuple(found)
