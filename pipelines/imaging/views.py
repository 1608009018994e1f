"""Which screening view an MG image is, read from its DICOM attributes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipelines.errors import InvalidStudy, code_string

if TYPE_CHECKING:
    from pydicom import Dataset

# SNOMED CT (and legacy SNOMED-RT) codes of ViewCodeSequence for the two screening views.
VIEW_CODES = {
    "399162004": "CC",
    "R-10242": "CC",
    "399368009": "MLO",
    "R-10226": "MLO",
}


def view_of(ds: Dataset) -> str:
    """The view label ("R-CC", "L-MLO", ...) of an MG image.

    Laterality comes from ImageLaterality (else Laterality); the projection from
    ViewCodeSequence (else ViewPosition).

    Raises:
        InvalidStudy: laterality or projection is missing or not a screening view, or
            ViewCodeSequence is not a sequence.
    """
    laterality = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")).upper()
    if laterality not in ("R", "L"):
        raise InvalidStudy(f"image laterality {code_string(laterality)} is not R or L")
    position = ""
    codes = ds.get("ViewCodeSequence")
    if codes:
        if isinstance(codes, str | bytes) or not isinstance(codes, Sequence) \
                or not all(hasattr(item, "get") for item in codes):
            raise InvalidStudy("ViewCodeSequence is not a sequence of code items")
        position = VIEW_CODES.get(str(codes[0].get("CodeValue", "")), "")
    if not position:
        position = str(ds.get("ViewPosition", "")).upper()
    if position not in ("CC", "MLO"):
        raise InvalidStudy(f"view {code_string(position)} is not a screening view (CC or MLO)")
    return f"{laterality}-{position}"
