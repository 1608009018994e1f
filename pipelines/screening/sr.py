"""The screening result of one exam as a DICOM SR (TID 1500 Measurement Report, highdicom).

Structure (Comprehensive SR, root TID 1500 "Imaging Measurement Report"):
- one TID 1501 measurement group per view, tracking identifier = the view name
  ("R-CC"), referencing the original image (SOP class + instance UID), holding the view's
  "Probability of cancer" (DCM 111047), "Included in exam score" Yes/No (99RADFLOW) and,
  when the view was discounted, a TEXT "Reason excluded" with the QC reason;
- one measurement group "exam" referencing every view, holding the exam malignancy score,
  the suspicion score 1-10 and "Flagged for reading" Yes/No.
Concepts without a standard code use the private scheme 99RADFLOW, declared in the
Coding Scheme Identification Sequence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.errors import PermanentError

if TYPE_CHECKING:
    import highdicom as hd
    from pydicom import Dataset

    from pipelines.screening.writeback import ExamFinding

SCHEME = "99RADFLOW"
# Patient, clinical-trial-free study and patient-study modules: copied from the source so
# the SR files under the study the radiologist reads.
PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence",
    "PatientBirthDate", "PatientSex", "OtherPatientIDsSequence", "PatientAge", "PatientSize",
    "PatientWeight", "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
    "StudyID", "AccessionNumber", "IssuerOfAccessionNumberSequence", "StudyDescription",
)
# highdicom reads these from the first evidence dataset: type 2 (may be empty), so an
# absent one is given empty rather than failing the write-back.
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
          "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
# Procedure reported by the source modality, (value, meaning, scheme); others: "Imaging".
PROCEDURES = {
    "MG": ("24606-6", "MG Breast Screening", "LN"),
    "CR": ("36554-4", "XR Chest Views", "LN"),
    "DX": ("36554-4", "XR Chest Views", "LN"),
}


def header(ds: Dataset) -> Dataset:
    """The few attributes of a source the SR needs (references, patient and study), with
    absent type-2 ones empty. Small on purpose: highdicom deep-copies its evidence."""
    from pydicom import Dataset as _Dataset

    out = _Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "Modality", "Rows",
                    "Columns", "SpecificCharacterSet", *PATIENT_STUDY_KEYWORDS):
        if keyword in ds:
            out[keyword] = ds[keyword]
    for keyword in _TYPE2:
        if keyword not in out:
            setattr(out, keyword, "")
    return out


def scrub(text: str, source: Dataset) -> str:
    """`text` with every patient/study value of `source` replaced by "<redacted>" (library
    error messages and warnings may quote a name or date they found invalid)."""
    for keyword in PATIENT_STUDY_KEYWORDS:
        value = str(source.get(keyword, "") or "")
        if len(value) >= 3 and not value.startswith("[") and value in text:
            text = text.replace(value, "<redacted>")
    for part in str(source.get("PatientName", "") or "").split("^"):
        if len(part) >= 3:
            text = text.replace(part, "<redacted>")
    return text


def copy_patient_study(target: Dataset, source: Dataset) -> None:
    """Copy the patient and study attributes present in `source` onto `target`."""
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword in source:
            target[keyword] = source[keyword]


def _code(value: str, meaning: str, scheme: str = SCHEME) -> hd.sr.CodedConcept:
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _yes_no(flag: bool) -> hd.sr.CodedConcept:
    return _code("373066001", "Yes", "SCT") if flag else _code("373067005", "No", "SCT")


def _score(name: hd.sr.CodedConcept, value: float | int, unit: hd.sr.CodedConcept) -> hd.sr.Measurement:
    """A TID 300 measurement; floats rounded to 4 decimals (they fit DS), ints kept."""
    import highdicom as hd

    number = value if isinstance(value, int) else round(float(value), 4)
    return hd.sr.Measurement(name=name, value=number, unit=unit)


def derived_uid(*parts: str) -> str:
    """A UID that is a hash of `parts`: the same parts, the same UID.

    2.25 form (ISO/IEC 9834-8) of a name-based UUID (version 5) of the parts.
    """
    import uuid

    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, chr(0).join(parts)).int}"


def content(finding: ExamFinding, sources: list[Dataset], device_uid: str,
            sop_uid: str) -> hd.sr.MeasurementReport:
    """The TID 1500 content tree of one exam finding (see the module docstring).

    Tracking UIDs derive from the SR's `sop_uid`, so the same SR UID gives the same tree.
    """
    import highdicom as hd

    algorithm = hd.sr.AlgorithmIdentification(name=finding.model_name,
                                              version=finding.model_version,
                                              manufacturer="radflow")
    probability = _code("111047", "Probability of cancer", "DCM")
    no_units = _code("1", "no units", "UCUM")
    groups = []
    for view, src in zip(finding.views, sources, strict=True):
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=derived_uid(sop_uid, "tracking", view.view), identifier=view.view),
            algorithm_id=algorithm,
            measurements=[_score(probability, view.score, no_units)],
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(
                _code("RF0001", "Included in exam score"), _yes_no(view.discounted_reason is None))],
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(src)],
        )
        if view.discounted_reason:
            group[0].ContentSequence.append(hd.sr.TextContentItem(
                name=_code("RF0002", "Reason excluded from exam score"),
                value=view.discounted_reason[:1024],
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
        groups.append(group)
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(sop_uid, "tracking", "exam"), identifier="exam"),
        algorithm_id=algorithm,
        measurements=[
            _score(_code("RF0003", "Exam malignancy score"), finding.exam_score, no_units),
            _score(_code("RF0004", "Suspicion score (1-10)"), int(finding.suspicion),
                   _code("{score}", "score", "UCUM")),
        ],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(
            _code("RF0005", "Flagged for reading"), _yes_no(bool(finding.flagged)))],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(s) for s in sources],
    ))
    modality = str(sources[0].get("Modality", "") or "")
    procedure = PROCEDURES.get(modality, ("363679005", "Imaging", "SCT"))
    observer = hd.sr.ObserverContext(
        observer_type=_code("121007", "Device", "DCM"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid, name="radflow", manufacturer_name="radflow",
            model_name=finding.model_name[:64]),
    )
    return hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_code(*procedure),
        imaging_measurements=groups,
    )


def build_sr(finding: ExamFinding, *, series_uid: str, sop_uid: str, device_uid: str,
             series_description: str, series_number: int = 9001) -> Dataset:
    """The Comprehensive SR of one exam finding, in the source study.

    Args:
        finding: the exam finding (checked by the caller).
        series_uid: SeriesInstanceUID of the new SR series.
        sop_uid: SOPInstanceUID of the SR.
        device_uid: the observer device UID (radflow, the model).
        series_description: names the task and model version (see writeback).
        series_number: the SR series number.

    Returns:
        A pydicom Dataset with file meta (Explicit VR Little Endian), ready to save.

    Raises:
        PermanentError: highdicom refuses the content; the message names the model
            version and what highdicom said (never an identifier).
    """
    import highdicom as hd

    sources = [header(v.source) for v in finding.views]
    try:
        report = content(finding, sources, device_uid, sop_uid)
        sr = hd.sr.ComprehensiveSR(
            evidence=sources,
            content=report[0],
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=sop_uid,
            instance_number=1,
            manufacturer="radflow",
            manufacturer_model_name=finding.model_name[:64],
            software_versions=str(finding.model_version)[:64],
            series_description=series_description,
            is_complete=True,
            is_final=False,  # a machine's preliminary reading: the radiologist reports
            coding_schemes=[hd.coding_schemes.CodingSchemeIdentificationItem(
                designator=SCHEME, name="radflow screening concepts",
                responsible_organization="radflow")],
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise PermanentError(f"SR for model version {finding.model_version} could not be "
                             f"built: {scrub(str(exc), finding.views[0].source)}") from None
    copy_patient_study(sr, finding.views[0].source)
    return sr
