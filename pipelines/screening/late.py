"""Late arrivals: studies that reach the gateway after their night was planned.

A study can arrive after its night was screened (a PACS forwarding backlog, a modality that
sends in the morning) or while it was being planned (still arriving: batches.plan leaves it
out). Nothing would ever screen it: each night screens its own date. So every night's run
looks back RADFLOW_SCREENING_LATE_DAYS (default 7) days: a night screened to completion whose
date now has studies of the task's modality in the gateway that its plan did not list is
screened again, whole (plan, batches, merge: the same keyed writes, so its screened exams
keep one result, one SR, one CAD SR and one heatmap series each, and its worklist page is
replaced by one that lists every exam).

Only nights with a completed run are looked at: a night never screened, or whose run
failed, is the scheduler's catch-up (the DAG's `catchup=True`) or its retry. In pull mode
the gateway holds what `radflow gateway retrieve --date D` brought, so a study that reached
the hospital PACS late is caught up once it is retrieved.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import sqlalchemy as sa

from pipelines import db
from pipelines.config import get_settings
from pipelines.pacs.client import OrthancClient
from pipelines.tasks import get_task

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LateNight:
    """An earlier night with late arrivals: how many studies its plan did not list."""

    date: str
    late: int
    planned: int


def late_nights(study_date: str, task: str = "mammo", days: int | None = None) -> list[LateNight]:
    """The nights of the `days` (default RADFLOW_SCREENING_LATE_DAYS) before `study_date`
    screened to completion whose date has studies of the task's modality in the gateway
    Orthanc that their plan did not list, oldest first."""
    s = get_settings()
    spec = get_task(task)
    days = s.screening_late_days if days is None else days
    night = dt.date.fromisoformat(study_date)
    first = (night - dt.timedelta(days=days)).isoformat()
    plans_, runs = db.screening_plans, db.screening_runs
    completed = sa.exists().where(runs.c.task == plans_.c.task, runs.c.study_date == plans_.c.study_date,
                                  runs.c.status == "complete")
    with db.get_engine().connect() as conn:
        listed = {r.study_date: {str(sid) for _, sid in r.studies} for r in conn.execute(
            sa.select(plans_.c.study_date, plans_.c.studies).where(
                plans_.c.task == spec.name, plans_.c.study_date >= first,
                plans_.c.study_date < study_date, completed).order_by(plans_.c.study_date))}
    if not listed:
        return []
    out = []
    with OrthancClient(s) as client:
        for date, planned in listed.items():
            late = set(client.find_studies(date.replace("-", ""), spec.modality)) - planned
            if late:
                out.append(LateNight(date, len(late), len(planned)))
    if out:
        log.info("late arrivals of %s: %s", spec.name,
                 ", ".join(f"{n.date}: {n.late} after {n.planned} planned" for n in out))
    return out
