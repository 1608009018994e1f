"""DICOM PS3.15 Annex E Table E.1-1 (Basic Profile) and the options radflow applies.

The table itself is not retyped here: it comes from the pinned `dicom-anonymizer`
package (2.1.0, module `dicomfields_2026c`, generated from the 2026c edition of PS3.15),
655 attributes with their Basic Profile action. This module turns a (tag, VR) into the
one operation radflow performs, applying the Retain Longitudinal Temporal Information
with Modified Dates option (and, on request, Retain Patient Characteristics).

How combined actions are resolved, without knowing each IOD's attribute types: an empty
value (Z) or a dummy (D) identifies nobody and keeps any IOD conformant, so
X/Z, Z/D and X/Z/D empty the attribute, X/D replaces it with a dummy, and X/Z/U* keeps
the reference sequence while every UID inside it is remapped (the items are cleaned by
the same table).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib

TABLE_MODULE = "dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c"
TABLE_EDITION = "PS3.15 2026c"
_CATEGORIES = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}

# What radflow does with an element (the profile's action resolved for its VR).
KEEP, REMOVE, EMPTY, DUMMY, NEW_UID, SHIFT, CLEAN_ITEMS, PSEUDONYM = (
    "keep", "remove", "empty", "dummy", "uid", "shift", "clean-items", "pseudonym",
)
_RESOLVED = {
    "X": REMOVE, "Z": EMPTY, "D": DUMMY, "U": NEW_UID, "Z/D": EMPTY, "X/Z": EMPTY,
    "X/D": DUMMY, "X/Z/D": EMPTY, "X/Z/U*": CLEAN_ITEMS,
}

PATIENT_ID = 0x00100020
# Always emptied: a shifted birth date would still date the patient to the day of the offset.
ALWAYS_EMPTY = frozenset({0x00100030, 0x00100032})  # PatientBirthDate, PatientBirthTime
# K under the Retain Patient Characteristics Option (PS3.15 E.3.6): age, sex, size,
# weight, sex neutered, ethnic group, pregnancy and smoking status.
PATIENT_CHARACTERISTICS = frozenset(
    {0x00101010, 0x00100040, 0x00101020, 0x00101030, 0x00102203, 0x00102160, 0x001021C0,
     0x001021A0}
)
DATE_VRS = frozenset({"DA", "DT"})

# CID 7050 De-identification Method (DCM coding scheme).
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
MODIFIED_DATES_CODE = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
PATIENT_CHARACTERISTICS_CODE = ("113108", "Retain Patient Characteristics Option")
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")


@dataclasses.dataclass(frozen=True)
class BasicProfile:
    """Table E.1-1: the Basic Profile action ("X", "Z/D", ...) of each listed attribute.

    Attributes:
        actions: action by tag, for attributes listed with one tag.
        masks: (group, element, group mask, element mask, action) for repeating groups
            such as Overlay Data (60xx,3000) and Curve Data (50xx,xxxx).
    """

    actions: dict[int, str]
    masks: tuple[tuple[int, int, int, int, str], ...]

    def action(self, tag: int) -> str | None:
        """The table's action for `tag`, or None if the table does not list it (K)."""
        found = self.actions.get(tag)
        if found is not None:
            return found
        group, element = tag >> 16, tag & 0xFFFF
        for g, e, g_mask, e_mask, action in self.masks:
            if group & g_mask == g and element & e_mask == e:
                return action
        return None


@functools.cache
def basic_profile() -> BasicProfile:
    """The Basic Profile table, loaded once from the pinned dicom-anonymizer package."""
    table = importlib.import_module(TABLE_MODULE)
    actions: dict[int, str] = {}
    masks: list[tuple[int, int, int, int, str]] = []
    for category, action in _CATEGORIES.items():
        for entry in getattr(table, category):
            if len(entry) == 2:
                actions[(entry[0] << 16) | entry[1]] = action
            else:
                masks.append((entry[0], entry[1], entry[2], entry[3], action))
    return BasicProfile(actions=actions, masks=tuple(masks))


@functools.cache
def unlisted_instance_uids() -> frozenset[int]:
    """UID attributes of pydicom's dictionary that name an instance or a frame of
    reference but are not in the table (SOPInstanceUIDOfConcatenationSource, ...)."""
    import re

    from pydicom.datadict import DicomDictionary

    pattern = re.compile(r"Instance.*UID|UID.*(Instance|Concatenation)|FrameOfReferenceUID")
    profile = basic_profile()
    return frozenset(
        tag for tag, entry in DicomDictionary.items()
        if entry[0] == "UI" and profile.action(tag) is None and pattern.search(entry[4])
        and "Class" not in entry[4] and "Syntax" not in entry[4]
    )


def operation(tag: int, vr: str, *, retain_patient_characteristics: bool = False) -> str:
    """What de-identification does with one element (one of the operation constants).

    Beyond the table, three hardening rules: every DA/DT value anywhere is shifted (dates
    outside the table would otherwise reveal the offset), a person name (PN) the table
    does not list is emptied, and instance or frame-of-reference UIDs it does not list
    (`unlisted_instance_uids`) are replaced like listed ones.
    """
    if tag in ALWAYS_EMPTY:
        return EMPTY
    if tag == PATIENT_ID:
        return PSEUDONYM
    if retain_patient_characteristics and tag in PATIENT_CHARACTERISTICS:
        return KEEP
    if vr in DATE_VRS:
        return SHIFT  # option C: every date moves by the patient's offset
    action = basic_profile().action(tag)
    if action is None and tag in unlisted_instance_uids():
        return NEW_UID
    if action is None:
        return EMPTY if vr == "PN" else KEEP
    if vr == "TM":
        return KEEP  # option C: a whole-day shift leaves times of day unchanged
    if vr == "UI" and action == "D":
        return NEW_UID  # a fresh UID is the natural dummy of a UID
    return _RESOLVED[action]
