"""Accession numbers to exam pseudonyms, for files the RIS exports (follow-up reports).

radflow never stores an accession number: the pseudonym table maps each study's
StudyInstanceUID to the exam pseudonym. An accession number is therefore resolved when a
file is imported: the gateway Orthanc names the study that carries it (one /tools/find per
accession), else the hospital PACS does (a C-FIND, only when a PACS is declared), and the
pseudonym table gives that study's pseudonym. Only exams radflow already knows resolve; no
pseudonym is created here. The accession numbers live in memory for the import and are
never logged (only counts are) or written anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from pipelines.errors import OrthancUnavailable, PermanentError
from pipelines.pacs.pseudonyms import lookup

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)


class AccessionDirectory(Protocol):
    """What resolving asks of Orthanc (`pipelines.pacs.client.OrthancClient`)."""

    def find_study_uids_by_accession(self, accession: str) -> list[str]: ...

    def modality_find_studies(self, modality: str, query: dict[str, str]) -> list[dict[str, str]]: ...


def _from_pacs(directory: AccessionDirectory, accession: str) -> list[str]:
    from pipelines.pacs.client import PACS_MODALITY  # lazily: pyorthanc loads pydicom

    answers = directory.modality_find_studies(
        PACS_MODALITY, {"AccessionNumber": accession, "StudyInstanceUID": ""})
    return [a["StudyInstanceUID"] for a in answers
            if a.get("StudyInstanceUID") and a.get("AccessionNumber", accession) == accession]


def exams_by_accession(conn: Connection, accessions: Sequence[str], directory: AccessionDirectory,
                       pacs_aet: str | None) -> tuple[dict[str, str], str | None]:
    """The exam pseudonym of each accession number that names exactly one study radflow knows.

    Args:
        conn: the results database (the pseudonym table).
        accessions: the accession numbers of the file.
        directory: the gateway Orthanc.
        pacs_aet: the declared PACS (`RadflowSettings.pacs_aet`); None: the gateway only.

    Returns:
        ({accession: exam pseudonym}, None), or with the reason the directory could not be
        asked (Orthanc down or refusing); accessions absent from the map did not resolve.
    """
    out: dict[str, str] = {}
    try:
        for accession in dict.fromkeys(accessions):
            uids = directory.find_study_uids_by_accession(accession)
            if not uids and pacs_aet:
                uids = _from_pacs(directory, accession)
            exams = {e for uid in dict.fromkeys(uids) if (e := lookup(conn, "study", uid))}
            if len(exams) == 1:
                out[accession] = exams.pop()
    except (OrthancUnavailable, PermanentError) as exc:
        log.warning("accessions: lookup stopped after %d of %d: %s", len(out), len(accessions),
                    type(exc).__name__)
        return out, f"Orthanc could not resolve accession numbers ({type(exc).__name__})"
    log.info("accessions: %d of %d resolved to exams", len(out), len(set(accessions)))
    return out, None
