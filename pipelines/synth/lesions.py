"""Lesions drawn into an attenuation image: masses, spicules, calcifications, benign blobs.

Each is computed on a small patch around its centre, so a lesion costs well under a
millisecond at the default scale.
"""

from __future__ import annotations

import numpy as np

from pipelines.synth.exams import Finding
from pipelines.synth.sites import Geometry


def draw_finding(
    att: np.ndarray,
    finding: Finding,
    center: tuple[float, float],
    geometry: Geometry,
    rng: np.random.Generator,
) -> int:
    """Add one finding to `att` in place.

    Args:
        att: attenuation image (canonical frame), modified in place.
        finding: what to draw.
        center: (row, col) of the lesion centre in `att`.
        geometry: the image matrix (the radius is a fraction of its width).
        rng: the lesion's random stream (margin shape, spicules, dots).

    Returns:
        The lesion radius in pixels.
    """
    radius = max(finding.radius * geometry.cols, 1.5)
    reach = radius * (2.4 if finding.spiculated else 1.4)
    patch, dy, dx = _patch(att, center, reach)
    if patch.size == 0:
        return int(round(radius))
    dist = np.sqrt(dy * dy + dx * dx)
    if finding.kind == "benign":
        patch += finding.contrast * np.exp(-((dist / radius) ** 4))
        return int(round(radius))
    theta = np.arctan2(dy, dx)
    margin = np.full_like(dist, radius)
    for harmonic in range(2, 7):
        amplitude = float(rng.uniform(0.04, 0.16)) / harmonic * 2
        margin += radius * amplitude * np.cos(harmonic * theta + float(rng.uniform(0, 6.3)))
    core = np.clip((margin - dist) / (0.25 * radius), 0.0, 1.0)
    core = core * core * (3.0 - 2.0 * core)
    patch += finding.contrast * core * (0.85 + 0.15 * np.clip(1.0 - dist / radius, 0.0, 1.0))
    if finding.spiculated:
        spicules = _spicules(dist, theta, radius, rng)
        patch += 0.45 * finding.contrast * spicules * (1.0 - core)
    if finding.calcifications:
        _calcifications(patch, dy, dx, radius, rng)
    return int(round(radius))


def _patch(
    att: np.ndarray, center: tuple[float, float], reach: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A view of `att` around `center` plus row and column offsets from the centre."""
    rows, cols = att.shape
    top = max(int(np.floor(center[0] - reach)), 0)
    bottom = min(int(np.ceil(center[0] + reach)) + 1, rows)
    left = max(int(np.floor(center[1] - reach)), 0)
    right = min(int(np.ceil(center[1] + reach)) + 1, cols)
    patch = att[top:bottom, left:right]
    dy = (np.arange(top, bottom, dtype=np.float32) - np.float32(center[0]))[:, None]
    dx = (np.arange(left, right, dtype=np.float32) - np.float32(center[1]))[None, :]
    shape = patch.shape
    return patch, np.broadcast_to(dy, shape), np.broadcast_to(dx, shape)


def _spicules(
    dist: np.ndarray, theta: np.ndarray, radius: float, rng: np.random.Generator
) -> np.ndarray:
    """Thin bright lines radiating from the mass margin, fading with length."""
    result = np.zeros_like(dist)
    width = max(0.05 * radius, 0.6)
    for _ in range(int(rng.integers(8, 15))):
        angle = float(rng.uniform(0, 2 * np.pi))
        length = radius * float(rng.uniform(1.6, 2.4))
        along = dist * np.cos(theta - angle)
        across = dist * np.abs(np.sin(theta - angle))
        fade = np.clip((length - along) / (length - 0.7 * radius), 0.0, 1.0) * (along > 0)
        result = np.maximum(result, fade * np.exp(-((across / width) ** 2)))
    return result


def _calcifications(
    patch: np.ndarray, dy: np.ndarray, dx: np.ndarray, radius: float, rng: np.random.Generator
) -> None:
    """A cluster of 5-12 tiny very bright dots near the mass centre, added in place."""
    rows, cols = patch.shape
    origin_row, origin_col = int(round(-float(dy[0, 0]))), int(round(-float(dx[0, 0])))
    offset = rng.normal(0.0, 0.25, size=2) * radius
    spread = max(0.3 * radius, 1.5)
    for _ in range(int(rng.integers(5, 13))):
        row = int(round(origin_row + offset[0] + rng.normal(0.0, spread)))
        col = int(round(origin_col + offset[1] + rng.normal(0.0, spread)))
        if 0 <= row < rows and 0 <= col < cols:
            patch[row, col] += float(rng.uniform(0.45, 0.7))
