"""The ingest boundary for one exam: its view headers in, de-identified DICOM JSON out."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from pipelines.deid.checks import burned_in_annotation, check_no_phi, original_identifiers
from pipelines.deid.deidentify import deidentify, header_json
from pipelines.deid.keys import PseudonymKeys
from pipelines.errors import InvalidStudy

if TYPE_CHECKING:
    from pydicom import Dataset


@dataclasses.dataclass(frozen=True)
class DeidentifiedExam:
    """What may leave ingest of an exam's headers.

    Attributes:
        headers: per view, the de-identified header as DICOM JSON, without pixel data.
        study_date: the shifted StudyDate as "YYYY-MM-DD", or "unknown".
    """

    headers: dict[str, dict[str, Any]]
    study_date: str


def deidentify_exam(
    headers: Mapping[str, Dataset], keys: PseudonymKeys, *,
    retain_patient_characteristics: bool = True, pixels_cleaned: Collection[str] = (),
) -> DeidentifiedExam:
    """De-identify the views of one exam and check that nothing identifying survives.

    Args:
        headers: per view ("R-CC", ...), the original dataset or its header alone.
        keys: the stored pseudonym keys.
        retain_patient_characteristics: keep PatientAge and PatientSex (the manifest and
            its contract use the age); recorded as option 113108.
        pixels_cleaned: views whose burned-in text was masked (option 113101).

    Raises:
        InvalidStudy: a view has burned-in annotation, or no usable PatientID.
        PhiDetected: an original identifier survived (names the attribute, not the value).
    """
    out: dict[str, dict[str, Any]] = {}
    dates: set[str] = set()
    for view, original in headers.items():
        reason = burned_in_annotation(original)
        if reason:
            raise InvalidStudy(f"view {view}: {reason}")
        clean = deidentify(original, keys,
                           retain_patient_characteristics=retain_patient_characteristics,
                           pixels_cleaned=view in pixels_cleaned)
        check_no_phi(clean, original_identifiers(original))
        out[view] = header_json(clean)
        dates.add(str(clean.get("StudyDate", "") or ""))
    raw = min(dates) if dates else ""
    study_date = f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}" if len(raw) == 8 else "unknown"
    return DeidentifiedExam(headers=out, study_date=study_date)
