"""Small in-memory DICOM datasets for the unit tests (no files, no network).

Identifiers look like PHI on purpose, so tests can assert that none crosses the ingest
boundary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pipelines.ingest.exams import MAMMO_SOP_FOR_PRESENTATION

PATIENT_ID = "MRN-4411-2093"
PATIENT_NAME = "DOE^JANE^Q"
ACCESSION = "ACC-77120031"
VIEW_CODES = {"CC": "399162004", "MLO": "399368009"}


def breast_pixels(rows: int = 40, cols: int = 32, *, laterality: str = "L",
                  bits: int = 12, seed: int = 0) -> np.ndarray:
    """A bright half-ellipse against the chest wall: left edge for L, right edge for R
    (as stored by the modality), on a dark background, with some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    depth = xx if laterality == "L" else cols - 1 - xx
    inside = (depth / (0.7 * cols)) ** 2 + ((yy - rows / 2) / (0.45 * rows)) ** 2 <= 1.0
    top = 2**bits - 1
    arr = np.where(inside, 0.7 * top, 0.05 * top) + rng.normal(0, 0.02 * top, (rows, cols))
    return np.clip(arr, 0, top).astype(np.uint16)


def mg_image(
    pixels: np.ndarray,
    *,
    laterality: str = "L",
    position: str = "CC",
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    window: tuple[float, float] | None = None,
    modality: str = "MG",
    intent: str | None = "FOR PRESENTATION",
    study_uid: str | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    spacing: float = 0.1,
) -> Dataset:
    """One digital mammography image (MG, for presentation) with PHI-looking headers."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_SOP_FOR_PRESENTATION
    sop_uid = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MAMMO_SOP_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = PATIENT_ID
    ds.PatientName = PATIENT_NAME
    ds.AccessionNumber = ACCESSION
    ds.PatientBirthDate = "19710304"
    ds.PatientAge = "055Y"
    ds.StudyDate = "20260314"
    ds.Modality = modality
    ds.Manufacturer = "HOLOGIC, Inc."
    ds.InstitutionName = "St. Example Regional Hospital"
    if intent is not None:
        ds.PresentationIntentType = intent
    ds.ImageLaterality = laterality
    ds.ViewPosition = position
    code = Dataset()
    code.CodeValue = VIEW_CODES.get(position, "000000")
    code.CodingSchemeDesignator = "SCT"
    code.CodeMeaning = position
    ds.ViewCodeSequence = Sequence([code])
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    return ds


def sr_report(text_lines: list[str], study_uid: str) -> Dataset:
    """A basic text SR holding the report, one TEXT item per line inside a container."""
    ds = Dataset()
    ds.Modality = "SR"
    ds.StudyInstanceUID = study_uid
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = PATIENT_ID
    items = []
    for line in text_lines:
        item = Dataset()
        item.ValueType = "TEXT"
        item.TextValue = line
        items.append(item)
    container = Dataset()
    container.ValueType = "CONTAINER"
    container.ContentSequence = Sequence(items)
    ds.ValueType = "CONTAINER"
    ds.ContentSequence = Sequence([container])
    return ds


def screening_exam(rows: int = 40, cols: int = 32, **overrides: object) -> list[Dataset]:
    """The four screening views of one study (same StudyInstanceUID)."""
    study = generate_uid()
    out = []
    for i, (lat, pos) in enumerate([("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]):
        pixels = breast_pixels(rows, cols, laterality=lat, seed=i)
        out.append(mg_image(pixels, laterality=lat, position=pos, study_uid=study,
                            **overrides))  # type: ignore[arg-type]
    return out


def synthetic_dataset(site: str, index: int, view: str, code: str,
                      scale: float = 0.25) -> Dataset:
    """One synthetic MG view as synth renders it (site profile, scale), with the artifact
    `code` planted ("" for none; see pipelines/synth/artifacts.py)."""
    import dataclasses

    from pipelines.synth.dicom import mg_dataset, patient_study
    from pipelines.synth.exams import plan_exam
    from pipelines.synth.images import render_view
    from pipelines.synth.sites import geometry_for, profile_for_site

    plan = plan_exam(23, site, "2026-01-05", index, 10_000, 0.3)
    if code == "burned_in_text":
        plan = dataclasses.replace(plan, burned_in_text=(view,))
    elif code:
        plan = dataclasses.replace(plan, artifacts=((view, code),))
    profile = profile_for_site(site)
    geometry = geometry_for(profile, scale)
    side, position = view.split("-")
    image = render_view(plan, profile, geometry, side, position)
    return mg_dataset(plan, profile, geometry, view, image, patient_study(plan, profile))


def synth_mammo_views(seed: int = 3, scale: float = 0.03) -> list[Dataset]:
    """The four views of one small `radflow synth` exam (its report left out)."""
    from pipelines.synth import iter_exams

    exam = next(iter_exams(1, "2025-03-01", "siteA", seed, scale=scale))
    return [inst.dataset for inst in exam.instances if inst.name != "report"]


def sr_items(items: Any) -> list[Dataset]:
    """Every content item of an SR content tree, depth first."""
    out = []
    for item in items:
        out.append(item)
        out.extend(sr_items(item.get("ContentSequence", [])))
    return out
