"""Pixels of one synthetic mammogram: breast, tissue texture, pectoral muscle, lesions.

The image is drawn as attenuation (0 air, ~0.3 fat, ~0.75 dense tissue, above 1 for a
mass or calcification) in a canonical frame with the chest wall on the left, flipped for
right-breast views (chest wall on the right edge, nipple pointing left), then mapped
through the vendor's intensity curve, noise and bit depth. MONOCHROME1 stores the
inverse. Texture and lesion streams are independent, so the same exam drawn without its
findings differs only inside the lesions. A view listed in the plan's `burned_in_text` gets
the patient's name, MRN and birth date written into the air above the breast, readable in
the stored image, as a modality that burns in annotations would. A view the plan lists in
`artifacts` gets that artifact drawn in (`pipelines.synth.artifacts`). A degraded detector
(`VendorProfile.detector_degradation`) multiplies the signal by a smooth gain field that
belongs to the site's unit, so it sits at the same detector pixels every day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

import numpy as np

from pipelines.synth import artifacts
from pipelines.synth.exams import ExamPlan, Finding
from pipelines.synth.lesions import draw_finding
from pipelines.synth.seeding import rng_for
from pipelines.synth.sites import Geometry, VendorProfile

# Attenuation range that the vendor curve maps onto [air_level, air_level + signal_span].
_T_MAX = 1.35


@dataclasses.dataclass(frozen=True)
class BreastShape:
    """Half-ellipse against the chest wall, in canonical pixel coordinates."""

    depth_px: float  # semi-axis from the chest wall towards the nipple
    half_height_px: float  # vertical semi-axis
    center_row: float
    pectoral: tuple[float, float] | None  # (width, height) of the MLO muscle triangle


@dataclasses.dataclass(frozen=True)
class RenderedView:
    """Stored pixel values plus the window a viewer should open them with."""

    pixels: np.ndarray  # uint16, rows x cols, already inverted for MONOCHROME1
    window_center: int
    window_width: int
    lesions: tuple[tuple[int, int, int], ...]  # (row, col, radius) of drawn masses


def breast_shape(plan: ExamPlan, geometry: Geometry, side: str, position: str) -> BreastShape:
    """The breast outline of one view; both views of a side share the patient's size."""
    rng = rng_for("shape", *plan.key, side, position)
    size = plan.patient.size * float(rng.uniform(0.96, 1.04))
    rows, cols = geometry.rows, geometry.cols
    if position == "CC":
        return BreastShape(
            depth_px=cols * 0.78 * size,
            half_height_px=rows * 0.38 * size,
            center_row=rows * float(rng.uniform(0.47, 0.53)),
            pectoral=None,
        )
    pectoral = (cols * float(rng.uniform(0.3, 0.42)), rows * float(rng.uniform(0.35, 0.5)))
    return BreastShape(
        depth_px=cols * 0.82 * size,
        half_height_px=rows * 0.5 * size,
        center_row=rows * float(rng.uniform(0.44, 0.5)),
        pectoral=pectoral,
    )


def smooth_noise(rng: np.random.Generator, rows: int, cols: int, cell_px: float) -> np.ndarray:
    """Zero-mean unit-variance noise correlated over about `cell_px` pixels.

    Drawn on a coarse grid, blurred there and upsampled bilinearly with two gathers: a
    couple of milliseconds for a 512x416 image, where blurring at full size takes tens.
    """
    from scipy import ndimage

    cell = max(cell_px / 2.0, 1.0)
    grid_rows, grid_cols = int(np.ceil(rows / cell)) + 3, int(np.ceil(cols / cell)) + 3
    grid = ndimage.gaussian_filter(rng.standard_normal((grid_rows, grid_cols)), 1.0)
    grid = ((grid - grid.mean()) / (grid.std() + 1e-9)).astype(np.float32)
    rows_lower, rows_weight = _interpolation(rows, grid_rows)
    cols_lower, cols_weight = _interpolation(cols, grid_cols)
    weight = rows_weight[:, None]
    tall = grid[rows_lower] * (1.0 - weight) + grid[rows_lower + 1] * weight
    return tall[:, cols_lower] * (1.0 - cols_weight) + tall[:, cols_lower + 1] * cols_weight


@functools.lru_cache(maxsize=64)
def _interpolation(size: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower neighbour index and upper neighbour weight of `size` samples spread over `grid`."""
    position = np.linspace(0.0, grid - 1.0, size)
    lower = np.minimum(position.astype(np.int64), grid - 2)
    weight = (position - lower).astype(np.float32)
    lower.setflags(write=False)
    weight.setflags(write=False)
    return lower, weight


def tissue(
    plan: ExamPlan,
    profile: VendorProfile,
    geometry: Geometry,
    shape: BreastShape,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Attenuation of the breast without lesions, and the breast mask (canonical frame)."""
    rows, cols = geometry.rows, geometry.cols
    y = (np.arange(rows, dtype=np.float32)[:, None] - shape.center_row) / shape.half_height_px
    x = np.arange(cols, dtype=np.float32)[None, :] / shape.depth_px
    radius = np.sqrt(x * x + y * y)
    edge_px = (1.0 - radius) * min(shape.depth_px, shape.half_height_px)
    mask = radius < 1.0
    texture_mm = 9.0 * profile.texture_scale
    coarse = smooth_noise(rng, rows, cols, texture_mm / geometry.spacing_mm)
    fine = smooth_noise(rng, rows, cols, texture_mm / 4.0 / geometry.spacing_mm)
    # Fibroglandular tissue sits in a cone behind the nipple; density sets how much.
    cone = np.exp(-((y / 0.75) ** 2)) * np.exp(-(((x - 0.45) / 0.5) ** 2))
    bias = 2.2 - 4.0 * plan.density_level
    gland = cone / (1.0 + np.exp(bias - 1.0 * coarse - 0.6 * fine))
    thickness = np.sqrt(np.clip(edge_px / (0.12 * shape.depth_px), 0.0, 1.0))
    att = thickness * (0.3 + 0.42 * gland + 0.035 * fine * (0.4 + gland))
    skin_px = max(1.5 / geometry.spacing_mm, 0.7)
    att += 0.12 * np.exp(-((edge_px / skin_px) ** 2))
    if shape.pectoral is not None:
        width, height = shape.pectoral
        inside = (
            1.0
            - x * shape.depth_px / width
            - (y * shape.half_height_px + shape.center_row) / height
        )
        muscle = np.clip(inside * min(width, height) / max(3.0, 0.02 * cols), 0.0, 1.0)
        att = att * (1.0 - muscle) + muscle * (0.66 + 0.04 * fine + 0.03 * coarse)
    att = np.where(mask, att, 0.0).astype(np.float32)
    return att, mask


@functools.lru_cache(maxsize=16)
def detector_gain(site: str, profile: VendorProfile, rows: int, cols: int) -> np.ndarray | None:
    """The multiplicative gain field of a site's detector, in stored orientation, or None.

    A bicubic surface through a 4x4 grid of random values drawn from (site, vendor):
    low-frequency, the same every day and at every scale, mean 1 and peak-to-peak
    `profile.gain_nonuniformity`. None for a healthy detector, so its images are unchanged.
    """
    from scipy.interpolate import RectBivariateSpline

    amplitude = profile.gain_nonuniformity
    if amplitude <= 0.0:
        return None
    knots = np.linspace(0.0, 1.0, 4)
    values = rng_for("detector-gain", site.lower(), profile.key).standard_normal((4, 4))
    surface = RectBivariateSpline(knots, knots, values)(
        np.linspace(0.0, 1.0, rows), np.linspace(0.0, 1.0, cols)
    )
    field = (surface - surface.mean()) / max(float(np.ptp(surface)), 1e-9)
    gain = (1.0 + amplitude * field).astype(np.float32)
    gain.setflags(write=False)
    return gain


def to_stored(
    att: np.ndarray,
    mask: np.ndarray,
    profile: VendorProfile,
    rng: np.random.Generator,
    gain: np.ndarray | None = None,
) -> tuple[np.ndarray, int, int]:
    """Map attenuation to stored values of the vendor; returns (pixels, center, width).

    `gain` (same shape as `att`, in its frame) multiplies the signal before the noise.
    """
    norm = np.clip(att / _T_MAX, 0.0, 1.0) ** profile.gamma
    value = profile.air_level + profile.signal_span * norm
    if gain is not None:
        value = value * gain
    value += profile.noise * rng.standard_normal(att.shape, dtype=np.float32)
    stored = np.clip(value, 0.0, 1.0) * profile.max_value
    pixels = np.rint(stored).astype(np.uint16)
    sample = pixels[::4, ::4][mask[::4, ::4]]
    if sample.size == 0:
        low, high = 0.0, float(profile.max_value)
    else:
        low, high = (float(v) for v in np.percentile(sample, (5.0, 99.8)))
    center, width = int(round((low + high) / 2)), max(int(round((high - low) * 1.1)), 2)
    if profile.photometric == "MONOCHROME1":
        pixels = (profile.max_value - pixels).astype(np.uint16)
        center = profile.max_value - center
    return pixels, center, width


def render_view(
    plan: ExamPlan, profile: VendorProfile, geometry: Geometry, side: str, position: str
) -> RenderedView:
    """Draw one view ("R"/"L", "CC"/"MLO") of an exam, with its findings on that side.

    Returns:
        The stored pixels in the final orientation (R views: chest wall on the right).
    """
    artifact = plan.artifact(f"{side}-{position}")
    shape = breast_shape(plan, geometry, side, position)
    if artifact == "missing_pectoral":
        shape = dataclasses.replace(shape, pectoral=None)
    att, mask = tissue(plan, profile, geometry, shape, rng_for("tissue", *plan.key, side, position))
    lesions: list[tuple[int, int, int]] = []
    for number, finding in enumerate(plan.findings):
        if finding.side != side:
            continue
        center = lesion_center(finding, shape, position)
        lesion_rng = rng_for("lesion", *plan.key, number, position)
        radius = draw_finding(att, finding, center, geometry, lesion_rng)
        if finding.kind == "mass":
            lesions.append((int(round(center[0])), int(round(center[1])), radius))
    if f"{side}-{position}" in plan.burned_in_text:
        # in the air away from the chest wall, readable once the R view is mirrored below
        text = text_mask(burned_in_text(plan), att.shape, left=side == "R")
        att[text[:, ::-1] if side == "R" else text] = _T_MAX
    saturated = None
    if artifact:
        att, saturated = planted(artifact, att, mask, shape, geometry,
                                 rng_for("artifact-draw", *plan.key, side, position))
    gain = detector_gain(plan.site, profile, geometry.rows, geometry.cols)
    if gain is not None and side == "R":
        gain = gain[:, ::-1]  # the canonical frame of R views is mirrored; the detector is not
    pixels, center_value, width = to_stored(
        att, mask, profile, rng_for("noise", *plan.key, side, position), gain
    )
    if saturated is not None:
        artifacts.saturate(pixels, saturated, profile.max_value,
                           profile.photometric == "MONOCHROME1")
    if side == "R":
        pixels = np.ascontiguousarray(pixels[:, ::-1])
        lesions = [(r, geometry.cols - 1 - c, rad) for r, c, rad in lesions]
    return RenderedView(pixels, center_value, width, tuple(lesions))


def planted(
    code: str, att: np.ndarray, mask: np.ndarray, shape: BreastShape, geometry: Geometry,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The attenuation with artifact `code` drawn in, and the pixels it saturates (or None).

    A missing pectoral muscle is drawn by `tissue` (the shape has none), so it changes
    nothing here.
    """
    spacing = geometry.spacing_mm
    if code == "motion_blur":
        return artifacts.motion_blur(att, spacing, rng), None
    if code == "grid_lines":
        return artifacts.grid_lines(att, spacing, rng), None
    if code == "foreign_object":
        return att, artifacts.foreign_object(att.shape, shape, spacing, rng)
    if code == "clipped_exposure":
        return att, artifacts.clipped_region(att, mask, rng)
    return att, None


def lesion_center(finding: Finding, shape: BreastShape, position: str) -> tuple[float, float]:
    """(row, col) of a finding in the canonical frame of a view.

    The vertical image axis is lateral-medial in CC (lateral up) and superior-inferior in
    MLO (superior up), so one finding lands at a consistent place in both views.
    """
    vertical = finding.lat_med if position == "CC" else finding.sup_inf
    reach = np.sqrt(max(1.0 - finding.depth**2, 0.0)) * 0.7
    row = shape.center_row + vertical * reach * shape.half_height_px
    return float(row), float(finding.depth * shape.depth_px)


def burned_in_text(plan: ExamPlan) -> str:
    """The identifying annotation a careless modality burns in: name, MRN, birth date."""
    born = plan.patient.birth_date(dt.date.fromisoformat(plan.study_date))
    return f"{plan.patient.name.replace('^', ' ')}  {plan.patient.mrn}  {born:%Y%m%d}"


def text_mask(text: str, shape: tuple[int, int], left: bool = False) -> np.ndarray:
    """Where `text` covers an image of `shape`: one line near the top, in its right half
    (its left half if `left`)."""
    from PIL import Image, ImageDraw, ImageFont

    rows, cols = shape
    font = ImageFont.load_default(size=max(8, int(rows * 0.015)))
    canvas = Image.new("L", (cols, rows), 0)
    ImageDraw.Draw(canvas).text((int(cols * (0.03 if left else 0.5)), int(rows * 0.02)), text,
                                fill=255, font=font)
    return np.asarray(canvas) > 127
