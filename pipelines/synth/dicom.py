"""DICOM datasets of a synthetic exam: patient, study and equipment modules, MG images.

Datasets mirror DICOM, so attribute names use DICOM keyword casing. Every value is a
pure function of the exam plan: no clock, no process state, so the same arguments give
byte-identical files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.synth.exams import ExamPlan
from pipelines.synth.patients import PHYSICIANS, RADIOLOGISTS, TECHNOLOGISTS
from pipelines.synth.seeding import rng_for, stable_seed, uid_for
from pipelines.synth.sites import Geometry, VendorProfile

if TYPE_CHECKING:
    from pydicom import Dataset

    from pipelines.synth.images import RenderedView

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
PRIVATE_CREATOR = "RADFLOW SYNTH"
PRIVATE_GROUP = 0x0011
VIEW_CODES = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}
# Row direction \ column direction, as in the DICOM mammography examples.
PATIENT_ORIENTATION = {
    ("R", "CC"): ["P", "L"],
    ("L", "CC"): ["A", "R"],
    ("R", "MLO"): ["P", "FL"],
    ("L", "MLO"): ["A", "FR"],
}


def study_uid(plan: ExamPlan) -> str:
    """The StudyInstanceUID of an exam."""
    return str(uid_for(*plan.key, "study"))


def dicom_date(iso_date: str) -> str:
    """An ISO date as a DICOM DA: "2025-03-01" -> "20250301"."""
    return iso_date.replace("-", "")


def decimal(value: float) -> str:
    """A DS value that fits the 16-character limit."""
    return f"{value:.6g}"


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """One item of a code sequence."""
    from pydicom import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def new_dataset(sop_class: str, sop_instance: str) -> Dataset:
    """An empty dataset with file meta for Explicit VR Little Endian."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    return ds


def patient_study(plan: ExamPlan, profile: VendorProfile) -> Dataset:
    """Patient, general study and equipment attributes shared by all instances of an exam.

    These are the PHI-looking identifiers de-identification must remove, including a
    private block ("RADFLOW SYNTH") that repeats the MRN. Built once per exam and copied
    into each instance with `add_shared` (setting pydicom attributes is the slow part).
    """
    import datetime as dt

    from pydicom import Dataset

    ds = Dataset()
    study_day = dt.date.fromisoformat(plan.study_date)
    patient = plan.patient
    rng = rng_for("staff", *plan.key)
    ds.PatientName = patient.name
    ds.PatientID = patient.mrn
    ds.PatientBirthDate = patient.birth_date(study_day).strftime("%Y%m%d")
    ds.PatientSex = "F"
    ds.PatientAge = f"{patient.age_at(study_day):03d}Y"
    ds.StudyInstanceUID = study_uid(plan)
    ds.StudyDate = ds.ContentDate = dicom_date(plan.study_date)
    ds.StudyTime = ds.ContentTime = plan.study_time
    ds.AccessionNumber = plan.accession
    ds.StudyID = plan.study_id
    ds.StudyDescription = "MAMMOGRAPHY SCREENING BILATERAL"
    ds.ReferringPhysicianName = PHYSICIANS[int(rng.integers(len(PHYSICIANS)))]
    ds.OperatorsName = TECHNOLOGISTS[int(rng.integers(len(TECHNOLOGISTS)))]
    ds.Manufacturer = profile.manufacturer
    ds.ManufacturerModelName = profile.model
    ds.SoftwareVersions = profile.software
    ds.DeviceSerialNumber = f"{stable_seed('serial', plan.site) % 10**8:08d}"
    ds.InstitutionName = f"{plan.site.replace('_', ' ').replace('-', ' ').title()} Hospital"
    number = stable_seed("address", plan.site) % 900 + 100
    ds.InstitutionAddress = f"{number} Hospital Road, {plan.site.title()}ville"
    ds.StationName = f"MAMMO{stable_seed('station', plan.site) % 100:02d}"
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", patient.mrn)
    add_more_phi(ds, plan)
    return ds


def add_more_phi(ds: Dataset, plan: ExamPlan) -> None:
    """More identifiers, in the places real PACS data hides them: physicians, the
    patient's address and other ids, nested sequences and a private block with names.

    Drawn from their own random stream, so the values above stay as they were.
    """
    from pydicom import Dataset

    patient = plan.patient
    rng = rng_for("more-phi", *plan.key)
    ds.PerformingPhysicianName = PHYSICIANS[int(rng.integers(len(PHYSICIANS)))]
    ds.PhysiciansOfRecord = PHYSICIANS[int(rng.integers(len(PHYSICIANS)))]
    ds.NameOfPhysiciansReadingStudy = RADIOLOGISTS[int(rng.integers(len(RADIOLOGISTS)))]
    ds.InstitutionalDepartmentName = f"{plan.site.title()} Breast Imaging Unit"
    number = stable_seed("patient-address", patient.mrn) % 9000 + 100
    ds.PatientAddress = f"{number} Linden Street, {plan.site.title()}ville"
    ds.PatientTelephoneNumbers = f"+1 555 {stable_seed('phone', patient.mrn) % 10**7:07d}"
    other = Dataset()
    other.PatientID = f"NHS{stable_seed('other-id', patient.mrn) % 10**10:010d}"
    other.IssuerOfPatientID = f"{plan.site.upper()} REGIONAL REGISTRY"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [other]
    referring = Dataset()
    referring.InstitutionName = ds.InstitutionName
    referring.PersonIdentificationCodeSequence = [
        code_item(f"NPI{stable_seed('npi', ds.ReferringPhysicianName) % 10**8:08d}", "L",
                  str(ds.ReferringPhysicianName))
    ]
    ds.ReferringPhysicianIdentificationSequence = [referring]
    prior = Dataset()
    prior.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    prior.ReferencedSOPInstanceUID = str(uid_for(*plan.key, "referenced-study"))
    ds.ReferencedStudySequence = [prior]
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    block.add_new(0x02, "PN", patient.name)
    block.add_new(0x03, "LO", plan.accession)
    inner = Dataset()
    inner.PatientName = patient.name
    inner.PatientBirthDate = ds.PatientBirthDate
    inner.private_block(PRIVATE_GROUP + 2, PRIVATE_CREATOR, create=True).add_new(
        0x01, "LO", patient.mrn
    )
    block.add_new(0x10, "SQ", [inner])


def add_shared(ds: Dataset, shared: Dataset) -> None:
    """Copy every element of `shared` into `ds` (shallow copies: values are immutable)."""
    import copy

    for element in shared:
        ds[element.tag] = copy.copy(element)


def mg_dataset(
    plan: ExamPlan,
    profile: VendorProfile,
    geometry: Geometry,
    view: str,
    image: RenderedView,
    shared: Dataset,
) -> Dataset:
    """A Digital Mammography X-Ray Image (For Presentation) of one view.

    Args:
        plan: the exam.
        profile: the site's vendor profile.
        geometry: the image matrix and spacing.
        view: "R-CC", "L-CC", "R-MLO" or "L-MLO".
        image: the rendered stored pixels and window.
        shared: the exam's `patient_study` attributes.

    Returns:
        The dataset with file meta, ready for `save_as(..., enforce_file_format=True)`.
    """
    from pydicom import Dataset

    side, position = view.split("-")
    ds = new_dataset(MG_FOR_PRESENTATION, str(uid_for(*plan.key, view, "instance")))
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    add_shared(ds, shared)
    ds.Modality = "MG"
    ds.SeriesInstanceUID = str(uid_for(*plan.key, view, "series"))
    ds.SeriesNumber = 1 + ("R-CC", "L-CC", "R-MLO", "L-MLO").index(view)
    ds.SeriesDescription = f"{side} {position}"
    ds.InstanceNumber = 1
    ds.AcquisitionDate = ds.StudyDate
    ds.AcquisitionTime = plan.study_time
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "BREAST"
    ds.ImageLaterality = side
    ds.ViewPosition = position
    ds.PatientOrientation = PATIENT_ORIENTATION[(side, position)]
    code, meaning = VIEW_CODES[position]
    ds.ViewCodeSequence = [code_item(code, "SCT", meaning)]
    ds.ViewCodeSequence[0].ViewModifierCodeSequence = []
    ds.AnatomicRegionSequence = [code_item("76752008", "SCT", "Breast")]
    ds.BurnedInAnnotation = "NO"
    ds.QualityControlImage = "NO"
    ds.LossyImageCompression = "00"
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.DetectorType = profile.detector_type
    ds.DetectorID = f"DET{stable_seed('detector', plan.site) % 10**6:06d}"
    add_acquisition(ds, plan, profile, side, position)
    add_pixels(ds, profile, geometry, image)
    ds.ReferencedPerformedProcedureStepSequence = []
    request = Dataset()
    request.AccessionNumber = plan.accession
    request.RequestedProcedureID = plan.accession
    request.ScheduledProcedureStepID = f"SPS{plan.accession[-8:]}"
    request.RequestedProcedureDescription = "Screening mammography, bilateral"
    ds.RequestAttributesSequence = [request]
    return ds


def add_acquisition(
    ds: Dataset, plan: ExamPlan, profile: VendorProfile, side: str, position: str
) -> None:
    """Exposure, compression and tube attributes, plausible for the breast and view."""
    rng = rng_for("acquisition", *plan.key, side, position)
    thickness = 45.0 + 25.0 * (plan.patient.size - 0.85) / 0.25 + float(rng.normal(0, 4))
    thickness += 5.0 if position == "MLO" else 0.0
    low, high = profile.kvp_range
    kvp = min(high, max(low, round(low + (thickness - 30.0) / 45.0 * (high - low))))
    exposure_uas = int(rng.uniform(60_000, 180_000))
    ds.KVP = decimal(kvp)
    ds.ExposureInuAs = exposure_uas
    ds.Exposure = max(1, exposure_uas // 1000)
    ds.ExposureTime = int(exposure_uas / 1000 / 0.12)
    ds.XRayTubeCurrent = 120
    ds.BodyPartThickness = decimal(round(thickness, 1))
    ds.CompressionForce = decimal(round(float(rng.uniform(70, 150)), 1))
    ds.AnodeTargetMaterial = profile.anode
    ds.FilterMaterial = profile.filters[int(rng.integers(len(profile.filters)))]
    ds.FocalSpots = decimal(0.3)
    ds.DistanceSourceToDetector = decimal(660.0)
    ds.DistanceSourceToPatient = decimal(660.0 - thickness - 20.0)
    ds.EstimatedRadiographicMagnificationFactor = decimal(1.0)
    ds.PositionerPrimaryAngle = decimal(0.0 if position == "CC" else (45 if side == "R" else -45))
    ds.OrganDose = decimal(round(float(rng.uniform(0.9, 2.4)), 3))
    ds.EntranceDoseInmGy = decimal(round(float(rng.uniform(3.0, 9.0)), 3))
    ds.RelativeXRayExposure = int(rng.uniform(200, 900))


def add_pixels(
    ds: Dataset, profile: VendorProfile, geometry: Geometry, image: RenderedView
) -> None:
    """Image pixel, presentation and VOI attributes of the vendor."""
    from pydicom.tag import Tag

    rows, cols = image.pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = profile.photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16
    ds.BitsStored = profile.bits_stored
    ds.HighBit = profile.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = ds.ImagerPixelSpacing = [decimal(geometry.spacing_mm)] * 2
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if profile.photometric == "MONOCHROME1" else -1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    monochrome1 = profile.photometric == "MONOCHROME1"
    ds.PresentationLUTShape = "INVERSE" if monochrome1 else "IDENTITY"
    ds.WindowCenter, ds.WindowWidth = image.window_center, image.window_width
    ds.WindowCenterWidthExplanation = "NORMAL"
    ds.VOILUTFunction = profile.voi_function
    ds.add_new(Tag(0x7FE0, 0x0010), "OW", image.pixels.astype("<u2").tobytes())
