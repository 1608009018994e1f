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

Two one-process runs of a task never overlap: each holds the task's stage lock
(`screen-<task>`, pipelines/locks.py) for its whole night. The second waits for the first,
then screens the night again and replaces nothing (or fails with LockHeld, naming the lock,
after waiting 600 s). Unlocked, they raced on the night's staged files and its worklist
folder, and one of them failed half-way (a FileNotFoundError on a staged file).
"""

from __future__ import annotations

from pipelines.domain import ScreenResult
from pipelines.locks import stage_lock
from pipelines.screening import batches, merge
from pipelines.tasks import get_task


def run(study_date: str, task: str = "mammo", notify: bool = True) -> ScreenResult:
    """Screen one study date (YYYY-MM-DD) for `task` with its deployed champion; `notify`
    posts the flagged exams to the configured webhook (the DAG does it in its own task).

    Raises:
        LockHeld: another run of the task held its lock for 600 s (a retry may succeed).
    """
    with stage_lock(f"screen-{get_task(task).name}"):
        planned = batches.plan(study_date, task)
        for batch in planned.batches:
            batches.score_batch(batch.task, batch.date, batch.batch, batch.plan_id, batch.exams)
        return merge.merge(study_date, planned.task, notify=notify)
