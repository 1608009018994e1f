"""De-identifying synthetic exams leaves none of the PHI synth planted, and keeps what
screening needs."""

from __future__ import annotations

import datetime as dt
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pipelines import db
from pipelines.deid import (
    MemoryKeys,
    TableKeys,
    check_no_phi,
    deidentify,
    deidentify_exam,
    header_json,
    original_identifiers,
    without_pixel_data,
)
from pipelines.errors import InvalidStudy, PhiDetected
from pipelines.synth import SynthExam, iter_exams

SCALE = 0.03
# Screening needs these, and the profile lets them through unchanged.
KEPT = ("Modality", "ImageLaterality", "ViewPosition", "PhotometricInterpretation", "BitsStored",
        "PixelSpacing", "Manufacturer", "ManufacturerModelName", "KVP", "BodyPartThickness",
        "CompressionForce", "PresentationIntentType", "WindowCenter", "WindowWidth",
        "VOILUTFunction", "SOPClassUID")


@pytest.fixture(scope="module")
def exams() -> list[SynthExam]:
    # Two dates of the same two women, so that priors share a patient.
    first = list(iter_exams(2, "2024-02-10", "north", 3, scale=SCALE, patients=2))
    return first + list(iter_exams(2, "2025-03-01", "north", 3, scale=SCALE, patients=2))


@pytest.fixture(scope="module")
def deidentified(exams: list[SynthExam], tmp_path_factory: pytest.TempPathFactory
                 ) -> list[list[pydicom.Dataset]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('deid') / 'hospital.db'}"
    with db.engine_for(url).begin() as conn:
        keys = TableKeys(conn)
        return [[deidentify(i.dataset, keys) for i in exam.instances] for exam in exams]


def planted(ds: pydicom.Dataset) -> set[str]:
    """The PHI synth plants, read directly (not through the collector under test)."""
    private = ds.private_block(0x0011, "RADFLOW SYNTH")
    request = ds.get("RequestAttributesSequence", [pydicom.Dataset()])[0]
    values = {
        str(ds.PatientName), *str(ds.PatientName).split("^")[:2], str(ds.PatientID),
        ds.PatientBirthDate, ds.AccessionNumber, ds.StudyID, ds.InstitutionName,
        ds.InstitutionAddress, str(ds.ReferringPhysicianName), str(ds.OperatorsName),
        str(ds.PerformingPhysicianName), str(ds.PhysiciansOfRecord),
        str(ds.NameOfPhysiciansReadingStudy), ds.PatientAddress, ds.PatientTelephoneNumbers,
        ds.OtherPatientIDsSequence[0].PatientID, ds.StationName, ds.DeviceSerialNumber,
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
        ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID,
        ds.ReferringPhysicianIdentificationSequence[0].PersonIdentificationCodeSequence[0].CodeValue,
        str(private[0x02].value), private[0x03].value, str(request.get("AccessionNumber", "")),
    }
    return {v for v in values if v}


def lake_header(ds: pydicom.Dataset) -> str:
    """What ingest would store next to the view's array: the header as DICOM JSON."""
    return json.dumps(header_json(ds))


def encoded(ds: pydicom.Dataset) -> bytes:
    """The de-identified instance as a file, pixel data left out."""
    header = pydicom.Dataset()
    for elem in ds:
        if elem.keyword != "PixelData":
            header.add(elem)
    header.file_meta = ds.file_meta
    buffer = io.BytesIO()
    header.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_no_planted_phi_survives_in_header_json_or_file(
    exams: list[SynthExam], deidentified: list[list[pydicom.Dataset]]
) -> None:
    for exam, outputs in zip(exams, deidentified, strict=True):
        for instance, out in zip(exam.instances, outputs, strict=True):
            secrets = planted(instance.dataset)
            assert len(secrets) >= 20
            assert secrets <= original_identifiers(instance.dataset) | {
                v for v in secrets if len(v) < 4}
            check_no_phi(out, secrets | original_identifiers(instance.dataset))
            text, raw = lake_header(out).lower(), encoded(out).lower()
            leaks = [s for s in secrets if s.lower() in text or s.lower().encode() in raw]
            assert not leaks, f"{instance.name}: {len(leaks)} planted values survive"


def test_the_check_would_have_caught_the_original(exams: list[SynthExam]) -> None:
    ds = exams[0].instances[0].dataset
    with pytest.raises(PhiDetected):
        check_no_phi(ds, planted(ds))


def test_screening_attributes_and_pixels_survive(
    exams: list[SynthExam], deidentified: list[list[pydicom.Dataset]]
) -> None:
    for exam, outputs in zip(exams, deidentified, strict=True):
        for instance, out in list(zip(exam.instances, outputs, strict=True))[:4]:
            original = instance.dataset
            assert [out.get(k) for k in KEPT] == [original.get(k) for k in KEPT]
            assert out.ViewCodeSequence[0].CodeValue == original.ViewCodeSequence[0].CodeValue
            assert np.array_equal(out.pixel_array, original.pixel_array)


def test_exam_structure_and_priors_are_kept_under_pseudonyms(
    exams: list[SynthExam], deidentified: list[list[pydicom.Dataset]]
) -> None:
    for outputs in deidentified:
        assert len({ds.StudyInstanceUID for ds in outputs}) == 1
        assert len({ds.SeriesInstanceUID for ds in outputs}) == 5
        report = outputs[-1]
        evidence = report.CurrentRequestedProcedureEvidenceSequence[0]
        referenced = {s.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                      for s in evidence.ReferencedSeriesSequence}
        assert referenced == {ds.SOPInstanceUID for ds in outputs[:4]}
    # exam 0 and exam 2 are the same woman a year apart (patients=2 pool)
    same = [exams[0].instances[0].dataset, exams[2].instances[0].dataset]
    assert same[0].PatientID == same[1].PatientID
    before, after = deidentified[0][0], deidentified[2][0]
    assert before.PatientID == after.PatientID != same[0].PatientID

    def days(ds: pydicom.Dataset) -> int:
        return dt.datetime.strptime(ds.StudyDate, "%Y%m%d").toordinal()

    assert days(after) - days(before) == days(same[1]) - days(same[0])
    assert before.StudyDate != same[0].StudyDate


def test_header_json_is_what_the_lake_would_hold(
    deidentified: list[list[pydicom.Dataset]],
) -> None:
    ds = deidentified[0][0]
    header = json.loads(lake_header(ds))
    assert "PixelData" in ds  # the dataset keeps its pixels
    assert header["00120062"]["Value"] == ["YES"]  # PatientIdentityRemoved
    assert "7FE00010" not in header
    assert not [tag for tag in header if int(tag[:4], 16) % 2]  # no private groups


def test_deidentify_exam_gives_pixel_free_json_headers_and_the_shifted_date(
    exams: list[SynthExam], tmp_path: Path
) -> None:
    exam = exams[0]
    views = {i.name: i.dataset for i in exam.instances[:4]}
    headers = {v: pickle.loads(pickle.dumps(without_pixel_data(ds))) for v, ds in views.items()}
    assert all("PixelData" not in h for h in headers.values())
    with db.engine_for(f"sqlite:///{tmp_path / 'hospital.db'}").begin() as conn:
        keys = TableKeys(conn)
        result = deidentify_exam(headers, keys)
        offset = keys.date_offset_days(str(views["R-CC"].PatientID))
    expected = dt.date.fromisoformat(exam.plan.study_date) + dt.timedelta(days=offset)
    assert result.study_date == expected.isoformat() != exam.plan.study_date
    assert sorted(result.headers) == sorted(views)
    text = json.dumps(result.headers).lower()
    assert not [s for s in planted(views["R-CC"]) if s.lower() in text]
    assert result.headers["R-CC"]["00101010"]["Value"] == [views["R-CC"].PatientAge]
    codes = [i["00080100"]["Value"][0] for i in result.headers["R-CC"]["00120064"]["Value"]]
    assert codes == ["113100", "113107", "113108"]


def test_deidentify_exam_quarantines_burned_in_annotation(exams: list[SynthExam]) -> None:
    views = {i.name: without_pixel_data(i.dataset) for i in exams[0].instances[:4]}
    views["L-CC"].BurnedInAnnotation = "YES"
    with pytest.raises(InvalidStudy, match="view L-CC: BurnedInAnnotation is YES"):
        deidentify_exam(views, MemoryKeys())
