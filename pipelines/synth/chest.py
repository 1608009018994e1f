"""Synthetic chest radiographs (DX, PA) for the second screening task, `cxr-nodule`.

A smooth chest-like image (dark lungs, bright mediastinum and diaphragm, ribs as faint
arcs) with, for positives, one round nodule in a lung; real DICOM (Digital X-Ray Image
Storage - For Presentation) with PHI-looking identifiers, stored into Orthanc over REST.
It exists to show that a screening task is configuration plus a model: the images are
plausible enough to flow through the same pipeline, not to train a clinical model.
Each study also holds its radiology report as a Basic Text SR: the label source of the
task (`labels: findings` in pipelines/tasks.yaml), phrased with the negations and request
sections a labeller must read past ("INDICATION: rule out nodule", "no focal opacity").
"""

from __future__ import annotations

import dataclasses
import io
from typing import TYPE_CHECKING

import numpy as np

from pipelines.synth.dicom import dicom_date

if TYPE_CHECKING:
    from pydicom import Dataset

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"


@dataclasses.dataclass(frozen=True)
class ChestExam:
    index: int
    positive: bool
    blob: bytes  # the DICOM file
    report: bytes  # the report, a Basic Text SR of the same study


INDICATIONS = ("Cough for three weeks.", "Pre-operative assessment.", "Smoker, rule out nodule.",
               "Follow-up of pneumonia.", "Shortness of breath, rule out mass.")
NEGATIVE_FINDINGS = (
    "The lungs are clear. No focal opacity, nodule or mass. Heart size normal.",
    "No pulmonary nodule is seen. No pleural effusion or pneumothorax.",
    "Clear lungs without focal consolidation or mass. Normal mediastinal contours.",
    "The previously reported opacity has resolved. No new abnormality.",
)
POSITIVE_FINDINGS = (
    "A {mm} mm rounded nodule projects over the {zone} zone. No pleural effusion.",
    "No effusion, but a {mm} mm nodule is seen in the {zone} zone.",
    "Well-defined {mm} mm opacity in the {zone} zone, suspicious for a pulmonary nodule.",
)


def report_text(rng: np.random.Generator, positive: bool) -> str:
    """The report of one exam: indication, findings and impression."""
    indication = INDICATIONS[int(rng.integers(len(INDICATIONS)))]
    if positive:
        template = POSITIVE_FINDINGS[int(rng.integers(len(POSITIVE_FINDINGS)))]
        findings = template.format(mm=int(rng.integers(6, 19)), zone=rng.choice(["upper", "mid", "lower"]))
        impression = "Pulmonary nodule. CT chest recommended."
    else:
        findings = NEGATIVE_FINDINGS[int(rng.integers(len(NEGATIVE_FINDINGS)))]
        impression = "No acute cardiopulmonary abnormality."
    return f"INDICATION: {indication}\nFINDINGS: {findings}\nIMPRESSION: {impression}"


def report_dataset(image: Dataset, text: str, key: list[str]) -> bytes:
    """The report as a verified Basic Text SR in its own series of the image's study."""
    from pydicom.uid import generate_uid

    from pipelines.synth.dicom import code_item, new_dataset
    from pipelines.synth.sr import BASIC_TEXT_SR, text_item

    ds = new_dataset(BASIC_TEXT_SR, generate_uid(entropy_srcs=[*key, "report"]))
    for name in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                 "AccessionNumber", "StudyDate", "StudyTime", "StudyID", "ContentDate", "ContentTime"):
        setattr(ds, name, getattr(image, name))
    ds.Modality, ds.Manufacturer = "SR", "SynthRIS"
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[*key, "report-series"])
    ds.SeriesNumber, ds.InstanceNumber = 99, 1
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [code_item("18748-4", "LN", "Diagnostic imaging report")]
    ds.ContentSequence = [text_item(text)]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def chest_image(rng: np.random.Generator, size: int, nodule: bool) -> np.ndarray:
    """A PA chest radiograph-like image, uint16 with 12 bits stored (bright = dense)."""
    y, x = np.mgrid[0:size, 0:size] / size
    body = np.exp(-(((x - 0.5) / 0.42) ** 6 + ((y - 0.55) / 0.5) ** 6))
    lungs = sum(np.exp(-(((x - cx) / 0.15) ** 2 + ((y - 0.45) / 0.27) ** 2)) for cx in (0.3, 0.7))
    ribs = 0.06 * np.sin(2 * np.pi * (y * 9 + 0.4 * np.abs(x - 0.5))) * lungs
    image = 0.85 * body - 0.55 * lungs + ribs + 0.35 * (y > 0.78) * body
    if nodule:
        cx, cy = rng.choice([0.3, 0.7]) + rng.uniform(-0.06, 0.06), rng.uniform(0.32, 0.6)
        r = rng.uniform(0.02, 0.04)
        image += 0.35 * np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r)))
    image += rng.normal(0, 0.01, image.shape)
    return (np.clip(image, 0, 1) * 4095).astype(np.uint16)


def chest_dataset(seed: int, index: int, study_date: str, size: int, positive: bool) -> tuple[bytes, bytes]:
    """One chest exam (its own patient and study): the image and the report, as DICOM files."""
    from pydicom.uid import generate_uid

    from pipelines.synth.dicom import new_dataset

    rng = np.random.default_rng([seed, index])
    key = [str(seed), str(index), study_date, "cxr"]
    ds = new_dataset(DX_FOR_PRESENTATION, generate_uid(entropy_srcs=[*key, "sop"]))
    ds.PatientName = f"CHEST^SYNTH{seed}X{index:04d}"
    ds.PatientID = f"CXR-{seed}-{index:05d}"
    ds.PatientBirthDate = f"19{50 + index % 40:02d}0101"
    ds.PatientSex = "F" if index % 2 else "M"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[*key, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[*key, "series"])
    ds.AccessionNumber = f"CX{seed % 1000:03d}{index:05d}"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = dicom_date(study_date)
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "091500"
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer, ds.ManufacturerModelName = "SynthRay", "DR-1"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PatientOrientation = ["L", "F"]
    ds.PixelSpacing = ds.ImagerPixelSpacing = [0.7, 0.7]
    pixels = chest_image(rng, size, positive)
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    report = report_dataset(ds, report_text(np.random.default_rng([seed, index, 1]), positive), key)
    return buffer.getvalue(), report


def exams(count: int, study_date: str, seed: int, size: int = 512,
          positive_rate: float = 0.3) -> list[ChestExam]:
    rng = np.random.default_rng(seed)
    flags = rng.random(count) < positive_rate
    return [ChestExam(i, bool(p), *chest_dataset(seed, i, study_date, size, bool(p)))
            for i, p in enumerate(flags)]


def push(count: int, study_date: str, seed: int, size: int = 512) -> dict[str, int]:
    """Generate `count` chest exams and store them into the configured Orthanc over REST."""
    from pipelines.pacs.client import OrthancClient

    made = exams(count, study_date, seed, size)
    with OrthancClient() as client:
        for exam in made:
            client.upload(exam.blob)
            client.upload(exam.report)
    return {"exams": len(made), "stored": len(made), "positives": sum(e.positive for e in made)}
