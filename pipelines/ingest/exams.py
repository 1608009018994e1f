"""One Orthanc study to one screening exam: four views, a report, checked and preprocessed.

This is the ingest boundary: datasets with PHI come in, only pseudonyms, pixels and
non-identifying attributes go out (`ExamImages`).
"""

from __future__ import annotations

import dataclasses
import io
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import InvalidStudy
from pipelines.imaging.preprocess import preprocess
from pipelines.ingest.policy import ExamPolicy, select
from pipelines.ingest.reports import birads_by_side, label_of, report_text

if TYPE_CHECKING:
    from pydicom import Dataset

    from pipelines.pacs.client import OrthancClient

MAMMO_SOP_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


@dataclasses.dataclass(frozen=True)
class ExamImages:
    """The PHI-free result of one study: per-view pixels and manifest attributes."""

    views: dict[str, np.ndarray]
    attrs: dict[str, dict[str, Any]]
    birads: dict[str, int]
    identifiers: dict[str, str]  # PHI: original ids, only for the pseudonym table


def download(client: OrthancClient, study_id: str, workers: int) -> list[Dataset]:
    """Every instance of a study, read by pydicom (downloads in parallel)."""
    import pydicom

    ids = [str(i["ID"]) for i in client.study_instances(study_id)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        blobs = list(pool.map(client.instance_file, ids))
    out: list[Dataset] = []
    for instance_id, blob in zip(ids, blobs, strict=True):
        try:
            out.append(pydicom.dcmread(io.BytesIO(blob)))
        except Exception as exc:
            raise InvalidStudy(f"instance {instance_id} is not readable DICOM: {exc}") from exc
    return out


def pick_views(datasets: list[Dataset], label: str,
               policy: ExamPolicy | None = None) -> tuple[dict[str, Dataset], str]:
    """The four screening views and the report text of one study, by the declared policy.

    Raises:
        InvalidStudy: the policy refuses the study (see pipelines/ingest/policy.py).
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


def assemble(datasets: list[Dataset], label: str, height: int, width: int) -> ExamImages:
    """Check, label and preprocess one study's datasets."""
    views, text = pick_views(datasets, label)
    birads = birads_by_side(text) if text else {}
    pixels, attrs = {}, {}
    for view, ds in views.items():
        try:
            arr = preprocess(ds, view[0], height, width)
        except InvalidStudy as exc:
            raise InvalidStudy(f"exam {label} view {view}: {exc}") from exc
        pixels[view] = arr
        attrs[view] = attributes(ds, view, arr)
        attrs[view]["birads"] = birads.get(view[0])
        attrs[view]["label"] = label_of(birads.get(view[0]))
    first = views[SCREENING_VIEWS[0]]
    ids = {"patient": str(first.get("PatientID", "")), "study": str(first.StudyInstanceUID)}
    ids.update({f"instance:{v}": str(ds.SOPInstanceUID) for v, ds in views.items()})
    return ExamImages(views=pixels, attrs=attrs, birads=birads, identifiers=ids)
