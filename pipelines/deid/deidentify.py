"""De-identify one dataset: PS3.15 Basic Profile with the Modified Dates option.

Every element at every sequence depth gets the operation `profile.operation` gives it;
private elements (odd groups, creators included) are removed; UIDs and the patient id
are replaced through the pseudonym keys; dates move by the patient's stored offset.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipelines.deid import profile as p
from pipelines.deid.keys import PseudonymKeys
from pipelines.errors import InvalidStudy

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.dataelem import DataElement

METHOD_TEXT = (
    "PS3.15 E.1-1 Basic Application Confidentiality Profile",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)
DUMMY_TEXT = "ANONYMIZED"
_INTEGER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"})


@dataclasses.dataclass(frozen=True)
class _Context:
    keys: PseudonymKeys
    offset_days: int
    retain_patient_characteristics: bool


def deidentify(
    ds: Dataset, keys: PseudonymKeys, *, retain_patient_characteristics: bool = False,
    pixels_cleaned: bool = False,
) -> Dataset:
    """A de-identified copy of `ds` (the input is not modified).

    Args:
        ds: one instance, as read from the PACS.
        keys: where new UIDs, the patient pseudonym and the date offset come from.
        retain_patient_characteristics: also apply the Retain Patient Characteristics
            Option (keeps PatientAge, PatientSex, size, weight, ...), recorded as 113108.
        pixels_cleaned: burned-in text was masked in this image's pixels: recorded as the
            Clean Pixel Data Option (113101), and BurnedInAnnotation set to "NO".

    Returns:
        The dataset with PatientID and PatientName set to the patient pseudonym,
        PatientIdentityRemoved "YES", the method text and code sequence and
        LongitudinalTemporalInformationModified "MODIFIED".

    Raises:
        InvalidStudy: PatientID is empty or too long (there is no patient to key
            pseudonyms and the date offset on), or a UID is longer than DICOM allows.
    """
    original_patient = str(ds.get("PatientID", "") or "").strip()
    try:
        pseudonym = keys.patient_id(original_patient)
    except InvalidStudy as exc:
        raise InvalidStudy(f"PatientID: {exc}") from exc
    ctx = _Context(keys, keys.date_offset_days(original_patient), retain_patient_characteristics)
    out = copy.deepcopy(ds)
    _clean(out, ctx)
    if getattr(out, "file_meta", None) is not None:
        _clean(out.file_meta, ctx)
    _record_method(out, pseudonym, retain_patient_characteristics, pixels_cleaned)
    return out


def _clean(ds: Dataset, ctx: _Context) -> None:
    for tag in list(ds.keys()):
        if tag.is_private:
            del ds[tag]
            continue
        elem = ds[tag]
        op = p.operation(int(tag), elem.VR,
                         retain_patient_characteristics=ctx.retain_patient_characteristics)
        if op == p.REMOVE:
            del ds[tag]
        elif elem.VR == "SQ":
            _clean_sequence(elem, op, ctx)
        elif op == p.EMPTY:
            elem.value = elem.empty_value
        elif op == p.DUMMY:
            elem.value = dummy_value(elem.VR)
        elif op == p.NEW_UID:
            try:
                _map_values(elem, ctx.keys.uid)
            except InvalidStudy as exc:  # a UID too long to be one: name the attribute
                raise InvalidStudy(f"{elem.keyword or elem.tag}: {exc}") from exc
        elif op == p.PSEUDONYM:
            _map_values(elem, ctx.keys.patient_id)
        elif op == p.SHIFT:
            _map_values(elem, lambda value: shift_date(value, ctx.offset_days))


def _clean_sequence(elem: DataElement, op: str, ctx: _Context) -> None:
    from pydicom import Dataset

    if op == p.EMPTY:
        elem.value = []
    elif op == p.DUMMY:
        elem.value = [Dataset()]
    else:  # KEEP and CLEAN_ITEMS: the items are cleaned by the same table
        for item in elem.value:
            _clean(item, ctx)


def _map_values(elem: DataElement, fn: Callable[[str], str | None]) -> None:
    """Replace each non-empty value by fn(value); values mapped to None are dropped."""
    raw = elem.value
    if raw is None or raw == "":
        return
    values = [str(v) for v in raw] if elem.VM > 1 else [str(raw)]
    mapped = [m for m in (fn(v.strip()) if v.strip() else "" for v in values) if m is not None]
    elem.value = elem.empty_value if not mapped else (mapped[0] if len(mapped) == 1 else mapped)


def shift_date(value: str, days: int) -> str | None:
    """A DA or DT value moved by `days`, or None if it is not a full calendar date.

    A DT keeps its time and UTC offset; a partial date ("2025", "202503") cannot be
    shifted by days and is dropped rather than kept.
    """
    text = value.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{day.year:04d}{day.month:02d}{day.day:02d}{text[8:]}"


def dummy_value(vr: str) -> Any:
    """A non-empty value that identifies nobody, valid for the VR."""
    if vr in _INTEGER_VRS or vr == "US or SS":
        return 0
    if vr in ("IS", "DS"):
        return "0"
    if vr == "AS":
        return "000D"
    if vr.startswith("O") or vr == "UN":
        return b"\x00\x00"
    return DUMMY_TEXT


def _record_method(ds: Dataset, pseudonym: str, retain_patient_characteristics: bool,
                   pixels_cleaned: bool) -> None:
    from pydicom import Dataset

    codes = [p.BASIC_PROFILE_CODE, p.MODIFIED_DATES_CODE]
    text = list(METHOD_TEXT)
    if retain_patient_characteristics:
        codes.append(p.PATIENT_CHARACTERISTICS_CODE)
        text.append(p.PATIENT_CHARACTERISTICS_CODE[1])
    if pixels_cleaned:
        codes.append(p.CLEAN_PIXEL_CODE)
        text.append(p.CLEAN_PIXEL_CODE[1])
        if "BurnedInAnnotation" in ds:
            del ds.BurnedInAnnotation
        ds.add_new("BurnedInAnnotation", "CS", "NO")
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        items.append(item)
    # written anew with their own VRs: an original element of the same tag may have another
    # (a DeidentificationMethodCodeSequence read as UL cannot take a sequence)
    written: tuple[tuple[str, str, Any], ...] = (
        ("PatientID", "LO", pseudonym), ("PatientName", "PN", pseudonym),
        ("PatientIdentityRemoved", "CS", "YES"), ("DeidentificationMethod", "LO", text),
        ("DeidentificationMethodCodeSequence", "SQ", items),
        ("LongitudinalTemporalInformationModified", "CS", "MODIFIED"),
    )
    for keyword, vr, value in written:
        if keyword in ds:
            del ds[keyword]
        ds.add_new(keyword, vr, value)


def without_pixel_data(ds: Dataset) -> Dataset:
    """The header of `ds` without its pixel data (group 7FE0), sharing its elements.

    Small enough to pass between processes; file meta is kept.
    """
    from pydicom import Dataset

    header = Dataset()
    for elem in ds:
        if elem.tag >> 16 != 0x7FE0:  # pixel data of every kind
            header.add(elem)
    if getattr(ds, "file_meta", None) is not None:
        header.file_meta = ds.file_meta
    return header


def header_json(ds: Dataset) -> dict[str, Any]:
    """The header as DICOM JSON (PS3.18 F.2) without pixel data, for the lake.

    Call it on a de-identified dataset only; `ds` itself is not modified. An element
    whose value is invalid for its VR (an IS of "1A") is left out rather than failing
    the exam: the manifest reads the attributes screening needs from the dataset.
    """
    header = without_pixel_data(ds)
    return header.to_json_dict(bulk_data_threshold=4096, bulk_data_element_handler=_drop_bulk,
                               suppress_invalid_tags=True)


def _drop_bulk(elem: DataElement) -> str:
    """Large binary values (LUTs, icons) are not kept in the JSON header."""
    return f"omitted:{elem.tag.group:04X}{elem.tag.element:04X}"
