"""Pseudonym keys for de-identification: new UIDs, patient pseudonyms, date offsets.

Every key is random when first created and stored, so it cannot be recomputed from the
identifier and is identical on every rerun. `TableKeys` keeps them in the hospital
database (the re-identification key, never in the lake); `MemoryKeys` is for tests.

Storage, in the results database:
- new UIDs: rows of the `pseudonyms` table of kind "uid"; the pseudonym *is* the new UID,
  "2.25." followed by the decimal value of a random UUID (PS3.5 B.2).
- patient pseudonyms: kind "patient" of `pseudonyms`, the same pseudonym the manifest uses.
- date offsets: table `date_offsets`, keyed by the patient's pseudonym (not by the
  original id), so the offset table alone holds nothing identifying.
"""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa

from pipelines.db import date_offsets, insert_if_absent, pseudonyms
from pipelines.errors import InvalidStudy, TransientError
from pipelines.pacs.pseudonyms import MAX_ORIGINAL, lookup, pseudonym_for

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# Offsets move dates 1 to 10 years into the past; never 0, so no date survives unshifted.
MIN_SHIFT_DAYS, MAX_SHIFT_DAYS = 365, 3650
UID_KIND = "uid"



class PseudonymKeys(Protocol):
    """The keys `deidentify` needs; the same original gives the same key on every call."""

    def uid(self, original: str) -> str:
        """A new, valid DICOM UID standing for `original`."""
        ...

    def patient_id(self, original: str) -> str:
        """The patient's pseudonym (also used as PatientName)."""
        ...

    def date_offset_days(self, patient_original: str) -> int:
        """Days added to every date of this patient (negative: into the past)."""
        ...


def new_uid() -> str:
    """A random UID under the 2.25 (UUID-derived) root, at most 44 characters."""
    return f"2.25.{uuid.uuid4().int}"


def new_offset() -> int:
    """A random offset of MIN_SHIFT_DAYS..MAX_SHIFT_DAYS days into the past."""
    return -(MIN_SHIFT_DAYS + secrets.randbelow(MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1))


def _check_original(kind: str, original: str) -> None:
    if not original or len(original) > MAX_ORIGINAL:
        raise InvalidStudy(f"{kind} identifier of {len(original)} characters is not a valid "
                           f"DICOM identifier (1 to {MAX_ORIGINAL})")


class MemoryKeys:
    """Keys held in dictionaries: random like the table's, stable for one instance."""

    def __init__(self) -> None:
        self.uids: dict[str, str] = {}
        self.patients: dict[str, str] = {}
        self.offsets: dict[str, int] = {}

    def uid(self, original: str) -> str:
        _check_original(UID_KIND, original)
        return self.uids.setdefault(original, new_uid())

    def patient_id(self, original: str) -> str:
        _check_original("patient", original)
        return self.patients.setdefault(original, f"pt-{secrets.token_hex(8)}")

    def date_offset_days(self, patient_original: str) -> int:
        return self.offsets.setdefault(self.patient_id(patient_original), new_offset())


class TableKeys:
    """Keys stored in the hospital database, through the caller's connection.

    Insert-if-absent then select, so two concurrent runs agree on one key. Keys may be
    committed in their own transaction before the exam's: an unused key is harmless and
    the rerun finds it again.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._cache: dict[tuple[str, str], str] = {}
        self._offsets: dict[str, int] = {}
        date_offsets.create(conn, checkfirst=True)  # engines made by pipelines.db have it already

    def uid(self, original: str) -> str:
        _check_original(UID_KIND, original)
        key = (UID_KIND, original)
        if key not in self._cache:
            self._cache[key] = self._uid_from_table(original)
        return self._cache[key]

    def patient_id(self, original: str) -> str:
        key = ("patient", original)
        if key not in self._cache:
            self._cache[key] = pseudonym_for(self.conn, "patient", original)
        return self._cache[key]

    def date_offset_days(self, patient_original: str) -> int:
        patient = self.patient_id(patient_original)
        if patient in self._offsets:
            return self._offsets[patient]
        insert_if_absent(self.conn, date_offsets, {"patient_pseudonym": patient,
                                                   "offset_days": new_offset()}, ["patient_pseudonym"])
        offset = self.conn.execute(
            sa.select(date_offsets.c.offset_days).where(
                date_offsets.c.patient_pseudonym == patient)
        ).scalar_one()
        self._offsets[patient] = int(offset)
        return self._offsets[patient]

    def _uid_from_table(self, original: str) -> str:
        existing = lookup(self.conn, UID_KIND, original)
        if existing is not None:
            return existing
        insert_if_absent(
            self.conn, pseudonyms, {"kind": UID_KIND, "original": original, "pseudonym": new_uid()},
            ["kind", "original"],
        )
        found = lookup(self.conn, UID_KIND, original)
        if found is None:  # only if the row vanished between insert and select: a retry recreates it
            raise TransientError("a new UID could not be stored")
        return found
