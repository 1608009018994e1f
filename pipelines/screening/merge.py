"""The night's merge: once every batch of the plan is staged, what radiologists see.

Refuses (PermanentError naming the batch indexes) while a batch of the plan has not staged
its results. Then, over the whole night: the flags (the operating point, or the reading
capacity, which ranks every exam of the night), the results in one keyed transaction
(upserted by exam and model version, as a one-shot night wrote them), the shadow's
agreement, the night's monitoring features, the DICOM SR, CAD SR and heatmap series into
each study (the headers read again from the gateway Orthanc: they are never staged), the
worklist and the notification. The SR and the worklist exist only for a complete night.
Every write is keyed, so a rerun of the merge replaces and never duplicates.
"""

from __future__ import annotations

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
from pipelines.tasks import get_task

if TYPE_CHECKING:
    import pandas as pd

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
    staged: list[staging.StagedBatch] = []
    try:
        with timer("gather"):
            staged = staging.read_batches(night)
        exams = [e for b in staged for e in b.exams]
        scored = [e for e in exams if e.reason is None]
        held = [Quarantined(id=e.study_id, reason=e.reason or "") for e in exams if e.reason is not None]
        images, heatmaps = _stacked([b.images for b in staged]), _stacked([b.heatmaps for b in staged])
        with timer("aggregate"):
            rows, reason = flag(scored, deployed, s.screening_capacity)
        with timer("shadow"):
            night_shadow = shadow.combined([b.shadow for b in staged])
            agreement = (None if night_shadow is None
                         else shadow.store(night_shadow, rows, study_date, deployed))
        with timer("store"):
            results.store(rid, spec.name, study_date, deployed.model_version, reason, rows)
            capture.write_night(spec.name, study_date, deployed.model_version, night_features(staged))
        with OrthancClient(s) as client:
            with timer("headers"):
                prepared = prepared_exams(client, scored, images, s.download_workers)
            with timer("write_back"):
                written = publish.write_back(client, spec, deployed, prepared, rows, heatmaps)
        with timer("worklist"):
            # the shadow stays off the radiologists' page: its agreement is in the run's output
            pages = publish.worklist(spec, study_date, deployed, prepared, rows, heatmaps, reason,
                                     client.url, None, len(held), tuple(missing))
        notified = 0
        if notify:  # the DAG notifies in its own retried task instead
            with timer("notify"):
                notified = len(announce(pages.html).flagged)
    except Exception as exc:
        results.finish(rid, "failed", error=f"{type(exc).__name__}: {exc}"[:2000],
                       stage_seconds=summed(*(b.stage_seconds for b in staged), timer.seconds))
        raise
    seconds = summed(*(b.stage_seconds for b in staged), timer.seconds)
    flagged = sum(r.flagged for r in rows)
    discounted = sum(1 for r in rows if not r.all_flagged for v in r.views if v.qc.discounted)
    results.finish(rid, "complete", exams=len(rows), flagged=flagged, quarantined=len(held),
                   views_discounted=discounted, stage_seconds=seconds, worklist=str(pages.html))
    log.info("screen %s %s: %d exams in %d batches, %d flagged (%s), %d views discounted, %d quarantined",
             spec.name, study_date, len(rows), len(staged), flagged, reason, discounted, len(held))
    return ScreenResult(date=study_date, exams=len(rows), flagged=flagged, worklist=str(pages.html),
                        model_version=deployed.model_version, views_scored=int(len(images)),
                        quarantined=held, shadow=agreement, task=spec.name, run_id=rid,
                        flag_reason=reason, views_discounted=discounted, stage_seconds=seconds,
                        write_back=written, notified=notified, not_retrieved=missing,
                        batches=len(staged), plan_id=night.plan_id)


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


def night_features(staged: Sequence[staging.StagedBatch]) -> pd.DataFrame:
    """The night's monitoring features: the batches' rows in plan order."""
    import pandas as pd

    frames = [b.features for b in staged if len(b.features)]
    if not frames:
        return features.frame([])
    return features.frame(pd.concat(frames, ignore_index=True).to_dict("records"))


def _stacked(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Per-view arrays of the batches, one after the other (batches without views left out:
    their empty arrays may have another shape)."""
    kept = [p for p in parts if len(p)]
    return np.concatenate(kept) if kept else np.zeros((0, 1, 1), np.float32)
