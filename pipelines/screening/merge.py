"""The night's merge: once every batch of the plan is staged, what radiologists see.

Refuses (PermanentError naming the batch indexes) while a batch of the plan has not staged
its results. Then, over the whole night: the flags (the operating point, or the reading
capacity, which ranks every exam of the night), the results in one keyed transaction
(upserted by exam and model version, as a one-shot night wrote them), the shadow's
agreement, the night's monitoring features. Then batch by batch: the DICOM SR, CAD SR and
heatmap series into each study (the headers read again from the gateway Orthanc: they are
never staged) and the exams' worklist images; then the worklist page, published whole, and
the notification. The SR and the worklist exist only for a complete night. Every write is
keyed, so a rerun of the merge replaces and never duplicates.

Memory is bounded by the batch size, not by the night: the merge holds one row per exam of
the night (scores, flags, QC flags, monitoring features) and one batch's arrays (model
inputs and heatmaps) and DICOM headers at a time (RADFLOW_SCREENING_BATCH_EXAMS exams),
dropped before the next batch's are read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pipelines import features
from pipelines.config import get_settings
from pipelines.deid import without_pixel_data
from pipelines.deployments import Deployment, current_deployment
from pipelines.domain import Quarantined, ScreenResult, ViewQc
from pipelines.pacs import studies
from pipelines.pacs.client import OrthancClient
from pipelines.pacs.retrievals import not_retrieved
from pipelines.screening import capture, plans, publish, results, shadow, staging
from pipelines.screening import suspicion as scoring
from pipelines.screening.collect import PreparedExam, PreparedView
from pipelines.screening.notice import announce
from pipelines.screening.timing import StageTimer, summed
from pipelines.tasks import TaskDefinition, get_task

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.screening.worklist import NightDraft

log = logging.getLogger(__name__)


def merge(study_date: str, task: str = "mammo", notify: bool = True) -> ScreenResult:
    """Merge the staged batches of the night's plan into its results, SR and worklist;
    `notify` posts the flagged exams (the DAG does it in its own task).

    Raises:
        PermanentError: no plan, a batch missing (named), or another champion deployed than
            the one the night was planned for.
    """
    s = get_settings()
    spec = get_task(task)
    night = plans.load_plan(spec.name, study_date)
    deployed = current_deployment(spec.triton_model)
    night.check_champion(deployed.model_version)
    rid = results.run_id(spec.name, study_date, deployed.model_version)
    missing = not_retrieved(spec.name, study_date)  # pull mode: what the PACS could not send
    timer = StageTimer()
    staged: list[staging.StagedRecord] = []
    try:
        with timer("gather"):
            staged = staging.read_staged(night)
        exams = [e for b in staged for e in b.exams]
        scored = [e for e in exams if e.reason is None]
        held = [Quarantined(id=e.study_id, reason=e.reason or "") for e in exams if e.reason is not None]
        with timer("aggregate"):
            rows, reason = flag(scored, deployed, s.screening_capacity)
        with timer("shadow"):
            night_shadow = shadow.combined([b.shadow for b in staged])
            agreement = (None if night_shadow is None
                         else shadow.store(night_shadow, rows, study_date, deployed))
        with timer("store"):
            results.store(rid, spec.name, study_date, deployed.model_version, reason, rows)
            capture.write_night(spec.name, study_date, deployed.model_version, night_features(staged))
        with OrthancClient(s) as client, contextlib.ExitStack() as unpublished:
            # the shadow stays off the radiologists' page: its agreement is in the run's output
            pages = unpublished.enter_context(publish.worklist(
                spec, study_date, deployed, [e.study_id for e in scored], rows, reason, client.url,
                None, len(held), tuple(missing)))
            written = write_out(client, spec, deployed, night, staged, rows, reason, pages, timer)
            with timer("worklist"):
                unpublished.close()  # the page and exports written, the night published
        notified = 0
        if notify:  # the DAG notifies in its own retried task instead
            with timer("notify"):
                notified = len(announce(pages.files.html).flagged)
    except Exception as exc:
        results.finish(rid, "failed", error=f"{type(exc).__name__}: {exc}"[:2000],
                       stage_seconds=summed(*(b.stage_seconds for b in staged), timer.seconds))
        raise
    seconds = summed(*(b.stage_seconds for b in staged), timer.seconds)
    flagged = sum(r.flagged for r in rows)
    discounted = sum(1 for r in rows if not r.all_flagged for v in r.views if v.qc.discounted)
    results.finish(rid, "complete", exams=len(rows), flagged=flagged, quarantined=len(held),
                   views_discounted=discounted, stage_seconds=seconds, worklist=str(pages.files.html))
    log.info("screen %s %s: %d exams in %d batches, %d flagged (%s), %d views discounted, %d quarantined",
             spec.name, study_date, len(rows), len(staged), flagged, reason, discounted, len(held))
    return ScreenResult(date=study_date, exams=len(rows), flagged=flagged, worklist=str(pages.files.html),
                        model_version=deployed.model_version,
                        views_scored=sum(len(e.views) for e in scored),
                        quarantined=held, shadow=agreement, task=spec.name, run_id=rid,
                        flag_reason=reason, views_discounted=discounted, stage_seconds=seconds,
                        write_back=written, notified=notified, not_retrieved=missing,
                        batches=len(staged), plan_id=night.plan_id)


def write_out(client: OrthancClient, spec: TaskDefinition, deployed: Deployment, night: plans.Plan,
              staged: Sequence[staging.StagedRecord], rows: Sequence[results.ExamRow], reason: str,
              pages: NightDraft, timer: StageTimer) -> dict[str, int]:
    """Batch by batch, with only that batch's arrays and headers in memory: its exams' SR,
    CAD SR and heatmaps into their studies, and their worklist images into the `pages`
    (`rows`: the night's scored exams, in plan order as the batches hold them).

    Returns:
        The write-back's {"exams", "stored", "replaced"} counts over the night.
    """
    workers = get_settings().download_workers
    written = {"exams": 0, "stored": 0, "replaced": 0}
    first = 0
    for batch in staged:
        scored = [e for e in batch.exams if e.reason is None]
        mine = list(rows[first:first + len(scored)])
        with timer("gather"):
            images, heatmaps = staging.read_arrays(night, batch)
        with timer("headers"):
            prepared = prepared_exams(client, scored, images, workers)
        with timer("write_back"):
            counts = publish.write_back(client, spec, deployed, prepared, mine, heatmaps)
        with timer("worklist"):
            pages.render(first, publish.entries([e.study_id for e in scored], mine, reason, client.url,
                                                prepared, heatmaps))
        written = {k: written[k] + counts[k] for k in written}
        first += len(scored)
        del images, heatmaps, prepared  # before the next batch's are read
    return written


def flag(scored: Sequence[staging.StagedExam], deployed: Deployment,
         capacity: int | None) -> tuple[list[results.ExamRow], str]:
    """The night's exam rows, flagged by the operating point or, with a reading capacity,
    as the night's top `capacity` scores (ties: the earlier exam in the plan); and why."""
    flags, reason = scoring.flags(np.array([e.score for e in scored]), deployed.operating_point, capacity)
    rows = [results.ExamRow(
        e.exam_id, e.score, e.suspicion, bool(f),
        tuple(results.ViewRow(v.view, v.score, ViewQc(v.view, {}, v.flags), v.device) for v in e.views),
        e.all_flagged) for e, f in zip(scored, flags, strict=True)]
    return rows, reason


def prepared_exams(client: OrthancClient, scored: Sequence[staging.StagedExam], images: np.ndarray,
                   workers: int) -> list[PreparedExam]:
    """The scored exams as the write-back and the worklist take them: each view's staged model
    input with its header read again from the gateway Orthanc (without pixels; held in memory
    only, as at collection)."""
    ids = [v.instance_id for e in scored for v in e.views]
    headers = studies.read_instances(client, ids, workers, stop_before_pixels=True) if ids else []
    out, i = [], 0
    for e in scored:
        views = {}
        for v in e.views:
            views[v.view] = PreparedView(v.view, images[i], ViewQc(v.view, {}, v.flags),
                                         without_pixel_data(headers[i]), v.device, v.input_box,
                                         v.instance_id)
            i += 1
        out.append(PreparedExam(e.exam_id, e.study_id, views))
    return out


def night_features(staged: Sequence[staging.StagedRecord]) -> pd.DataFrame:
    """The night's monitoring features: the batches' rows in plan order."""
    import pandas as pd

    frames = [b.features for b in staged if len(b.features)]
    if not frames:
        return features.frame([])
    return features.frame(pd.concat(frames, ignore_index=True).to_dict("records"))
