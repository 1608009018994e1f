"""What radiologists say about the worklist's exams: one verdict per exam, task and reader.

A verdict (agree, disagree, artifact) is stored in `worklist_feedback` with the model
version, study date, score and flag the reader saw, keyed by (exam_id, task, reader): a
second click replaces the reader's verdict, never adds a row. Everything stored is
pseudonymous (the exam pseudonym and the reader's login). The ML team reads it with
`feedback_rows` (`radflow worklist feedback --task T [--since D]`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from pipelines.db import get_engine, upsert, worklist_feedback
from pipelines.errors import PermanentError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

Verdict = Literal["agree", "disagree", "artifact"]
VERDICTS: tuple[Verdict, ...] = ("agree", "disagree", "artifact")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclasses.dataclass(frozen=True)
class Feedback:
    """One reader's verdict on one screened exam, with what the worklist showed them."""

    exam_id: str
    task: str
    reader: str
    verdict: Verdict
    model_version: str
    study_date: str
    score: float
    flagged: bool


def record(conn: Connection, feedback: Feedback) -> None:
    """Store the verdict, replacing this reader's earlier one on the exam.

    Raises:
        PermanentError: the verdict is not one of VERDICTS (named).
    """
    if feedback.verdict not in VERDICTS:
        raise PermanentError(f"verdict {feedback.verdict!r} is not one of {', '.join(VERDICTS)}")
    row = {**dataclasses.asdict(feedback), "updated_at": dt.datetime.now(dt.UTC)}
    upsert(conn, worklist_feedback, [row], keys=["exam_id", "task", "reader"])


def verdicts_of(conn: Connection, task: str, reader: str, exam_ids: Sequence[str]) -> dict[str, str]:
    """{exam_id: verdict} of one reader on the given exams of a task (one query per 500)."""
    t = worklist_feedback.c
    found: dict[str, str] = {}
    wanted = list(exam_ids)
    for start in range(0, len(wanted), 500):
        rows = conn.execute(sa.select(t.exam_id, t.verdict).where(
            t.task == task, t.reader == reader, t.exam_id.in_(wanted[start:start + 500]))).all()
        found.update({str(e): str(v) for e, v in rows})
    return found


def feedback_rows(task: str, since_date: str | None = None) -> list[dict[str, Any]]:
    """Every verdict on the task's exams, study dates from `since_date` (YYYY-MM-DD,
    inclusive; None: all), oldest night first, as JSON-ready dicts (the table's columns,
    `updated_at` in ISO 8601).

    Raises:
        PermanentError: `since_date` is not YYYY-MM-DD.
    """
    if since_date is not None and not _DATE.match(since_date):
        raise PermanentError(f"since date {since_date!r} is not YYYY-MM-DD")
    t = worklist_feedback.c
    query = sa.select(worklist_feedback).where(t.task == task)
    if since_date is not None:
        query = query.where(t.study_date >= since_date)
    query = query.order_by(t.study_date, t.exam_id, t.reader)
    with get_engine().connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for r in rows:
        r["score"], r["flagged"] = float(r["score"]), bool(r["flagged"])
        r["updated_at"] = r["updated_at"].isoformat() if r["updated_at"] is not None else None
    return rows
