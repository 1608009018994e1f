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
from pipelines.deid import burned_in_annotation, deidentify_exam, without_pixel_data
from pipelines.errors import InvalidStudy, code_string
from pipelines.imaging.burned_in import find_text_lines, mask_lines
from pipelines.imaging.preprocess import display_pixels, stored_pixels, task_input
from pipelines.imaging.stored import dataset_from, display_attributes
from pipelines.ingest.reports import report_text
from pipelines.ingest.steps import step
from pipelines.labels.birads import BiradsReading, read_report
from pipelines.labels.density import read_density
from pipelines.labels.findings import PROVENANCE as FINDINGS
from pipelines.labels.findings import label_from_report
from pipelines.labels.pathology import PROVENANCE_NONE, label_views
from pipelines.pacs.policy import NON_IMAGE_MODALITIES, RADFLOW_MANUFACTURER, ExamPolicy, select_for_task
from pipelines.tasks import TaskDefinition, configured, for_modality

if TYPE_CHECKING:
    from pydicom import Dataset

    from pipelines.deid import DeidentifiedExam, PseudonymKeys


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


def study_task(datasets: list[Dataset], label: str) -> TaskDefinition:
    """The task (pipelines/tasks.yaml) whose modality the study's images have.

    Raises:
        InvalidStudy: no image of the study has the modality of a configured task.
    """
    modalities = sorted({code_string(ds.get("Modality")) for ds in datasets
                         if str(ds.get("Manufacturer", "") or "") != RADFLOW_MANUFACTURER}
                        - NON_IMAGE_MODALITIES)
    for modality in modalities:
        if (task := for_modality(modality)) is not None:
            return task
    taken = ", ".join(f"{t.modality} ({name})" for name, t in sorted(configured().items()))
    raise InvalidStudy(f"exam {label}: modality {', '.join(modalities) or 'none'} is no task's: "
                       f"the tasks take {taken}")


def pick_views(datasets: list[Dataset], label: str, policy: ExamPolicy | None = None,
               task: TaskDefinition | None = None) -> tuple[dict[str, Dataset], str]:
    """The task's views and the report text of one study (the study's task by default).

    Raises:
        InvalidStudy: the study is no task's, or its task's selection refuses it (see
            pipelines/pacs/policy.py).
    """
    chosen = select_for_task(datasets, task or study_task(datasets, label), label, policy)
    return chosen.views, "\n".join(report_text(ds) for ds in chosen.reports)


def attributes(ds: Dataset, view: str, pixels: np.ndarray) -> dict[str, Any]:
    """The non-identifying manifest attributes of one view ("R-CC" or a position, "PA").

    Raises:
        InvalidStudy: PixelSpacing (else ImagerPixelSpacing) is not a finite number first.
    """
    age = str(ds.get("PatientAge", "") or "")
    side, _, position = view.rpartition("-")
    stated = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "U")[:1].upper()
    return {
        "laterality": side or stated,  # U (unpaired) for a chest
        "view_position": position,
        "modality": str(ds.Modality),
        "manufacturer": str(ds.get("Manufacturer", "") or "UNKNOWN"),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "bits_stored": int(ds.BitsStored),
        "pixel_spacing_mm": spacing_mm(ds),
        "photometric": str(ds.PhotometricInterpretation),
        "patient_age": int(age[:3]) if age[:3].isdigit() else None,
        "pixel_mean": float(pixels.mean()),
    }


def spacing_mm(ds: Dataset) -> float:
    """The first PixelSpacing (else ImagerPixelSpacing) value in mm, 0.0 when neither is given.

    Raises:
        InvalidStudy: the value is not a finite number (another VR, text, a sequence).
    """
    import math

    keyword = "PixelSpacing" if ds.get("PixelSpacing") else "ImagerPixelSpacing"
    value = ds.get(keyword) or [0.0]
    try:
        first = value if isinstance(value, str | bytes | int | float) else value[0]
        mm = float(first)
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise InvalidStudy(f"{keyword} must be numbers (mm)") from exc
    if not math.isfinite(mm):
        raise InvalidStudy(f"{keyword} must be finite numbers (mm)")
    return mm


def view_input(ds: Dataset, view: str, height: int, width: int, label: str,
               preprocessing: str = "mammogram") -> tuple[np.ndarray, bool]:
    """The model input of one view (by the task's preprocessing) and whether burned-in text
    was masked in it.

    Raises:
        InvalidStudy: the header declares burned-in annotation, text is found in the pixels
            and the policy is `quarantine`, or the pixels cannot be decoded or displayed;
            the reason starts with the step ("burned-in", "decode", "display",
            "burned-in text", "preprocess").
    """
    s = get_settings()
    where = f"exam {label} view {view}"
    reason = burned_in_annotation(ds)  # here, so that screening refuses these views too
    if reason:
        raise InvalidStudy(f"burned-in: {where}: {reason}")
    with step("decode", "PixelData, TransferSyntaxUID, Rows, Columns, BitsAllocated, BitsStored",
              context=where):
        raw = stored_pixels(ds, height, decode_timeout_s=s.decode_timeout_s)
    with step("display", "PhotometricInterpretation, RescaleSlope, RescaleIntercept, "
                         "ModalityLUTSequence, WindowCenter, WindowWidth, VOILUTSequence", context=where):
        # from the checked display attributes alone, exactly as Triton's ensemble displays it
        display = display_pixels(dataset_from(display_attributes(ds)), raw)
    with step("burned-in text", "PixelData", context=where):
        lines = find_text_lines(display, s.burned_in_text_min_glyphs)
    if lines and s.burned_in_text == "quarantine":
        found = "; ".join(line.describe(*display.shape) for line in lines)
        raise InvalidStudy(f"burned-in text: {where}: burned-in text detected in the pixels "
                           f"({found}); policy burned_in_text=quarantine")
    with step("preprocess", "PatientOrientation, FieldOfViewHorizontalFlip, PixelData", context=where):
        if lines:
            display = mask_lines(display, lines)
        return task_input(display, ds, view, preprocessing, height, width), bool(lines)


def _labels(text: str, task: TaskDefinition, label: str, views: tuple[str, ...]
            ) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """The report's BI-RADS categories by breast and each view's label attributes."""
    if task.labels == "findings":
        value = label_from_report(text, task.finding_terms)
        source = FINDINGS if value is not None else PROVENANCE_NONE
        return {}, {v: {"birads": None, "label": value, "label_source": source, "density": None}
                    for v in views}
    reading = read_report(text) if text else BiradsReading({}, {})
    labels = label_views(label, reading, {}, views=views)
    density = read_density(text) if text else None
    return reading.categories, {v: {"birads": labels[v].birads, "label": labels[v].label,
                                    "label_source": labels[v].provenance, "density": density}
                                for v in views}


def assemble(datasets: list[Dataset], label: str, height: int | None = None, width: int | None = None,
             ris_texts: Mapping[str, str] | None = None) -> ExamImages:
    """Check, label and preprocess one study's datasets, as the task of its modality says.

    Args:
        height, width: the model input; default the task's (`TaskDefinition.input_size`).
        ris_texts: report texts of a RIS export by accession number or StudyInstanceUID,
            used when the study holds no SR report.

    Raises:
        InvalidStudy: the study is no task's, its task's selection refuses it, a view has
            burned-in annotation or text (see `view_input`), or pixels cannot be decoded;
            the reason starts with the step (pipelines/ingest/steps.py), and an exception
            no check foresaw is refused as `UnforeseenInput`.
    """
    with step("route", "Modality, Manufacturer"):
        task = study_task(datasets, label)
        size = task.input_size()
    height, width = height or size[0], width or size[1]
    with step("views", "Modality, ImageLaterality, ViewPosition, ViewCodeSequence, "
                       "PresentationIntentType, InstanceNumber"):
        views, text = pick_views(datasets, label, task=task)
    with step("labels", "ContentSequence, AccessionNumber, StudyInstanceUID"):
        first = next(iter(views.values()))
        if not text and ris_texts:
            text = ris_texts.get(str(first.get("AccessionNumber", "") or "")) \
                or ris_texts.get(str(first.get("StudyInstanceUID", "") or ""), "")
        categories, labels = _labels(text, task, label, tuple(views))
    pixels, attrs, headers, cleaned = {}, {}, {}, []
    for view, ds in views.items():
        arr, masked = view_input(ds, view, height, width, label, task.preprocessing)
        if masked:
            cleaned.append(view)
        pixels[view] = arr
        with step("attributes", "Modality, Manufacturer, Rows, Columns, BitsStored, PixelSpacing, "
                                "PhotometricInterpretation, PatientAge", context=f"exam {label} view {view}"):
            attrs[view] = {**attributes(ds, view, arr), **labels[view]}
        with step("header", "the header's data elements", context=f"exam {label} view {view}"):
            headers[view] = header_bytes(ds)
    # an empty one is refused, named, when its pseudonym is looked up (pseudonym_for)
    ids = {"patient": str(first.get("PatientID", "") or ""),
           "study": str(first.get("StudyInstanceUID", "") or "")}
    ids.update({f"instance:{v}": str(ds.get("SOPInstanceUID", "") or "") for v, ds in views.items()})
    return ExamImages(views=pixels, attrs=attrs, birads=categories, identifiers=ids,
                      headers=headers, pixels_cleaned=tuple(cleaned))


def deidentify_views(exam: ExamImages, keys: PseudonymKeys) -> DeidentifiedExam:
    """The exam's view headers de-identified for the lake (PS3.15 Basic Profile + Modified
    Dates, `pipelines.deid.deidentify_exam`): the "de-identify" step of ingest's commit.

    Raises:
        PermanentError: de-identification refused a view (burned-in annotation, no usable
            PatientID, an identifier surviving), its reason prefixed "de-identify: ".
    """
    import sqlalchemy as sa

    with step("de-identify", "the header's data elements", passing=(sa.exc.SQLAlchemyError,)):
        return deidentify_exam(exam.header_datasets(), keys, pixels_cleaned=exam.pixels_cleaned)
