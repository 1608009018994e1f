"""`radflow gateway retrieve --date D [--task T]`: pull one night's studies from the PACS.

Pull mode (RADFLOW_PACS_MODE=pull): before the night's screening, the hospital PACS is
asked (C-FIND, study level) for the study date's studies holding the task's modality, and
every study the gateway does not hold completely is retrieved through the gateway
Orthanc's REST API: C-MOVE to the gateway's own AE title, or C-GET (Orthanc >= 1.12). A
study is tried `pacs_retrieve_attempts` times (2 s, 4 s, ... between tries); one that still
fails is recorded in `pacs_retrievals` with the PACS's reason, listed in the result and
on the night's worklist page, and the rest of the night goes on. A PACS that does not
answer the C-FIND fails the run (transient: the task is retried).

Push mode needs nothing here: the PACS routes studies to the gateway as they arrive.
Only pseudonyms and counts are logged or stored; study UIDs stay in memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time

from pipelines import db
from pipelines.config import RadflowSettings, get_settings
from pipelines.domain import Quarantined, StageResult
from pipelines.errors import PermanentError, TransientError
from pipelines.pacs.client import PACS_MODALITY, OrthancClient
from pipelines.pacs.pseudonyms import pseudonym_for
from pipelines.tasks import get_task

log = logging.getLogger(__name__)
FIRST_BACKOFF_S = 2.0


@dataclasses.dataclass(frozen=True)
class RetrieveResult(StageResult):
    """One night's pull: what the PACS listed and what became of each study."""

    date: str
    task: str
    mode: str  # pull | push (nothing to do) | none (no PACS declared)
    listed: int = 0  # studies the PACS has for the date and modality
    already_present: int = 0  # held completely by the gateway before this run
    retrieved: int = 0
    not_retrieved: list[Quarantined] = dataclasses.field(default_factory=list)  # exam pseudonym, reason
    instances: int = 0  # instances the PACS listed for the retrieved studies
    seconds: float = 0.0


def _held(client: OrthancClient, study_uid: str) -> int:
    """How many instances of the study the gateway holds (0: none)."""
    study_id = client.find_study_uid(study_uid)
    return len(client.study_instances(study_id)) if study_id else 0


def _retrieve(client: OrthancClient, s: RadflowSettings, study_uid: str,
              expected: int) -> tuple[int, str | None]:
    """(attempts made, None) once the gateway holds `expected` instances, or (attempts, reason)."""
    reason = None
    for attempt in range(1, s.pacs_retrieve_attempts + 1):
        try:
            client.modality_retrieve(PACS_MODALITY, study_uid, s.pacs_retrieve, s.orthanc_aet,
                                     s.pacs_retrieve_timeout_s)
            held = _held(client, study_uid)
            if held >= expected:
                return attempt, None
            reason = f"the PACS sent {held} of the {expected} instances it listed"
        except (PermanentError, TransientError) as exc:
            reason = str(exc)
        if attempt < s.pacs_retrieve_attempts:
            time.sleep(FIRST_BACKOFF_S * 2 ** (attempt - 1))
    return s.pacs_retrieve_attempts, reason


def _record(task: str, study_date: str, exam_id: str, status: str, attempts: int, instances: int,
            reason: str | None) -> None:
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.pacs_retrievals, [{
            "task": task, "study_date": study_date, "exam_id": exam_id, "status": status,
            "attempts": attempts, "instances": instances, "reason": reason,
            "updated_at": dt.datetime.now(dt.UTC)}], keys=["task", "study_date", "exam_id"])


def listed_studies(client: OrthancClient, study_date: str, modality: str) -> list[tuple[str, int]]:
    """(StudyInstanceUID, instances) of every study the PACS has for the date and modality.

    Raises:
        OrthancUnavailable: the gateway or, through it, the PACS did not answer.
        PermanentError: the PACS refused the query (its reason named).
    """
    answers = client.modality_find_studies(PACS_MODALITY, {
        "StudyDate": study_date.replace("-", ""), "ModalitiesInStudy": modality,
        "StudyInstanceUID": "", "NumberOfStudyRelatedInstances": ""})
    out = []
    for a in answers:
        uid = a.get("StudyInstanceUID", "")
        if uid:
            count = a.get("NumberOfStudyRelatedInstances", "")
            out.append((uid, int(count) if count.isdigit() else 1))
    return out


def run(study_date: str, task: str = "mammo") -> RetrieveResult:
    """Pull the study date's (YYYY-MM-DD) studies of `task`'s modality from the PACS.

    Raises:
        OrthancUnavailable: the gateway or the PACS did not answer the query (retry).
    """
    s, spec = get_settings(), get_task(task)
    if not s.pacs_aet or s.pacs_mode != "pull":
        mode = "none" if not s.pacs_aet else s.pacs_mode
        log.info("gateway retrieve %s %s: nothing to do (PACS mode %s)", spec.name, study_date, mode)
        return RetrieveResult(date=study_date, task=spec.name, mode=mode)
    started = time.monotonic()
    present = retrieved = instances = 0
    failed: list[Quarantined] = []
    with OrthancClient(s) as client:
        listed = listed_studies(client, study_date, spec.modality)
        log.info("gateway retrieve %s %s: the PACS lists %d studies", spec.name, study_date, len(listed))
        for n, (uid, expected) in enumerate(listed, start=1):
            with db.get_engine().begin() as conn:
                exam_id = pseudonym_for(conn, "study", uid)
            if _held(client, uid) >= expected:
                present += 1
                _record(spec.name, study_date, exam_id, "retrieved", 0, expected, None)
                continue
            attempts, reason = _retrieve(client, s, uid, expected)
            if reason is None:
                retrieved, instances = retrieved + 1, instances + expected
            else:
                failed.append(Quarantined(id=exam_id, reason=reason))
                log.warning("gateway retrieve %s %s: exam %s not retrieved after %d attempts: %s",
                            spec.name, study_date, exam_id, attempts, reason)
            _record(spec.name, study_date, exam_id, "failed" if reason else "retrieved", attempts,
                    expected if reason is None else 0, reason)
            if n % 20 == 0 or n == len(listed):
                rate = n / max(time.monotonic() - started, 1e-9)
                log.info("gateway retrieve %s %s: %d/%d studies (%.1f/s), %d failed", spec.name,
                         study_date, n, len(listed), rate, len(failed))
    return RetrieveResult(date=study_date, task=spec.name, mode="pull", listed=len(listed),
                          already_present=present, retrieved=retrieved, not_retrieved=failed,
                          instances=instances, seconds=round(time.monotonic() - started, 3))

