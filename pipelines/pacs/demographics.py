"""Whose exam a pseudonym is: resolved when a radiologist looks, never stored or logged.

The worklist names exams by pseudonym; a radiologist needs the accession number, the
patient's name and birth date to act on one. `resolve_exams` turns a page's pseudonyms
back into those, at view time: the pseudonym table gives each StudyInstanceUID (one query),
the gateway Orthanc the studies' main DICOM tags (one /tools/find per 100 studies), and when
the gateway no longer holds a study (deleted by retention) the hospital PACS answers a
C-FIND through Orthanc (one per study, only when a PACS is declared). A study found
nowhere is `NOT_FOUND`; an Orthanc that does not answer (or refuses the gateway lookup)
makes the rest `UNAVAILABLE`: neither fails the caller.

The identifying values live in `StudyIdentity` for one page view. Its repr shows only the
pseudonym and where it was found, and nothing here logs more than counts (and an error's type).
"""

from __future__ import annotations

import dataclasses
import logging
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from pipelines.errors import OrthancUnavailable, PermanentError
from pipelines.pacs.pseudonyms import originals_of

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

GATEWAY, PACS, NOT_FOUND, UNAVAILABLE = "gateway", "pacs", "not found", "unavailable"
VIEWER_FIELDS = frozenset({"orthanc", "study_id", "study_uid", "accession"})


class StudyDirectory(Protocol):
    """What `resolve_exams` asks of Orthanc (`pipelines.pacs.client.OrthancClient`)."""

    def find_studies_by_uid(self, study_uids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def modality_find_studies(self, modality: str, query: dict[str, str]) -> list[dict[str, str]]: ...


@dataclasses.dataclass(frozen=True)
class StudyIdentity:
    """One exam as the hospital knows it. `source`: GATEWAY, PACS, NOT_FOUND or UNAVAILABLE;
    `study_id` is the gateway's Orthanc id ("" when the gateway does not hold the study)."""

    exam_id: str
    source: str
    patient_name: str = dataclasses.field(default="", repr=False)
    birth_date: str = dataclasses.field(default="", repr=False)
    accession: str = dataclasses.field(default="", repr=False)
    study_uid: str = dataclasses.field(default="", repr=False)
    study_id: str = ""

    @property
    def found(self) -> bool:
        return self.source in (GATEWAY, PACS)


def display_name(person_name: str) -> str:
    """A DICOM PN ("FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX") as "FAMILY, GIVEN MIDDLE"."""
    parts = person_name.split("=")[0].split("^")
    rest = " ".join(p.strip() for p in parts[1:3] if p.strip())
    family = parts[0].strip()
    return f"{family}, {rest}" if family and rest else family or rest


def display_date(dicom_date: str) -> str:
    """A DICOM DA ("19580312") as "1958-03-12"; anything else as it is."""
    d = dicom_date.strip()
    return f"{d[:4]}-{d[4:6]}-{d[6:]}" if len(d) == 8 and d.isdigit() else d


def _identity(exam_id: str, source: str, uid: str, tags: dict[str, Any], study_id: str = "") -> StudyIdentity:
    return StudyIdentity(exam_id, source, display_name(str(tags.get("PatientName", ""))),
                         display_date(str(tags.get("PatientBirthDate", ""))),
                         str(tags.get("AccessionNumber", "")).strip(), uid, study_id)


def _unavailable(uids: dict[str, str], done: dict[str, StudyIdentity]) -> dict[str, StudyIdentity]:
    return {e: StudyIdentity(e, UNAVAILABLE, study_uid=u) for e, u in uids.items() if e not in done}


def _from_gateway(directory: StudyDirectory, uids: dict[str, str]) -> dict[str, StudyIdentity]:
    """Each exam from the gateway, all in one lookup; NOT_FOUND where it is not there,
    UNAVAILABLE for all when the lookup fails (Orthanc down, or it refused the query)."""
    try:
        studies = directory.find_studies_by_uid(list(uids.values())) if uids else {}
    except (OrthancUnavailable, PermanentError) as exc:
        log.warning("demographics: gateway lookup of %d studies failed: %s", len(uids), type(exc).__name__)
        return _unavailable(uids, {})
    out: dict[str, StudyIdentity] = {}
    for exam_id, uid in uids.items():
        study = studies.get(uid)
        if study is None:
            out[exam_id] = StudyIdentity(exam_id, NOT_FOUND, study_uid=uid)
            continue
        tags = {**study.get("PatientMainDicomTags", {}), **study.get("MainDicomTags", {})}
        out[exam_id] = _identity(exam_id, GATEWAY, uid, tags, str(study.get("ID", "")))
    return out


def _from_pacs(directory: StudyDirectory, uids: dict[str, str]) -> dict[str, StudyIdentity]:
    """Each exam by a C-FIND to the PACS; UNAVAILABLE for the rest once the PACS fails."""
    from pipelines.pacs.client import PACS_MODALITY  # lazily: pyorthanc loads pydicom

    out: dict[str, StudyIdentity] = {}
    for exam_id, uid in uids.items():
        query = {"StudyInstanceUID": uid, "PatientName": "", "PatientBirthDate": "", "AccessionNumber": ""}
        try:
            answers = directory.modality_find_studies(PACS_MODALITY, query)
        except (OrthancUnavailable, PermanentError):
            return {**out, **_unavailable(uids, out)}
        match = [a for a in answers if a.get("StudyInstanceUID", uid) == uid]
        out[exam_id] = (_identity(exam_id, PACS, uid, match[0]) if match
                        else StudyIdentity(exam_id, NOT_FOUND, study_uid=uid))
    return out


def resolve_exams(conn: Connection, exam_ids: Sequence[str], directory: StudyDirectory,
                  pacs_aet: str | None) -> dict[str, StudyIdentity]:
    """Who each exam (a study pseudonym) is, for one page view.

    Args:
        conn: the results database (the pseudonym table).
        exam_ids: the page's exam pseudonyms.
        directory: the gateway Orthanc.
        pacs_aet: the declared PACS (`RadflowSettings.pacs_aet`); None: the gateway only.

    Returns:
        {exam_id: StudyIdentity} for every given exam; never raises for a missing study.
    """
    uids = originals_of(conn, "study", exam_ids)
    out = {e: StudyIdentity(e, NOT_FOUND) for e in exam_ids if e not in uids}
    gateway = _from_gateway(directory, {e: uids[e] for e in exam_ids if e in uids})
    out.update(gateway)
    missing = {e: i.study_uid for e, i in gateway.items() if i.source == NOT_FOUND}
    if pacs_aet and missing:
        out.update(_from_pacs(directory, missing))
    counts = {s: sum(i.source == s for i in out.values()) for s in (GATEWAY, PACS, NOT_FOUND, UNAVAILABLE)}
    log.info("demographics: %d exams resolved at view time: %s", len(out), counts)
    return out


def viewer_link(template: str, orthanc_url: str, who: StudyIdentity) -> str | None:
    """`template` (RadflowSettings.viewer_url) filled for the study, or None when a field it
    uses is unknown or empty (e.g. {study_id} of a study the gateway no longer holds) or the
    result is not an http(s) URL."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError:
        return None
    values = {"orthanc": orthanc_url.rstrip("/"), "study_id": quote(who.study_id, safe=""),
              "study_uid": quote(who.study_uid, safe=""), "accession": quote(who.accession, safe="")}
    if not fields <= VIEWER_FIELDS or not all(values[f] for f in fields):
        return None
    url = template.format(**values)
    return url if url.startswith(("http://", "https://")) else None
