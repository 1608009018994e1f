"""`radflow gateway purge [--today D]`: keep the gateway's disk bounded (retention).

The gateway Orthanc is a cache in front of the hospital PACS, which keeps everything. A
study is deleted from the gateway only when all of these hold:
- it is older than RADFLOW_GATEWAY_RETENTION_DAYS days (by study date, against `today`:
  with 2 days, a study of the 1st goes on the 4th);
- ingest has taken it (its views are in the manifest) or set it aside (quarantined);
- the task of its modality has screened it (a result in the database);
- that result reached every configured destination (a `sent` delivery row of the same
  model version for each): never before delivery.
Anything else stays, counted by the first reason it stays. Without a declared PACS that
results are delivered to, nothing is ever deleted (the gateway would hold the only copy
of the results), and the run says so. Every deletion is recorded in `gateway_deletions`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import Counter

import sqlalchemy as sa

from pipelines import db
from pipelines.config import get_settings
from pipelines.domain import StageResult
from pipelines.errors import PermanentError
from pipelines.gateway.deliver import destinations
from pipelines.pacs.client import OrthancClient
from pipelines.pacs.pseudonyms import lookup
from pipelines.tasks import for_modality

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PurgeResult(StageResult):
    today: str
    retention_days: int | None
    cutoff: str | None = None  # studies dated on or before this day may go
    deleted: int = 0
    instances_deleted: int = 0
    kept: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> studies


def _why_kept(conn: sa.Connection, exam_id: str | None, orthanc_id: str, modality_task: str | None,
              targets: list[str]) -> str | None:
    """Why a study old enough must stay, or None when it may go."""
    if exam_id is None or modality_task is None:
        return "not ingested" if modality_task else "no task takes its modality"
    q = db.quarantine
    ingested = conn.execute(sa.select(db.images.c.exam_id).where(db.images.c.exam_id == exam_id)
                            .limit(1)).first() or conn.execute(sa.select(q.c.item_id).where(
                                q.c.stage == "ingest", q.c.item_id == orthanc_id)).first()
    if not ingested:
        return "not ingested"
    e = db.exam_results
    screened = conn.execute(sa.select(e.c.model_version).where(
        e.c.exam_id == exam_id, e.c.task == modality_task).order_by(e.c.screened_at.desc()).limit(1)).first()
    if screened is None:
        return "not screened"
    d = db.deliveries
    sent = {str(r.destination) for r in conn.execute(sa.select(d.c.destination).where(
        d.c.exam_id == exam_id, d.c.task == modality_task, d.c.status == "sent",
        d.c.model_version == screened.model_version))}
    return None if set(targets) <= sent else "results not delivered"


def _task_of(modalities: str) -> str | None:
    for modality in modalities.split("\\"):
        found = for_modality(modality)
        if found is not None:
            return found.name
    return None


def run(today: str | None = None) -> PurgeResult:
    """Delete the gateway studies the retention rule lets go (see the module docstring).

    Raises:
        PermanentError: retention is set but no PACS receives the results.
    """
    s = get_settings()
    day = dt.date.fromisoformat(today) if today else dt.date.today()
    if s.gateway_retention_days is None:
        return PurgeResult(today=day.isoformat(), retention_days=None)
    targets = destinations(s)
    if "pacs" not in targets:
        raise PermanentError("RADFLOW_GATEWAY_RETENTION_DAYS is set, but no PACS receives the results "
                             "(set RADFLOW_PACS_AET with RADFLOW_PACS_DELIVER=true): deleting studies "
                             "would leave the gateway's results nowhere else")
    cutoff = day - dt.timedelta(days=s.gateway_retention_days + 1)  # older than N days
    kept: Counter[str] = Counter()
    deleted = instances = 0
    with OrthancClient(s) as client:
        for study_id in client.find_studies_until(cutoff.strftime("%Y%m%d")):
            tags = dict(client.study(study_id).get("MainDicomTags", {}))
            uid = str(tags.get("StudyInstanceUID", ""))
            mods = _modalities(client, study_id)
            with db.get_engine().begin() as conn:
                exam_id = lookup(conn, "study", uid) if uid else None
                reason = _why_kept(conn, exam_id, study_id, _task_of(mods), targets)
                if reason is not None:
                    kept[reason] += 1
                    continue
                count = len(client.study_instances(study_id))
                client.delete_study(study_id)
                db.upsert(conn, db.gateway_deletions, [{
                    "exam_id": exam_id, "study_date": _iso(str(tags.get("StudyDate", ""))),
                    "instances": count,
                    "deleted_at": dt.datetime.now(dt.UTC)}], keys=["exam_id"])
            deleted, instances = deleted + 1, instances + count
    log.info("gateway purge: %d studies (%d instances) deleted, dated on or before %s; kept: %s",
             deleted, instances, cutoff, dict(kept) or "none")
    return PurgeResult(today=day.isoformat(), retention_days=s.gateway_retention_days,
                       cutoff=cutoff.isoformat(), deleted=deleted, instances_deleted=instances,
                       kept=dict(kept))


def _modalities(client: OrthancClient, study_id: str) -> str:
    return "\\".join(sorted({str(x.get("MainDicomTags", {}).get("Modality", ""))
                             for x in client.study_series(study_id)}))


def _iso(raw: str) -> str:
    return f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}" if len(raw) == 8 else ""
