"""Pseudonyms from a table, not from hashing identifiers.

A pseudonym is random (so it cannot be recomputed from an identifier) and stable (the
table returns the same one on every rerun). The table is the re-identification key and
lives only in the hospital database.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pipelines.db import insert_if_absent, pseudonyms
from pipelines.errors import InvalidStudy, TransientError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

PREFIXES = {"patient": "pt", "study": "ex", "series": "se", "instance": "im"}
# The DICOM attribute each kind's originals come from (named when one is refused).
ATTRIBUTES = {"patient": "PatientID", "study": "StudyInstanceUID", "series": "SeriesInstanceUID",
              "instance": "SOPInstanceUID"}


MAX_ORIGINAL = 128  # DICOM UIDs and LO identifiers are 64 characters at most


def pseudonym_for(conn: Connection, kind: str, original: str) -> str:
    """The pseudonym of `original` (e.g. a StudyInstanceUID), created on first sight.

    Raises:
        InvalidStudy: the identifier is empty or longer than any conformant DICOM value
            (the message gives its length, never the identifier).
    """
    if not original or len(original) > MAX_ORIGINAL:
        attribute = ATTRIBUTES.get(kind, kind)
        raise InvalidStudy(f"{kind} identifier of {len(original)} characters is not a valid "
                           f"DICOM identifier ({attribute}: 1 to {MAX_ORIGINAL} characters)")
    existing = lookup(conn, kind, original)
    if existing is not None:
        return existing
    candidate = f"{PREFIXES.get(kind, kind[:2])}-{secrets.token_hex(8)}"
    # a concurrent ingest may store its own candidate first: then both read the winner's
    insert_if_absent(conn, pseudonyms, {"kind": kind, "original": original, "pseudonym": candidate},
                     ["kind", "original"])
    found = lookup(conn, kind, original)
    if found is None:  # only if the row vanished between insert and select: a retry recreates it
        raise TransientError(f"pseudonym of a {kind} could not be stored")
    return found


def lookup(conn: Connection, kind: str, original: str) -> str | None:
    """The existing pseudonym of `original`, or None."""
    row = conn.execute(
        sa.select(pseudonyms.c.pseudonym).where(
            pseudonyms.c.kind == kind, pseudonyms.c.original == original
        )
    ).first()
    return None if row is None else str(row[0])


def original_of(conn: Connection, kind: str, pseudonym: str) -> str | None:
    """The identifier a pseudonym stands for (re-identification: only inside the hospital,
    e.g. to find a study in the PACS or show a radiologist whose exam it is), or None."""
    row = conn.execute(
        sa.select(pseudonyms.c.original).where(
            pseudonyms.c.kind == kind, pseudonyms.c.pseudonym == pseudonym
        )
    ).first()
    return None if row is None else str(row[0])


def originals_of(conn: Connection, kind: str, given: Iterable[str]) -> dict[str, str]:
    """{pseudonym: original} for every given pseudonym of `kind` the table holds, in one
    query per 500 (re-identification, as `original_of`: for one page view, never stored)."""
    wanted = list(dict.fromkeys(given))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            sa.select(pseudonyms.c.pseudonym, pseudonyms.c.original).where(
                pseudonyms.c.kind == kind, pseudonyms.c.pseudonym.in_(wanted[start:start + 500])
            )
        ).all()
        found.update({str(p): str(o) for p, o in rows})
    return found
