"""Crop to the breast: the largest bright region's box, markers and labels ignored."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_builders import breast_pixels

from pipelines.imaging.crop import breast_box, crop_to_breast, otsu_threshold


def scene(rows: int = 200, cols: int = 160) -> np.ndarray:
    """A breast against the left edge in the upper-left part of a dark image."""
    img = np.full((rows, cols), 50.0, dtype=np.float32)
    img[20:140, 0:90] = breast_pixels(120, 90, laterality="L", seed=1).astype(np.float32)
    return img


def test_otsu_separates_two_levels() -> None:
    img = np.concatenate([np.full(100, 10.0), np.full(100, 200.0)])
    assert 10.0 <= otsu_threshold(img) < 200.0


def test_box_is_the_breast_plus_the_margin() -> None:
    top, bottom, left, right = breast_box(scene(), margin=0.02)
    # breast_pixels' half-ellipse spans rows ~20+6..20+114 and columns 0..~63 of the patch
    assert 20 - 4 - 8 <= top <= 20 + 8 and 140 - 8 <= bottom <= 140 + 4 + 8
    assert left == 0 and 55 <= right <= 75
    assert bottom - top < 200 and right - left < 160  # something was cut


def test_markers_and_labels_in_the_background_are_ignored() -> None:
    plain = scene()
    marked = plain.copy()
    marked[170:190, 120:150] = 4095.0  # a laterality marker
    marked[5:9, 100:158] = 4095.0  # a burned-in text line
    marked[150:152, 0:160] = 2000.0  # a thin paddle edge across the image
    assert breast_box(marked) == breast_box(plain)


def test_a_blank_or_noise_only_image_is_kept_whole() -> None:
    rng = np.random.default_rng(0)
    assert breast_box(np.zeros((50, 40))) == (0, 50, 0, 40)
    speckle = (rng.random((50, 40)) > 0.995).astype(np.float32)  # isolated bright pixels
    assert breast_box(speckle) == (0, 50, 0, 40)


def test_large_images_are_boxed_on_a_downsampled_copy_with_the_same_result() -> None:
    small = scene()
    big = np.kron(small, np.ones((8, 8), dtype=np.float32))  # 1600 x 1280
    top, bottom, left, right = breast_box(big, margin=0.0)
    s_top, s_bottom, s_left, s_right = breast_box(small, margin=0.0)
    for got, want in [(top, s_top), (bottom, s_bottom), (left, s_left), (right, s_right)]:
        assert abs(got - 8 * want) <= 8 * 3


@pytest.mark.parametrize("margin", [0.0, 0.05])
def test_crop_returns_the_box(margin: float) -> None:
    img = scene()
    top, bottom, left, right = breast_box(img, margin)
    np.testing.assert_array_equal(crop_to_breast(img, margin), img[top:bottom, left:right])
