"""The exam's BI-RADS report as a Basic Text SR in its own series of the same study."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.synth.dicom import add_shared, code_item, new_dataset
from pipelines.synth.exams import ExamPlan
from pipelines.synth.patients import RADIOLOGISTS
from pipelines.synth.seeding import rng_for, uid_for

if TYPE_CHECKING:
    from pydicom import Dataset

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
REPORT_SERIES_NUMBER = 99


def sr_dataset(
    plan: ExamPlan, shared: Dataset, text: str, images: list[tuple[str, str, str]]
) -> Dataset:
    """A verified, complete Basic Text SR holding the report text.

    Args:
        plan: the exam.
        shared: the exam's patient, study and equipment attributes (`patient_study`).
        text: the report; stored in one TEXT content item under a CONTAINER root.
        images: (SOP class, SeriesInstanceUID, SOPInstanceUID) of the exam's images, listed
            as the evidence the report was made from.

    Returns:
        The dataset with file meta, ready for `save_as(..., enforce_file_format=True)`.
    """
    ds = new_dataset(BASIC_TEXT_SR, str(uid_for(*plan.key, "report", "instance")))
    add_shared(ds, shared)
    ds.Modality = "SR"
    ds.SeriesInstanceUID = str(uid_for(*plan.key, "report", "series"))
    ds.SeriesNumber = REPORT_SERIES_NUMBER
    ds.SeriesDescription = "Screening mammography report"
    ds.InstanceNumber = 1
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    ds.VerifyingObserverSequence = [_verifier(plan)]
    ds.PerformedProcedureCodeSequence = [code_item("24606-6", "LN", "MG Breast Screening")]
    ds.CurrentRequestedProcedureEvidenceSequence = [_evidence(plan, images)]
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [code_item("18748-4", "LN", "Diagnostic imaging report")]
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = [text_item(text)]
    return ds


def _verifier(plan: ExamPlan) -> Dataset:
    from pydicom import Dataset

    rng = rng_for("radiologist", *plan.key)
    item = Dataset()
    item.VerifyingObserverName = RADIOLOGISTS[int(rng.integers(len(RADIOLOGISTS)))]
    item.VerifyingObserverIdentificationCodeSequence = []
    item.VerifyingOrganization = f"{plan.site.title()} Hospital Radiology"
    hour = min(int(plan.study_time[:2]) + 2, 23)
    item.VerificationDateTime = f"{plan.study_date.replace('-', '')}{hour:02d}{plan.study_time[2:]}"
    return item


def _evidence(plan: ExamPlan, images: list[tuple[str, str, str]]) -> Dataset:
    """The Hierarchical SOP Instance Reference of the images the report is about."""
    from pydicom import Dataset

    from pipelines.synth.dicom import study_uid

    study = Dataset()
    study.StudyInstanceUID = study_uid(plan)
    series_items = []
    for sop_class, series_uid, sop_uid in images:
        series, reference = Dataset(), Dataset()
        reference.ReferencedSOPClassUID = sop_class
        reference.ReferencedSOPInstanceUID = sop_uid
        series.SeriesInstanceUID = series_uid
        series.ReferencedSOPSequence = [reference]
        series_items.append(series)
    study.ReferencedSeriesSequence = series_items
    return study


def text_item(text: str) -> Dataset:
    from pydicom import Dataset

    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = [code_item("121070", "DCM", "Findings")]
    item.TextValue = text
    return item
