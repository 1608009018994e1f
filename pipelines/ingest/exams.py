"""One Orthanc study to one screening exam: four views, a report, checked and preprocessed.

This is the ingest boundary: datasets with PHI come in, only pseudonyms, pixels and
non-identifying attributes go out (`ExamImages`).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.config import get_settings
from pipelines.deid import burned_in_annotation, without_pixel_data
from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import InvalidStudy
from pipelines.imaging.burned_in import find_text_lines, mask_lines
from pipelines.imaging.preprocess import chest_wall_is_right, model_input, view_pixels
from pipelines.ingest.reports import report_text
from pipelines.labels.birads import BiradsReading, read_report
from pipelines.labels.density import read_density
from pipelines.labels.pathology import label_views
from pipelines.pacs.policy import ExamPolicy, select

if TYPE_CHECKING:
    from pydicom import Dataset


MAMMO_SOP_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


@dataclasses.dataclass(frozen=True)
class ExamImages:
    """The PHI-free result of one study: per-view pixels and manifest attributes."""

    views: dict[str, np.ndarray]
    attrs: dict[str, dict[str, Any]]
    birads: dict[str, int]
    identifiers: dict[str, str]  # PHI: original ids, only for the pseudonym table
    # PHI: the original headers without pixels, as DICOM bytes (any dataset pickles that
    # way); de-identified by the parent (pipelines.deid) before anything is stored
    headers: dict[str, bytes] = dataclasses.field(default_factory=dict)
    # views whose burned-in text was masked (recorded as the Clean Pixel Data Option)
    pixels_cleaned: tuple[str, ...] = ()

    def header_datasets(self) -> dict[str, Dataset]:
        import pydicom

        return {v: pydicom.dcmread(io.BytesIO(b), force=True) for v, b in self.headers.items()}


def header_bytes(ds: Dataset) -> bytes:
    """The header of `ds` without pixel data, written as a DICOM file in memory."""
    import pydicom

    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, without_pixel_data(ds), enforce_file_format=False)
    return buffer.getvalue()


def pick_views(datasets: list[Dataset], label: str,
               policy: ExamPolicy | None = None) -> tuple[dict[str, Dataset], str]:
    """The four screening views and the report text of one study, by the declared policy.

    Raises:
        InvalidStudy: the policy refuses the study (see pipelines/pacs/policy.py).
    """
    chosen = select(datasets, label, policy or ExamPolicy.from_settings())
    return chosen.views, "\n".join(report_text(ds) for ds in chosen.reports)


def attributes(ds: Dataset, view: str, pixels: np.ndarray) -> dict[str, Any]:
    """The non-identifying manifest attributes of one view."""
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or [0.0]
    age = str(ds.get("PatientAge", "") or "")
    return {
        "laterality": view[0],
        "view_position": view.split("-")[1],
        "modality": str(ds.Modality),
        "manufacturer": str(ds.get("Manufacturer", "") or "UNKNOWN"),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "bits_stored": int(ds.BitsStored),
        "pixel_spacing_mm": float(spacing[0]),
        "photometric": str(ds.PhotometricInterpretation),
        "patient_age": int(age[:3]) if age[:3].isdigit() else None,
        "pixel_mean": float(pixels.mean()),
    }


def view_input(ds: Dataset, view: str, height: int, width: int, label: str) -> tuple[np.ndarray, bool]:
    """The model input of one view and whether burned-in text was masked in it.

    Raises:
        InvalidStudy: the header declares burned-in annotation, text is found in the pixels
            and the policy is `quarantine`, or the pixels cannot be decoded.
    """
    s = get_settings()
    reason = burned_in_annotation(ds)  # here, so that screening refuses these views too
    if reason:
        raise InvalidStudy(f"exam {label} view {view}: {reason}")
    try:
        display = view_pixels(ds, height, decode_timeout_s=s.decode_timeout_s)
        lines = find_text_lines(display, s.burned_in_text_min_glyphs)
    except InvalidStudy as exc:
        raise InvalidStudy(f"exam {label} view {view}: {exc}") from exc
    if lines and s.burned_in_text == "quarantine":
        where = "; ".join(line.describe(*display.shape) for line in lines)
        raise InvalidStudy(f"exam {label} view {view}: burned-in text detected in the pixels "
                           f"({where}); policy burned_in_text=quarantine")
    if lines:
        display = mask_lines(display, lines)
    return model_input(display, chest_wall_is_right(ds, view[0]), height, width), bool(lines)


def assemble(datasets: list[Dataset], label: str, height: int, width: int,
             ris_texts: Mapping[str, str] | None = None) -> ExamImages:
    """Check, label and preprocess one study's datasets.

    Args:
        ris_texts: report texts of a RIS export by accession number or StudyInstanceUID,
            used when the study holds no SR report.

    Raises:
        InvalidStudy: the exam policy refuses the study, a view has burned-in annotation
            or text (see `view_input`), or pixels cannot be decoded.
    """
    views, text = pick_views(datasets, label)
    first = views[SCREENING_VIEWS[0]]
    if not text and ris_texts:
        text = ris_texts.get(str(first.get("AccessionNumber", "") or "")) \
            or ris_texts.get(str(first.StudyInstanceUID), "")
    reading = read_report(text) if text else BiradsReading({}, {})
    labels = label_views(label, reading, {}, views=tuple(views))
    density = read_density(text) if text else None
    pixels, attrs, headers, cleaned = {}, {}, {}, []
    for view, ds in views.items():
        arr, masked = view_input(ds, view, height, width, label)
        if masked:
            cleaned.append(view)
        pixels[view] = arr
        attrs[view] = attributes(ds, view, arr)
        attrs[view]["birads"] = labels[view].birads
        attrs[view]["label"] = labels[view].label
        attrs[view]["label_source"] = labels[view].provenance
        attrs[view]["density"] = density
        headers[view] = header_bytes(ds)
    ids = {"patient": str(first.get("PatientID", "")), "study": str(first.StudyInstanceUID)}
    ids.update({f"instance:{v}": str(ds.SOPInstanceUID) for v, ds in views.items()})
    return ExamImages(views=pixels, attrs=attrs, birads=reading.categories, identifiers=ids,
                      headers=headers, pixels_cleaned=tuple(cleaned))
