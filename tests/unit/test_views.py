"""Which screening view an MG image is, from its DICOM attributes."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipelines.errors import InvalidStudy
from pipelines.imaging.views import view_of


def mg(laterality: str | None = "R", position: str | None = "CC", code: str | None = None,
       *, laterality_tag: str = "ImageLaterality", scheme: str = "SCT") -> Dataset:
    ds = Dataset()
    ds.Modality = "MG"
    if laterality is not None:
        setattr(ds, laterality_tag, laterality)
    if position is not None:
        ds.ViewPosition = position
    if code is not None:
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = scheme
        item.CodeMeaning = "view"
        ds.ViewCodeSequence = Sequence([item])
    return ds


@pytest.mark.parametrize(
    ("laterality", "position", "expected"),
    [("R", "CC", "R-CC"), ("L", "CC", "L-CC"), ("R", "MLO", "R-MLO"), ("L", "MLO", "L-MLO")],
)
def test_the_four_screening_views(laterality: str, position: str, expected: str) -> None:
    assert view_of(mg(laterality, position)) == expected


def test_view_code_sequence_wins_over_view_position() -> None:
    # SNOMED CT 399368009 = medio-lateral oblique, although ViewPosition says CC.
    assert view_of(mg("L", "CC", code="399368009")) == "L-MLO"
    assert view_of(mg("R", "MLO", code="399162004")) == "R-CC"


@pytest.mark.parametrize(("code", "expected"), [("R-10242", "R-CC"), ("R-10226", "R-MLO")])
def test_legacy_snomed_rt_view_codes(code: str, expected: str) -> None:
    assert view_of(mg("R", None, code=code, scheme="SRT")) == expected


def test_an_unknown_view_code_falls_back_to_view_position() -> None:
    assert view_of(mg("L", "MLO", code="123456")) == "L-MLO"


def test_series_laterality_is_used_when_image_laterality_is_absent() -> None:
    assert view_of(mg("L", "CC", laterality_tag="Laterality")) == "L-CC"


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_lower_case_values_are_accepted() -> None:
    assert view_of(mg("r", "mlo")) == "R-MLO"


def test_missing_laterality_is_an_invalid_study() -> None:
    with pytest.raises(InvalidStudy, match="laterality missing"):
        view_of(mg(None, "CC"))


def test_bilateral_laterality_names_the_value() -> None:
    with pytest.raises(InvalidStudy, match=r"laterality B is not R or L"):
        view_of(mg("B", "CC"))


def test_a_non_screening_projection_names_the_value() -> None:
    with pytest.raises(InvalidStudy, match=r"view XCCL is not a screening view"):
        view_of(mg("R", "XCCL"))


def test_missing_projection_is_an_invalid_study() -> None:
    with pytest.raises(InvalidStudy, match=r"view missing"):
        view_of(mg("R", None))
