"""DICOM pixels to model input: the one implementation shared by ingest, training, Triton."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_builders import breast_pixels, mg_image
from pydicom.uid import JPEG2000Lossless

from pipelines.errors import InvalidStudy
from pipelines.imaging.preprocess import display_pixels, preprocess, rescale

H, W = 40, 32


def chest_wall_side(img: np.ndarray) -> str:
    """Which vertical edge the (bright) breast touches."""
    left, right = float(img[:, :3].mean()), float(img[:, -3:].mean())
    return "left" if left > right else "right"


@pytest.mark.parametrize("laterality", ["L", "R"])
def test_output_is_float32_of_the_requested_size_in_0_1(laterality: str) -> None:
    ds = mg_image(breast_pixels(120, 96, laterality=laterality), laterality=laterality)
    out = preprocess(ds, laterality, height=H, width=W)
    assert out.shape == (H, W)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.max() - out.min() > 0.5  # the contrast survives


@pytest.mark.parametrize("laterality", ["L", "R"])
def test_chest_wall_ends_up_on_the_left_for_both_breasts(laterality: str) -> None:
    stored = breast_pixels(H, W, laterality=laterality)
    # As stored by the modality: left breast against the left edge, right breast the right.
    assert chest_wall_side(stored) == ("left" if laterality == "L" else "right")
    out = preprocess(mg_image(stored, laterality=laterality), laterality, H, W)
    assert chest_wall_side(out) == "left"


def test_right_views_are_mirror_images_of_the_same_pixels() -> None:
    stored = breast_pixels(H, W, laterality="R", seed=3)
    as_left = preprocess(mg_image(stored, laterality="L"), "L", H, W)
    as_right = preprocess(mg_image(stored, laterality="R"), "R", H, W)
    np.testing.assert_allclose(as_right, as_left[:, ::-1], atol=1e-6)


def test_monochrome1_is_inverted_so_dense_tissue_is_bright() -> None:
    stored = breast_pixels(H, W, laterality="L")
    mono2 = preprocess(mg_image(stored, photometric="MONOCHROME2"), "L", H, W)
    # MONOCHROME1 stores the same image with low values for dense tissue.
    mono1 = preprocess(mg_image(4095 - stored, photometric="MONOCHROME1"), "L", H, W)
    np.testing.assert_allclose(mono1, mono2, atol=1e-5)
    assert chest_wall_side(mono1) == "left"  # the breast is bright, the background dark


def test_the_window_from_the_header_is_applied() -> None:
    # Checked before cropping: a ramp has no breast to crop to.
    ramp = np.tile(np.linspace(0, 4095, W), (H, 1)).astype(np.uint16)
    plain = rescale(display_pixels(mg_image(ramp)))
    windowed = rescale(display_pixels(mg_image(ramp, window=(2048.0, 512.0))))
    # Without a window the ramp stays a ramp; with it, everything outside
    # [1792, 2304] saturates to black or white.
    assert (plain <= 1e-3).mean() < 0.1 and (plain >= 1 - 1e-3).mean() < 0.1
    assert (windowed <= 1e-3).mean() > 0.3
    assert (windowed >= 1 - 1e-3).mean() > 0.3
    assert windowed[:, 0].max() <= 1e-3 and windowed[:, -1].min() >= 1 - 1e-3


def test_a_blank_image_gives_zeros_not_nan() -> None:
    flat = np.full((H, W), 1000, dtype=np.uint16)
    out = preprocess(mg_image(flat), "L", H, W)
    assert np.isfinite(out).all() and float(np.abs(out).max()) == 0.0


def test_undecodable_pixel_data_names_the_transfer_syntax() -> None:
    ds = mg_image(breast_pixels(H, W), transfer_syntax=JPEG2000Lossless)
    # Encapsulated frame of garbage: a basic offset table item, then one "frame".
    item = lambda tag, data: tag + len(data).to_bytes(4, "little") + data  # noqa: E731
    frame = b"\x00\x01\x02\x03not a jpeg 2000 codestream" * 4
    ds.PixelData = (item(b"\xfe\xff\x00\xe0", b"") + item(b"\xfe\xff\x00\xe0", frame)
                    + b"\xfe\xff\xdd\xe0" + b"\x00" * 4)
    ds["PixelData"].VR = "OB"
    with pytest.raises(InvalidStudy, match=r"transfer syntax 1\.2\.840\.10008\.1\.2\.4\.90"):
        preprocess(ds, "L", H, W)


def test_missing_pixel_data_is_an_invalid_study() -> None:
    ds = mg_image(breast_pixels(H, W))
    del ds.PixelData
    with pytest.raises(InvalidStudy, match="cannot be decoded"):
        preprocess(ds, "L", H, W)


@pytest.mark.parametrize(("laterality", "flip", "mirrored"),
                         [("L", "NO", False), ("R", "NO", True), ("L", "YES", True), ("R", "YES", False)])
def test_field_of_view_horizontal_flip_reverses_the_laterality_rule(
        laterality: str, flip: str, mirrored: bool) -> None:
    stored = breast_pixels(H, W, laterality="R" if mirrored else "L", seed=5)
    ds = mg_image(stored, laterality=laterality)
    ds.FieldOfViewHorizontalFlip = flip
    assert chest_wall_side(preprocess(ds, laterality, H, W)) == "left"


@pytest.mark.parametrize(("orientation", "stored_side"), [(["A", "R"], "L"), (["P", "FL"], "R")])
def test_patient_orientation_wins_over_laterality_and_flip(orientation: list[str],
                                                           stored_side: str) -> None:
    # A left breast stored chest wall right (row direction "P"): only the header knows.
    stored = breast_pixels(H, W, laterality=stored_side, seed=6)
    ds = mg_image(stored, laterality="L")
    ds.PatientOrientation = orientation
    ds.FieldOfViewHorizontalFlip = "YES"
    assert chest_wall_side(preprocess(ds, "L", H, W)) == "left"


def test_a_bright_marker_in_the_background_neither_widens_the_crop_nor_dims_the_breast() -> None:
    stored = breast_pixels(160, 128, laterality="L", seed=7)
    marked = stored.copy()
    marked[140:152, 100:120] = 4095  # a lead "L" marker in the far corner
    clean, with_marker = preprocess(mg_image(stored), "L", H, W), preprocess(mg_image(marked), "L", H, W)
    np.testing.assert_allclose(with_marker, clean, atol=1e-6)
