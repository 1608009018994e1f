"""A screening night's results in the database, in one transaction.

Rows are upserted by their natural keys (exam pseudonym and model version for results,
exam, view and code for QC flags), so a rerun of the night replaces and never
duplicates. QC flags of a rerun replace the exam's earlier flags (a view that became
clean loses its flag). Artifact rates per device are recomputed for the date.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from typing import Any

import sqlalchemy as sa

from pipelines import db
from pipelines.domain import QC_CODES, ViewQc


@dataclasses.dataclass(frozen=True)
class ViewRow:
    view: str
    score: float
    qc: ViewQc
    device: str


@dataclasses.dataclass(frozen=True)
class ExamRow:
    exam_id: str
    score: float
    suspicion: int
    flagged: bool
    views: tuple[ViewRow, ...]
    all_flagged: bool  # every view had a QC flag: scored on all of them


def run_id(task: str, study_date: str, model_version: str) -> str:
    return f"{task}/{study_date}/{model_version}"


def start(rid: str, task: str, study_date: str, model_name: str, model_version: str,
          shadow_version: str | None, capacity: int | None) -> None:
    """Record the run as running (a retry overwrites a failed attempt's record)."""
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.screening_runs, [{
            "run_id": rid, "task": task, "study_date": study_date, "model_name": model_name,
            "model_version": model_version, "shadow_version": shadow_version, "status": "running",
            "started_at": dt.datetime.now(dt.UTC), "finished_at": None, "exams": 0, "flagged": 0,
            "quarantined": 0, "views_discounted": 0, "capacity": capacity, "stage_seconds": {},
            "worklist": None, "error": None}], keys=["run_id"])


def finish(rid: str, status: str, **fields: Any) -> None:
    """Close the run record: `complete` with its counts, or `failed` with the error."""
    with db.get_engine().begin() as conn:
        conn.execute(sa.update(db.screening_runs).where(db.screening_runs.c.run_id == rid)
                     .values(status=status, finished_at=dt.datetime.now(dt.UTC), **fields))


def _qc_reason(qc: ViewQc) -> str | None:
    return "; ".join(f.reason for f in qc.flags) or None


def store(rid: str, task: str, study_date: str, model_version: str, flag_reason: str,
          exams: list[ExamRow]) -> None:
    """Upsert exam results, view results, QC flags and the date's device artifact rates."""
    exam_rows, view_rows, flag_rows = [], [], []
    for e in exams:
        discounted = [v for v in e.views if v.qc.discounted]
        exam_rows.append({
            "exam_id": e.exam_id, "model_version": model_version, "task": task, "study_date": study_date,
            "score": e.score, "suspicion": e.suspicion, "flagged": e.flagged,
            "flag_reason": flag_reason if e.flagged else None, "views_scored": len(e.views),
            "views_discounted": 0 if e.all_flagged else len(discounted),
            "view_scores": {v.view: round(v.score, 6) for v in e.views}, "run_id": rid,
            "device": e.views[0].device if e.views else None})
        for v in e.views:
            view_rows.append({"exam_id": e.exam_id, "model_version": model_version, "view": v.view,
                              "task": task, "study_date": study_date, "score": v.score,
                              "discounted": v.qc.discounted and not e.all_flagged,
                              "qc_reason": _qc_reason(v.qc), "run_id": rid})
            flag_rows += [{"exam_id": e.exam_id, "view": v.view, "code": f.code, "study_date": study_date,
                           "device": v.device, "reason": f.reason, "value": float(f.value), "run_id": rid}
                          for f in v.qc.flags]
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.exam_results, exam_rows, keys=["exam_id", "model_version"])
        db.upsert(conn, db.view_results, view_rows, keys=["exam_id", "model_version", "view"])
        ids = [e.exam_id for e in exams]
        if ids:
            conn.execute(sa.delete(db.qc_flags).where(db.qc_flags.c.exam_id.in_(ids)))
        db.upsert(conn, db.qc_flags, flag_rows, keys=["exam_id", "view", "code"])
        conn.execute(sa.delete(db.qc_device_rates).where(db.qc_device_rates.c.study_date == study_date))
        db.upsert(conn, db.qc_device_rates, device_rates(study_date, exams),
                  keys=["study_date", "device", "code"])


def device_rates(study_date: str, exams: list[ExamRow]) -> list[dict[str, Any]]:
    """Per device and QC code: views seen, views flagged, rate (every code, zeros included,
    so a device's clean nights are on record too)."""
    views = Counter(v.device for e in exams for v in e.views)
    flagged = Counter((v.device, f.code) for e in exams for v in e.views for f in v.qc.flags)
    return [{"study_date": study_date, "device": device, "code": code, "views": n,
             "flagged": flagged[(device, code)], "rate": round(flagged[(device, code)] / n, 6)}
            for device, n in sorted(views.items()) for code in QC_CODES]
