"""De-identification at the ingest boundary (DICOM PS3.15 Annex E).

`deidentify` applies the Basic Application Level Confidentiality Profile with the Retain
Longitudinal Temporal Information with Modified Dates option; `PseudonymKeys` supplies the
stored random keys (`TableKeys` in the hospital database, `MemoryKeys` for tests);
`burned_in_annotation` and `check_no_phi` are the last-line checks before anything
leaves ingest; `deidentify_exam` runs all of it for the views of one exam. pydicom
loads only when a dataset is processed.
"""

from __future__ import annotations

from pipelines.deid.checks import burned_in_annotation, check_no_phi, original_identifiers
from pipelines.deid.deidentify import deidentify, header_json, without_pixel_data
from pipelines.deid.exam import DeidentifiedExam, deidentify_exam
from pipelines.deid.keys import MemoryKeys, PseudonymKeys, TableKeys

__all__ = [
    "DeidentifiedExam",
    "MemoryKeys",
    "PseudonymKeys",
    "TableKeys",
    "burned_in_annotation",
    "check_no_phi",
    "deidentify",
    "deidentify_exam",
    "header_json",
    "original_identifiers",
    "without_pixel_data",
]
