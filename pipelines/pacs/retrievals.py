"""What the gateway could not retrieve from the hospital PACS for a night (pull mode).

Written by the gateway's retrieve, read by screening for the night's worklist page.
"""

from __future__ import annotations

import sqlalchemy as sa

from pipelines import db
from pipelines.domain import Quarantined


def not_retrieved(task: str, study_date: str) -> list[Quarantined]:
    """The night's studies the PACS listed but the gateway could not retrieve (by exam
    pseudonym, with the reason of the last attempt)."""
    t = db.pacs_retrievals
    with db.get_engine().connect() as conn:
        rows = conn.execute(sa.select(t.c.exam_id, t.c.reason).where(
            t.c.task == task, t.c.study_date == study_date, t.c.status == "failed")
            .order_by(t.c.exam_id)).all()
    return [Quarantined(id=str(r.exam_id), reason=str(r.reason or "")) for r in rows]
