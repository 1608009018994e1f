"""Preprocessing split at Triton (stored pixels on the client, the display step served):
the served half gives exactly `preprocess`'s input (no train/serve skew) and nothing
identifying crosses the boundary."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from dicom_builders import ACCESSION, PATIENT_ID, PATIENT_NAME, breast_pixels, mg_image
from pydicom import Dataset
from pydicom.sequence import Sequence

from pipelines.errors import InvalidStudy
from pipelines.imaging.preprocess import preprocess
from pipelines.imaging.stored import (
    DISPLAY_ATTRIBUTES,
    model_input_from_stored,
    parse_attributes,
    serving_request,
)
from pipelines.synth.generate import iter_exams

H, W = 64, 48


def lut_item(entries: int, first: int, data: list[int] | bytes, bits: int = 16) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [entries, first, bits]
    item.add_new("LUTData", "OW" if isinstance(data, bytes) else "US", data)
    item.LUTExplanation = PATIENT_NAME  # free text a careless sender might fill: must not travel
    return item


def voi_lut_sequence(lat: str) -> Dataset:
    """A gamma-like VOI LUT (US values) over a window that it overrides (prefer_lut)."""
    ds = mg_image(breast_pixels(120, 96, laterality=lat, seed=1), laterality=lat,
                  window=(2048.0, 1024.0))
    curve = (65535 * (np.arange(4096) / 4095.0) ** 0.6).astype(int).tolist()
    ds.VOILUTSequence = Sequence([lut_item(4096, 0, curve)])
    return ds


def voi_lut_ow(lat: str) -> Dataset:
    """A VOI LUT stored as OW bytes, starting above the lowest stored values."""
    ds = mg_image(breast_pixels(120, 96, laterality=lat, seed=2), laterality=lat)
    table = np.linspace(0, 4095, 3000).astype("<u2").tobytes()
    ds.VOILUTSequence = Sequence([lut_item(3000, 500, table, bits=12)])
    return ds


def signed_rescaled(lat: str) -> Dataset:
    """Signed stored values with a rescale and a window in rescaled units."""
    pixels = breast_pixels(120, 96, laterality=lat, seed=3).astype(np.int32) - 2048
    ds = mg_image(np.zeros((120, 96), np.uint16), laterality=lat, window=(300.5, 3000.0))
    ds.PixelRepresentation = 1
    ds.PixelData = pixels.astype("<i2").tobytes()
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "0.75", "-100.25", "US"
    return ds


def modality_lut(lat: str) -> Dataset:
    """A square-root modality LUT from stored value 100 on, then a window in its output units
    (whose range windowing takes from the LUT's bit depth)."""
    ds = mg_image(breast_pixels(120, 96, laterality=lat, seed=4), laterality=lat,
                  window=(40000.0, 30000.0))
    curve = (65535 * np.sqrt(np.arange(4000) / 3999.0)).astype(int).tolist()
    ds.ModalityLUTSequence = Sequence([lut_item(4000, 100, curve)])
    return ds


def sigmoid_monochrome1(lat: str) -> Dataset:
    ds = mg_image(4095 - breast_pixels(120, 96, laterality=lat, seed=5), laterality=lat,
                  photometric="MONOCHROME1", window=(2000.0, 2500.0))
    ds.VOILUTFunction = "SIGMOID"
    ds.WindowCenterWidthExplanation = PATIENT_NAME
    return ds


def large_reduced(lat: str) -> Dataset:
    """Tall enough that the stored values are block-averaged before they travel."""
    return mg_image(breast_pixels(2300, 1800, laterality=lat, seed=6), laterality=lat,
                    window=(2048.0, 3000.0))


def flipped_by_orientation(lat: str) -> Dataset:
    """PatientOrientation says the chest wall is on the other side than the convention."""
    other = "L" if lat == "R" else "R"
    ds = mg_image(breast_pixels(120, 96, laterality=other, seed=7), laterality=lat)
    ds.PatientOrientation = ["P", "L"] if lat == "L" else ["A", "R"]
    return ds


BUILDERS: dict[str, Callable[[str], Dataset]] = {
    "monochrome2": lambda lat: mg_image(breast_pixels(120, 96, laterality=lat), laterality=lat),
    "monochrome1_window": lambda lat: mg_image(4095 - breast_pixels(120, 96, laterality=lat),
                                               laterality=lat, photometric="MONOCHROME1",
                                               window=(2048.0, 3500.0)),
    "voi_lut_sequence": voi_lut_sequence,
    "voi_lut_ow": voi_lut_ow,
    "signed_rescaled": signed_rescaled,
    "modality_lut": modality_lut,
    "sigmoid_monochrome1": sigmoid_monochrome1,
    "large_reduced": large_reduced,
    "flipped_by_orientation": flipped_by_orientation,
}


def served(ds: Dataset, lat: str, via_json: bool = True) -> np.ndarray:
    view = serving_request(ds, lat, H)
    attributes = parse_attributes(view.attributes_json()) if via_json else view.attributes
    return model_input_from_stored(view.pixels, attributes, view.mirror, H, W)


@pytest.mark.parametrize("lat", ["L", "R"])
@pytest.mark.parametrize("case", sorted(BUILDERS))
def test_the_served_half_gives_exactly_the_training_input(case: str, lat: str) -> None:
    ds = BUILDERS[case](lat)
    expected = preprocess(ds, lat, H, W)
    assert expected.max() - expected.min() > 0.3  # a real image, not a blank that always matches
    direct = model_input_from_stored(*serving_request(ds, lat, H), H, W)
    assert np.array_equal(direct, expected)
    assert np.array_equal(served(ds, lat), expected)  # through the request's JSON as well


@pytest.mark.parametrize("site", ["general", "north"])  # MONOCHROME2 LINEAR; MONOCHROME1 SIGMOID
def test_synthetic_exams_are_served_exactly_as_trained(site: str) -> None:
    exam = next(iter_exams(1, "2026-03-14", site, seed=11, scale=0.06, positive_rate=1.0))
    for instance in exam.instances[:4]:
        lat = instance.name[0]
        expected = preprocess(instance.dataset, lat, H, W)
        assert np.array_equal(served(instance.dataset, lat), expected), instance.name


def test_the_stored_values_travel_reduced_as_int32() -> None:
    view = serving_request(large_reduced("L"), "L", H)
    assert view.pixels.dtype == np.int32 and view.pixels.shape == (1150, 900)
    assert view.mirror is False and serving_request(large_reduced("R"), "R", H).mirror is True


def test_no_identifier_crosses_the_boundary() -> None:
    ds = sigmoid_monochrome1("R")
    ds.VOILUTSequence = Sequence([lut_item(4096, 0, list(range(4096)))])
    ds.ModalityLUTSequence = Sequence([lut_item(4096, 0, list(range(4096)))])
    ds.RescaleType = PATIENT_ID  # not read for display: must not be sent either
    view = serving_request(ds, "R", H)
    text = view.attributes_json()
    planted = [PATIENT_ID, PATIENT_NAME, ACCESSION, "DOE", "19710304", "St. Example", "HOLOGIC",
               str(ds.StudyInstanceUID), str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID)]
    assert [p for p in planted if p in text] == []
    assert set(view.attributes) <= set(DISPLAY_ATTRIBUTES)
    assert set(view.attributes["VOILUTSequence"][0]) == {"LUTDescriptor", "LUTData"}


@pytest.mark.parametrize(("attributes", "named"), [
    ({"BitsStored": 12, "PixelRepresentation": 0}, "PhotometricInterpretation"),
    ({"PhotometricInterpretation": "MONOCHROME2", "BitsStored": 12, "PixelRepresentation": 0,
      "PatientName": "DOE^JANE"}, "PatientName"),
    ({"PhotometricInterpretation": "DOE^JANE", "BitsStored": 12, "PixelRepresentation": 0},
     "PhotometricInterpretation must be one of"),
    ({"PhotometricInterpretation": "MONOCHROME2", "BitsStored": "12", "PixelRepresentation": 0},
     "BitsStored must be an integer"),
    ({"PhotometricInterpretation": "MONOCHROME2", "BitsStored": 12, "PixelRepresentation": 0,
      "WindowCenter": "wide"}, "WindowCenter"),
    ({"PhotometricInterpretation": "MONOCHROME2", "BitsStored": 12, "PixelRepresentation": 0,
      "VOILUTSequence": [{"LUTData": [1, 2], "LUTExplanation": "x"}]}, "VOILUTSequence"),
])
def test_malformed_attributes_are_refused_naming_the_attribute_not_its_value(
        attributes: dict[str, object], named: str) -> None:
    pixels = np.zeros((8, 8), np.int32)
    with pytest.raises(InvalidStudy, match=named) as err:
        model_input_from_stored(pixels, attributes, False, H, W)
    assert "DOE" not in str(err.value)


def test_pixels_that_are_not_one_2d_integer_frame_are_refused() -> None:
    good = serving_request(BUILDERS["monochrome2"]("L"), "L", H)
    with pytest.raises(InvalidStudy, match=r"2-D .*\[11520\]"):
        model_input_from_stored(good.pixels.reshape(-1), good.attributes, False, H, W)
    with pytest.raises(InvalidStudy, match="float32"):
        model_input_from_stored(good.pixels.astype(np.float32), good.attributes, False, H, W)


@pytest.mark.parametrize("text", [b"{not json", b"[1, 2]"])
def test_attributes_that_are_not_a_json_object_are_refused(text: bytes) -> None:
    with pytest.raises(InvalidStudy, match="JSON"):
        parse_attributes(text)
