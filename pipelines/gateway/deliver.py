"""`radflow gateway deliver --date D [--task T]`: a screened night's results to the PACS and RIS.

Per exam of the night's latest complete screening run, to every configured destination:
- `pacs` (a PACS is declared and RADFLOW_PACS_DELIVER): the SR, CAD SR and heatmap series
  the write-back left in the gateway study (pacs_delivery.py: C-STORE or STOW-RS, changed
  results replace the old ones by IOCM rejection);
- `ris-hl7` (RADFLOW_RIS_MLLP_HOST): an HL7 v2 ORU^R01 over MLLP;
- `ris-fhir` (RADFLOW_RIS_FHIR_URL): a FHIR R4 DiagnosticReport, PUT by identifier.

Every (exam, task, destination) has one row in `deliveries`: sent, or failed with the
reason, with the attempts so far. A rerun sends only what changed or failed before: an
unchanged result already delivered is not sent again. Each send is tried
`delivery_attempts` times (2 s, 4 s, ... between tries); an exam that still fails is
recorded and the rest of the night goes on; the run then fails (transient) naming how
many, so the orchestrator retries exactly those.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from pipelines import db
from pipelines.config import RadflowSettings, get_settings
from pipelines.domain import StageResult
from pipelines.errors import PermanentError, TransientError
from pipelines.gateway import pacs_delivery, ris_delivery
from pipelines.gateway.night import night_exams
from pipelines.gateway.sending import Context, Outcome
from pipelines.pacs.client import OrthancClient
from pipelines.pacs.pseudonyms import original_of
from pipelines.tasks import get_task

log = logging.getLogger(__name__)
FIRST_BACKOFF_S = 2.0


@dataclasses.dataclass(frozen=True)
class DeliverResult(StageResult):
    date: str
    task: str
    destinations: list[str]
    model_version: str | None = None
    exams: int = 0
    sent: dict[str, int] = dataclasses.field(default_factory=dict)
    unchanged: dict[str, int] = dataclasses.field(default_factory=dict)  # already delivered as is
    failed: list[dict[str, str]] = dataclasses.field(default_factory=list)  # exam_id, destination, reason
    superseded: int = 0  # earlier objects rejected at the PACS (IOCM)
    seconds: float = 0.0


def destinations(s: RadflowSettings) -> list[str]:
    """The configured destinations of results, in delivery order."""
    out = ["pacs"] if s.pacs_aet and s.pacs_deliver else []
    out += ["ris-hl7"] if s.ris_mllp_host else []
    out += ["ris-fhir"] if s.ris_fhir_url else []
    return out


SENDERS: dict[str, Callable[[Context], Outcome]] = {
    "pacs": pacs_delivery.to_pacs, "ris-hl7": ris_delivery.to_hl7, "ris-fhir": ris_delivery.to_fhir,
}


def _previous(task: str, study_date: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The night's delivery rows by (exam, destination), read once."""
    t = db.deliveries
    with db.get_engine().connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.task == task, t.c.study_date == study_date)).mappings()
        return {(str(r["exam_id"]), str(r["destination"])): dict(r) for r in rows}


def _record(ctx: Context, destination: str, attempts: int, outcome: Outcome | None,
            error: str | None) -> None:
    prev = ctx.previous or {}
    now = dt.datetime.now(dt.UTC)
    row = {"exam_id": ctx.exam.exam_id, "task": ctx.task, "destination": destination,
           "study_date": ctx.exam.study_date, "model_version": ctx.exam.model_version,
           "attempts": int(prev.get("attempts") or 0) + attempts, "updated_at": now}
    if outcome is None:  # failed: the destination still holds what it held before
        row.update(status="failed", error=error, content=prev.get("content") or {},
                   superseded=prev.get("superseded") or [], sent_at=prev.get("sent_at"))
    else:
        row.update(status="sent", error=None, content=outcome.content,
                   superseded=sorted({*(prev.get("superseded") or []), *outcome.superseded}),
                   sent_at=now if outcome.sent else prev.get("sent_at") or now)
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.deliveries, [row], keys=["exam_id", "task", "destination"])


def _attempt(ctx: Context, destination: str) -> tuple[int, Outcome | None, str | None]:
    """(attempts, outcome or None, the last error) of one exam to one destination."""
    tries, error = ctx.settings.delivery_attempts, None
    for attempt in range(1, tries + 1):
        try:
            return attempt, SENDERS[destination](ctx), None
        except PermanentError as exc:
            return attempt, None, str(exc)
        except TransientError as exc:
            error = str(exc)
        if attempt < tries:
            time.sleep(FIRST_BACKOFF_S * 2 ** (attempt - 1))
    return tries, None, error


def _deliver_one(ctx: Context, destination: str) -> tuple[int, Outcome | None, str | None]:
    """(attempts, outcome, error); a study retention already purged was delivered before
    (retention waits for that), so a rerun of its night finds it unchanged."""
    if ctx.study_id:
        return _attempt(ctx, destination)
    prev = ctx.previous or {}
    if prev.get("status") == "sent" and prev.get("model_version") == ctx.exam.model_version:
        return 0, Outcome(dict(prev.get("content") or {}), [], sent=False), None
    return 0, None, "the gateway no longer holds the study"


def _study_id(client: OrthancClient, exam_id: str) -> str | None:
    with db.get_engine().connect() as conn:
        uid = original_of(conn, "study", exam_id)
    return client.find_study_uid(uid) if uid else None


def run(study_date: str, task: str = "mammo") -> DeliverResult:
    """Deliver the results of `task`'s screening of `study_date` (YYYY-MM-DD).

    Raises:
        TransientError: some deliveries failed after their attempts (all recorded); a
            rerun sends only those.
    """
    s, spec = get_settings(), get_task(task)
    targets = destinations(s)
    version, exams = night_exams(spec.name, study_date)
    result = DeliverResult(date=study_date, task=spec.name, destinations=targets,
                           model_version=version, exams=len(exams))
    if not targets or not exams:
        log.info("gateway deliver %s %s: nothing to deliver (%d exams, destinations: %s)",
                 spec.name, study_date, len(exams), ", ".join(targets) or "none configured")
        return result
    started = time.monotonic()
    sent, unchanged, superseded = Counter[str](), Counter[str](), 0
    failed: list[dict[str, str]] = []
    previous = _previous(spec.name, study_date)
    with OrthancClient(s) as client:
        for n, exam in enumerate(exams, start=1):
            study_id = _study_id(client, exam.exam_id)
            for dest in targets:
                ctx = Context(client, s, spec.name, exam, study_id or "", previous.get((exam.exam_id, dest)))
                attempts, outcome, error = _deliver_one(ctx, dest)
                _record(ctx, dest, attempts, outcome, error)
                if outcome is None:
                    failed.append({"exam_id": exam.exam_id, "destination": dest, "reason": str(error)})
                    log.warning("gateway deliver %s %s: exam %s to %s failed after %d attempt(s): %s",
                                spec.name, study_date, exam.exam_id, dest, attempts, error)
                elif outcome.sent:
                    sent[dest] += 1
                    superseded += len(outcome.superseded)
                else:
                    unchanged[dest] += 1
            if n % 20 == 0 or n == len(exams):
                rate = n / max(time.monotonic() - started, 1e-9)
                log.info("gateway deliver %s %s: %d/%d exams (%.1f/s), %d failed", spec.name,
                         study_date, n, len(exams), rate, len(failed))
    result = dataclasses.replace(result, sent=dict(sent), unchanged=dict(unchanged), failed=failed,
                                 superseded=superseded, seconds=round(time.monotonic() - started, 3))
    if failed:
        first = failed[0]
        raise TransientError(f"{len(failed)} of {len(exams) * len(targets)} deliveries of {spec.name} "
                             f"{study_date} failed (recorded in the deliveries table); first: exam "
                             f"{first['exam_id']} to {first['destination']}: {first['reason']}")
    return result
