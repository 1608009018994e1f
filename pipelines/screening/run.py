"""`radflow screen --date D [--task T]`: one night of opportunistic screening, in one process.

The same three steps the nightly DAG spreads over workers, through the same functions:
plan (batches.plan: the night's studies in a stable order, cut into batches of
RADFLOW_SCREENING_BATCH_EXAMS) -> every batch (batches.score_batch: collect from Orthanc,
views checked, preprocessing, image QC, Triton scores and heatmaps, exam score and
suspicion, shadow, monitoring features; staged, replacing only that batch) -> merge
(merge.merge: flags over the whole night, results in one keyed transaction, monitoring
features, DICOM SR, CAD SR and heatmaps into each study, the worklist, the notification).
Each stage is timed (`stage_seconds`, summed over the batches).

Nothing anyone sees is written before every batch is scored: a night with Triton down fails
in its first batch, before its first result, and its retry starts clean. Every write is
keyed (exam, model version; study and task in the PACS; task, night and batch in the
staging tables), so a rerun replaces and never duplicates.

After the night, the earlier nights with late arrivals (studies that reached the gateway
after their night was planned, pipelines/screening/late.py) are screened again, oldest first,
each whole and in the same way; their results are in `caught_up`.

Two one-process runs of a task never overlap: each holds the task's stage lock
(`screen-<task>`, pipelines/locks.py) for its whole night. The second waits for the first,
then screens the night again and replaces nothing (or fails with LockHeld, naming the lock,
after waiting 600 s). Unlocked, they raced on the night's staged files and its worklist
folder, and one of them failed half-way (a FileNotFoundError on a staged file).
"""

from __future__ import annotations

import dataclasses
import logging

from pipelines.domain import ScreenResult
from pipelines.locks import stage_lock
from pipelines.screening import batches, late, merge
from pipelines.tasks import get_task

log = logging.getLogger(__name__)


def run(study_date: str, task: str = "mammo", notify: bool = True) -> ScreenResult:
    """Screen one study date (YYYY-MM-DD) for `task` with its deployed champion, then the
    earlier nights with late arrivals; `notify` posts each night's flagged exams to the
    configured webhook (the DAG does it in its own task).

    Raises:
        LockHeld: another run of the task held its lock for 600 s (a retry may succeed).
    """
    with stage_lock(f"screen-{get_task(task).name}"):
        tonight = night(study_date, task, notify)
        caught_up = []
        for late_night in late.late_nights(study_date, task):
            try:
                caught_up.append(night(late_night.date, task, notify))
            except Exception:
                log.error("screen %s: catching up %s (%d late arrivals) failed; %s is screened",
                          task, late_night.date, late_night.late, study_date)
                raise
        return dataclasses.replace(tonight, caught_up=caught_up)


def night(study_date: str, task: str = "mammo", notify: bool = True) -> ScreenResult:
    """Screen one night whole (plan, every batch, merge), in this process, without the lock."""
    planned = batches.plan(study_date, task)
    for batch in planned.batches:
        batches.score_batch(batch.task, batch.date, batch.batch, batch.plan_id, batch.exams)
    merged = merge.merge(study_date, planned.task, notify=notify)
    return dataclasses.replace(merged, arriving=planned.arriving)
