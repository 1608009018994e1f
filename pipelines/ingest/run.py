"""`radflow ingest`: studies new since the Orthanc /changes watermark into the lake.

Each study is one transaction: its views are published to the lake, its manifest rows
upserted and the watermark advanced to its change sequence together, so a crash loses
nothing and a rerun duplicates nothing. Bad studies are quarantined with the reason.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pipelines import db
from pipelines.config import get_settings
from pipelines.deid import TableKeys
from pipelines.domain import IngestResult, Quarantined
from pipelines.errors import InvalidStudy, PermanentError
from pipelines.ingest import exams, lake
from pipelines.ingest.exams import deidentify_views
from pipelines.ingest.prepare import Prepared, prepared
from pipelines.ingest.steps import step
from pipelines.locks import stage_lock
from pipelines.pacs.client import OrthancClient
from pipelines.pacs.pseudonyms import pseudonym_for

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)


def read_watermark(conn: Connection, source: str) -> int:
    row = conn.execute(
        sa.select(db.ingest_state.c.watermark).where(db.ingest_state.c.source == source)
    ).first()
    return int(row[0]) if row else 0


def set_watermark(conn: Connection, source: str, seq: int) -> None:
    db.upsert(conn, db.ingest_state, [{"source": source, "watermark": seq}], keys=["source"])


def stable_studies(client: OrthancClient, since: int) -> tuple[list[tuple[int, str]], int]:
    """(seq, study id) of StableStudy changes after `since`, and the last seq seen."""
    found: dict[str, int] = {}
    last = since
    for change in client.changes(since):
        last = max(last, int(change["Seq"]))
        if change["ChangeType"] == "StableStudy":
            found[str(change["ID"])] = int(change["Seq"])
    return sorted((seq, sid) for sid, seq in found.items()), last


def _manifest_rows(conn: Connection, exam: exams.ExamImages, seq: int, image_dir: Path,
                   study_date: str) -> tuple[str, list[dict[str, Any]]]:
    exam_id = pseudonym_for(conn, "study", exam.identifiers["study"])
    patient_id = pseudonym_for(conn, "patient", exam.identifiers["patient"])
    rows = []
    for view, attrs in exam.attrs.items():
        rows.append({
            "exam_id": exam_id, "view": view, "patient_id": patient_id,
            "instance_id": pseudonym_for(conn, "instance", exam.identifiers[f"instance:{view}"]),
            "study_date": study_date, "image_path": str(image_dir / f"{view}.npy"),
            "ingest_seq": seq, **attrs,
        })
    return exam_id, rows


def _check_instances_are_new(conn: Connection, exam_id: str, rows: list[dict[str, Any]]) -> None:
    """An instance already in another exam means the study was re-sent under a new UID."""
    owners = conn.execute(
        sa.select(db.images.c.exam_id).where(
            db.images.c.instance_id.in_([r["instance_id"] for r in rows]),
            db.images.c.exam_id != exam_id,
        )
    ).scalars().all()
    if owners:
        raise InvalidStudy(f"exam {exam_id}: {len(owners)} instances (SOPInstanceUID) already ingested "
                           f"under exam {owners[0]} (a study re-sent under a new StudyInstanceUID?)")


def commit_study(item: Prepared, seq: int, source: str) -> str:
    """Publish one prepared study in one transaction; returns the exam pseudonym.

    The lake folder is published inside the transaction, after the manifest rows passed
    their checks: a failure before commit leaves at most a folder the rerun replaces.
    """
    s = get_settings()
    exam = item.exam
    if exam is None:
        raise InvalidStudy(item.refusal or "prepare: the study could not be prepared")
    with db.get_engine().begin() as conn:
        # PS3.15 Basic Profile + Modified Dates: the lake and manifest get shifted dates
        clean = deidentify_views(exam, TableKeys(conn))
        # refusals named; database and disk errors pass unchanged (see `ingest_prepared`)
        with step("commit", "PatientID, StudyInstanceUID, SOPInstanceUID", refuse_unforeseen=False):
            exam_id = pseudonym_for(conn, "study", exam.identifiers["study"])
            image_dir = lake.exam_dir(s.lake_dir, clean.study_date, exam_id)
            exam_id, rows = _manifest_rows(conn, exam, seq, image_dir, clean.study_date)
            _check_instances_are_new(conn, exam_id, rows)
            db.upsert(conn, db.images, rows, keys=["exam_id", "view"])
            lake.publish_exam(s.lake_dir, clean.study_date, exam_id, exam.views, clean.headers)
        set_watermark(conn, source, seq)
        # the missing views arrived (or the study was fixed): its quarantine is over
        conn.execute(db.quarantine.delete().where(db.quarantine.c.stage == "ingest",
                                                  db.quarantine.c.item_id == item.study_id))
    return exam_id


def ingest_prepared(item: Prepared, seq: int, source: str) -> str | Quarantined:
    """Commit one prepared study (`commit_study`) or quarantine it with its reason.

    Returns:
        The exam pseudonym, or the quarantine record (its reason starts with the step).

    Raises:
        DatabaseUnavailable: the database went away (a restart): not the exam's fault, so
            neither quarantined nor passed by the watermark; a retry commits it.
    """
    try:
        return commit_study(item, seq, source)
    except PermanentError as exc:
        log.warning("quarantined study %s: %s", item.study_id, exc)
        return quarantine(item.study_id, str(exc), seq, source)
    except sa.exc.SQLAlchemyError as exc:  # e.g. a constraint the checks did not foresee
        if (outage := db.unavailable(exc)) is not None:
            raise outage from exc
        cause = getattr(exc, "orig", None) or exc
        reason = f"commit: the results database refused the exam's manifest rows: {type(cause).__name__}"
        log.warning("quarantined study %s: %s", item.study_id, reason)
        return quarantine(item.study_id, reason, seq, source)


def quarantine(study_id: str, reason: str, seq: int, source: str) -> Quarantined:
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.quarantine, [{"stage": "ingest", "item_id": study_id, "reason": reason}],
                  keys=["stage", "item_id"])
        set_watermark(conn, source, seq)
    return Quarantined(id=study_id, reason=reason)


def export_manifest() -> str:
    import pandas as pd

    with db.get_engine().connect() as conn:
        frame = pd.read_sql(sa.select(db.images), conn)
    return str(lake.write_manifest(get_settings().lake_dir, frame))


def run(limit: int | None = None) -> IngestResult:
    """Ingest every study that became stable since the watermark (at most `limit`)."""
    s = get_settings()
    with stage_lock("ingest"), OrthancClient(s) as client:
        if cleared := lake.clear_staging(s.lake_dir):
            log.warning("ingest: removed %d staging leftovers of an interrupted run", cleared)
        source = client.url
        with db.get_engine().begin() as conn:
            previous = read_watermark(conn, source)
        todo, last_seen = stable_studies(client, previous)
        if limit is not None:
            todo = todo[:limit]
        ingested, held, started = 0, [], time.monotonic()
        ris_texts = None
        if s.ris_export is not None:  # report texts stay inside ingest, never logged
            from pipelines.labels.ris import read_ris_export

            ris = read_ris_export(s.ris_export)
            ris_texts = ris.texts
            held += [Quarantined(id=f"ris-row-{n}", reason=f"labels: RIS export row {n}: {r}")
                     for n, r in ris.skipped]
        stream = prepared(client, [sid for _, sid in todo], s.ingest_workers, ris_texts)
        for n, ((seq, _), item) in enumerate(zip(todo, stream, strict=True), 1):
            outcome = ingest_prepared(item, seq, source)
            if isinstance(outcome, Quarantined):
                held.append(outcome)
            else:
                ingested += 1
            if n % 25 == 0 or n == len(todo):
                rate = n / max(time.monotonic() - started, 1e-6)
                log.info("ingest: %d/%d studies, %d quarantined, %.1f studies/s",
                         n, len(todo), len(held), rate)
        if limit is None or len(todo) < limit:
            with db.get_engine().begin() as conn:
                set_watermark(conn, source, max(last_seen, read_watermark(conn, source)))
        with db.get_engine().begin() as conn:
            watermark = read_watermark(conn, source)
            total = conn.execute(sa.select(sa.func.count()).select_from(db.images)).scalar_one()
    return IngestResult(
        new_studies=len(todo), ingested_exams=ingested, quarantined=held, watermark=watermark,
        previous_watermark=previous, manifest=export_manifest(), images=int(total),
    )
