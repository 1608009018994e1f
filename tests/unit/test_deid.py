"""De-identification: every profile action at any depth, private tags, stored keys, dates,
the method record, the burned-in rule and the last-line PHI check."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset

from pipelines import db
from pipelines.deid import (
    MemoryKeys,
    TableKeys,
    burned_in_annotation,
    check_no_phi,
    deidentify,
    original_identifiers,
)
from pipelines.deid.deidentify import shift_date
from pipelines.deid.keys import MAX_SHIFT_DAYS, MIN_SHIFT_DAYS
from pipelines.deid.profile import basic_profile
from pipelines.errors import InvalidStudy, PhiDetected

MRN = "MRN7730193"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1001"
SOP_UID = "1.2.826.0.1.3680043.8.498.1002"
REF_UID = "1.2.826.0.1.3680043.8.498.1003"
NEW_UID = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")
PRIVATE_NAME = "SECRETSON^PRIVATA"


def study(patient: str = MRN, date: str = "20250301", uid: str = STUDY_UID) -> Dataset:
    """A small MG-like instance with file meta and a private block."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPInstanceUID = SOP_UID
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = patient, "DOE^JANE^Q", "19600412"
    ds.PatientAge, ds.PatientSex = "064Y", "F"
    ds.StudyInstanceUID, ds.SOPInstanceUID = uid, SOP_UID
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = date, "093015", "ACC4455"
    ds.Manufacturer, ds.ImageLaterality, ds.ViewPosition = "HOLOGIC, Inc.", "R", "CC"
    ds.private_block(0x0011, "HOSPITAL X", create=True).add_new(0x01, "PN", PRIVATE_NAME)
    return ds


def nest(ds: Dataset, leaf: Dataset, depth: int) -> Dataset:
    """Put `leaf`'s elements `depth` sequence levels down (0: into `ds` itself)."""
    if depth == 0:
        for elem in leaf:
            ds[elem.tag] = elem
        return ds
    levels = ["ViewCodeSequence", "ViewModifierCodeSequence", "AnatomicRegionSequence"]
    parent = ds
    for keyword in levels[: depth - 1]:
        item = Dataset()
        setattr(parent, keyword, [item])
        parent = item
    setattr(parent, levels[depth - 1], [leaf])
    return ds


def leaf_of(ds: Dataset, depth: int) -> Dataset:
    levels = ["ViewCodeSequence", "ViewModifierCodeSequence", "AnatomicRegionSequence"]
    for keyword in levels[:depth]:
        ds = getattr(ds, keyword)[0]
    return ds


def source_image() -> list[Dataset]:
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    item.ReferencedSOPInstanceUID = REF_UID
    return [item]


Check = Callable[[Dataset, MemoryKeys, int], None]


def removed(keyword: str) -> Check:
    def check(leaf: Dataset, keys: MemoryKeys, offset: int) -> None:
        assert keyword not in leaf

    return check


def emptied(keyword: str) -> Check:
    def check(leaf: Dataset, keys: MemoryKeys, offset: int) -> None:
        assert keyword in leaf and leaf.data_element(keyword).is_empty  # type: ignore[union-attr]

    return check


def equals(keyword: str, expected: Any) -> Check:
    def check(leaf: Dataset, keys: MemoryKeys, offset: int) -> None:
        assert leaf.get(keyword) == expected

    return check


def remapped(leaf: Dataset, keys: MemoryKeys, offset: int) -> None:
    assert leaf.ReferencedSOPInstanceUID == keys.uid(REF_UID)
    assert NEW_UID.match(leaf.ReferencedSOPInstanceUID)


def references_remapped(leaf: Dataset, keys: MemoryKeys, offset: int) -> None:
    (item,) = leaf.SourceImageSequence
    assert item.ReferencedSOPInstanceUID == keys.uid(REF_UID)
    assert item.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"


def shifted(leaf: Dataset, keys: MemoryKeys, offset: int) -> None:
    expected = dt.date(2024, 12, 24) + dt.timedelta(days=offset)
    assert leaf.AcquisitionDate == expected.strftime("%Y%m%d")
    assert leaf.AcquisitionTime == "101500"  # a whole-day shift keeps the time


# (Basic Profile action, keyword, original value, what must come out)
ACTIONS: list[tuple[str, str, Any, Check]] = [
    ("X", "InstitutionAddress", "1 Hospital Road", removed("InstitutionAddress")),
    ("X", "OtherPatientIDsSequence", [Dataset()], removed("OtherPatientIDsSequence")),
    ("Z", "AccessionNumber", "ACC998877", emptied("AccessionNumber")),
    ("D", "PersonName", "ROE^RICHARD", equals("PersonName", "ANONYMIZED")),
    ("U", "ReferencedSOPInstanceUID", REF_UID, remapped),
    ("Z/D", "ContrastBolusAgent", "IODINE", emptied("ContrastBolusAgent")),
    ("X/Z", "RequestedProcedureDescription", "MAMMO", emptied("RequestedProcedureDescription")),
    ("X/D", "ProtocolName", "SCREEN R CC", equals("ProtocolName", "ANONYMIZED")),
    ("X/Z/D", "InstitutionName", "St Elsewhere", emptied("InstitutionName")),
    ("X/Z/U*", "SourceImageSequence", source_image(), references_remapped),
    ("K", "KVP", "28", equals("KVP", "28")),
    ("K", "BodyPartThickness", "52.5", equals("BodyPartThickness", "52.5")),
    ("C", "AcquisitionDate", "20241224", shifted),
]


@pytest.mark.parametrize("depth", [0, 3])
@pytest.mark.parametrize(("action", "keyword", "value", "check"), ACTIONS,
                         ids=[f"{a}-{k}" for a, k, _, _ in ACTIONS])
def test_every_action_is_applied_at_any_depth(
    action: str, keyword: str, value: Any, check: Check, depth: int
) -> None:
    leaf = Dataset()
    setattr(leaf, keyword, value)
    if keyword == "AcquisitionDate":
        leaf.AcquisitionTime = "101500"
    leaf.private_block(0x0013, "DEEP CREATOR", create=True).add_new(0x01, "LO", MRN)
    keys = MemoryKeys()
    out = deidentify(nest(study(), leaf, depth), keys)
    check(leaf_of(out, depth), keys, keys.date_offset_days(MRN))
    assert not any(elem.tag.is_private for elem in out.iterall())


def test_profile_table_covers_the_basic_profile() -> None:
    profile = basic_profile()
    assert len(profile.actions) + len(profile.masks) >= 640  # Table E.1-1 of PS3.15 2026c
    expected = {
        0x00100010: "Z", 0x00100020: "Z/D", 0x00100030: "Z", 0x00080050: "Z",
        0x0020000D: "U", 0x00080018: "U", 0x00101002: "X", 0x00080080: "X/Z/D",
        0x00080090: "Z", 0x00400275: "X", 0x00081110: "X/Z", 0x00101010: "X",
        0x60023000: "X", 0x50040010: "X",  # Overlay Data 60xx,3000, Curve Data 50xx,xxxx
    }
    assert {tag: profile.action(tag) for tag in expected} == expected
    for kept in (0x00080070, 0x00081090, 0x00200062, 0x00185101, 0x00280030, 0x00180060):
        assert profile.action(kept) is None  # Manufacturer, model, laterality, view, ...


def test_private_tags_are_removed_at_every_level() -> None:
    leaf = Dataset()
    leaf.private_block(0x0019, "VENDOR", create=True).add_new(0x10, "LO", "x")
    ds = nest(study(), leaf, 3)
    out = deidentify(ds, MemoryKeys())
    assert any(elem.tag.is_private for elem in ds.iterall())
    assert not any(elem.tag.is_private for elem in out.iterall())


def test_the_input_dataset_is_not_modified() -> None:
    ds = study()
    deidentify(ds, MemoryKeys())
    assert (ds.PatientID, ds.StudyInstanceUID, ds.StudyDate) == (MRN, STUDY_UID, "20250301")


def test_patient_pseudonym_replaces_id_and_name_and_method_is_recorded() -> None:
    keys = MemoryKeys()
    out = deidentify(study(), keys)
    assert out.PatientID == out.PatientName == keys.patient_id(MRN) != MRN
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [(c.CodeValue, c.CodingSchemeDesignator) for c in out.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM"), ("113107", "DCM")]
    assert all(0 < len(text) <= 64 for text in out.DeidentificationMethod)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != SOP_UID
    assert out.PatientBirthDate == "" and "PatientAge" not in out and out.PatientSex == ""


def test_retain_patient_characteristics_keeps_age_and_sex_and_says_so() -> None:
    out = deidentify(study(), MemoryKeys(), retain_patient_characteristics=True)
    assert (out.PatientAge, out.PatientSex) == ("064Y", "F")
    assert out.PatientBirthDate == ""
    assert "113108" in [c.CodeValue for c in out.DeidentificationMethodCodeSequence]


def test_missing_patient_id_is_an_invalid_study() -> None:
    ds = study()
    ds.PatientID = ""
    with pytest.raises(InvalidStudy, match="patient identifier of 0 characters"):
        deidentify(ds, MemoryKeys())


# --- stored keys -------------------------------------------------------------------------


def sqlite_url(tmp_path: Path, name: str = "hospital") -> str:
    return f"sqlite:///{tmp_path / name}.db"


def run_once(url: str, datasets: list[Dataset], fresh_engine: bool = False) -> list[Dataset]:
    """One ingest-like run: its own engine, connection and key instance."""
    engine = sa.create_engine(url) if fresh_engine else db.engine_for(url)
    with engine.begin() as conn:
        keys = TableKeys(conn)
        return [deidentify(ds, keys) for ds in datasets]


def uids_of(ds: Dataset) -> list[str]:
    return [str(e.value) for e in ds.iterall() if e.VR == "UI" and e.keyword != "SOPClassUID"]


def with_reference(ds: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPInstanceUID = SOP_UID  # the same UID as the instance's own
    ds.ReferencedImageSequence = [item]
    return ds


def test_uids_and_pseudonyms_are_identical_across_two_runs_on_one_database(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path)
    first = run_once(url, [with_reference(study())])[0]
    second = run_once(url, [with_reference(study())], fresh_engine=True)[0]
    assert uids_of(first) == uids_of(second)
    assert (first.PatientID, first.StudyDate) == (second.PatientID, second.StudyDate)
    assert first.ReferencedImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    for uid in (first.StudyInstanceUID, first.SOPInstanceUID):
        assert NEW_UID.match(uid) and len(uid) <= 64 and uid not in (STUDY_UID, SOP_UID)
    with sa.create_engine(url).connect() as conn:
        stored = conn.execute(
            sa.select(db.pseudonyms.c.pseudonym).where(db.pseudonyms.c.original == STUDY_UID,
                                                       db.pseudonyms.c.kind == "uid")
        ).scalar_one()
    assert stored == first.StudyInstanceUID


def test_new_uids_are_random_not_derived_from_the_original(tmp_path: Path) -> None:
    one = run_once(sqlite_url(tmp_path, "a"), [study()])[0]
    other = run_once(sqlite_url(tmp_path, "b"), [study()])[0]
    assert one.StudyInstanceUID != other.StudyInstanceUID
    assert one.PatientID != other.PatientID


def test_one_patient_keeps_one_offset_and_the_interval_between_exams(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    first, later = run_once(url, [study(date="20230115", uid=STUDY_UID),
                                  study(date="20250301", uid=REF_UID)])
    rerun = run_once(url, [study(date="20250301", uid=REF_UID)], fresh_engine=True)[0]

    def day(value: str) -> dt.date:
        return dt.datetime.strptime(value, "%Y%m%d").date()

    offset = (day(first.StudyDate) - dt.date(2023, 1, 15)).days
    assert MIN_SHIFT_DAYS <= -offset <= MAX_SHIFT_DAYS
    assert (day(later.StudyDate) - day(first.StudyDate)).days == 776
    assert rerun.StudyDate == later.StudyDate
    assert first.StudyTime == "093015"


def test_different_patients_get_different_offsets(tmp_path: Path) -> None:
    engine = db.engine_for(sqlite_url(tmp_path))
    with engine.begin() as conn:
        keys = TableKeys(conn)
        offsets = [keys.date_offset_days(f"MRN{n:07d}") for n in range(20)]
        again = [keys.date_offset_days(f"MRN{n:07d}") for n in range(20)]
    assert offsets == again
    assert len(set(offsets)) >= 15  # 3286 possible offsets: collisions are rare


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20250301", "20250219"), ("20250301101500.25+0100", "20250219101500.25+0100"),
     ("2025", None), ("20251301", None), ("", None)],
)
def test_shift_date_moves_full_dates_and_drops_the_rest(value: str, expected: str | None) -> None:
    assert shift_date(value, -10) == expected


# --- burned-in text and the last-line check ----------------------------------------------


@pytest.mark.parametrize(("value", "quarantined"), [("YES", True), ("NO", False), (None, False)])
def test_burned_in_annotation_yes_is_quarantined(value: str | None, quarantined: bool) -> None:
    ds = study()
    if value is not None:
        ds.BurnedInAnnotation = value
    reason = burned_in_annotation(ds)
    assert (reason is not None) == quarantined
    if reason:
        assert "BurnedInAnnotation" in reason


def planted_in_nested_private_sequence(value: Any, vr: str = "LO") -> Dataset:
    inner = Dataset()
    inner.private_block(0x0043, "VENDOR NOTES", create=True).add_new(0x01, vr, value)
    ds = deidentify(study(), MemoryKeys())
    item = Dataset()
    item.ViewModifierCodeSequence = [inner]
    ds.private_block(0x0041, "VENDOR", create=True).add_new(0x10, "SQ", [item])
    return ds


@pytest.mark.parametrize(("value", "vr"), [(f"note about {MRN.lower()}!", "LO"),
                                           (f"\x00{MRN}\x00".encode(), "UN")])
def test_check_no_phi_finds_a_value_planted_in_a_nested_private_sequence(
    value: Any, vr: str
) -> None:
    ds = planted_in_nested_private_sequence(value, vr)
    with pytest.raises(PhiDetected) as found:
        check_no_phi(ds, {MRN, "DOE^JANE^Q"})
    message = str(found.value)
    assert "(0041,1010)[0].ViewModifierCodeSequence[0].(0043,1001)" in message
    assert MRN not in message and MRN.lower() not in message


def test_check_no_phi_passes_a_deidentified_dataset_and_catches_the_original() -> None:
    original = with_reference(nest(study(), Dataset(), 0))
    originals = original_identifiers(original)
    assert {MRN, "DOE^JANE^Q", "JANE", STUDY_UID, SOP_UID, "ACC4455", "19600412",
            PRIVATE_NAME} <= originals
    check_no_phi(deidentify(original, MemoryKeys()), originals)
    with pytest.raises(PhiDetected, match="survives in SOPInstanceUID"):
        check_no_phi(original, originals)


@pytest.mark.parametrize(
    ("text", "found"),
    [(f"seen: {MRN}.", True), (f"{MRN}_R_CC.dcm", True), (f"X{MRN}", False),
     (f"{STUDY_UID}.7", False), (f"9.{STUDY_UID}", False), (STUDY_UID, True)],
)
def test_check_no_phi_matches_whole_words_and_whole_uids(text: str, found: bool) -> None:
    ds = Dataset()
    ds.ImageComments = text
    if found:
        with pytest.raises(PhiDetected, match="ImageComments"):
            check_no_phi(ds, {MRN, STUDY_UID})
    else:
        check_no_phi(ds, {MRN, STUDY_UID})


def test_instance_uids_the_table_does_not_list_are_remapped_too() -> None:
    ds = study()
    ds.SOPInstanceUIDOfConcatenationSource = SOP_UID
    ds.TargetFrameOfReferenceUID = REF_UID
    keys = MemoryKeys()
    out = deidentify(ds, keys)
    assert out.SOPInstanceUIDOfConcatenationSource == out.SOPInstanceUID == keys.uid(SOP_UID)
    assert out.TargetFrameOfReferenceUID == keys.uid(REF_UID)
    assert out.SOPClassUID == ds.SOPClassUID
