"""`radflow screen --date D [--task T]`: one night of opportunistic screening.

Stages, each timed (`stage_seconds` in the output and the run record):
collect (Orthanc: the date's studies of the task's modality, views checked, preprocessed,
image QC) -> score (Triton, in batches: probability and heatmap per view) -> aggregate
(QC-flagged views discounted, exam score, suspicion 1-10 on the validation deciles, flag
by operating point or reading capacity) -> shadow (when deployed) -> features (what
monitoring compares: metadata, image statistics, embeddings) -> store (one database
transaction, then the night's monitoring features) -> write_back (DICOM SR and heatmap
secondary captures into each study) -> worklist (the night's page, CSV, JSON, the index)
-> notify (flagged exams).

Nothing is stored before every view is scored: a night with Triton down fails before its
first write and its retry starts clean. Every write is keyed (exam, model version; study
and task in the PACS), so a rerun replaces and never duplicates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator

import numpy as np

from pipelines.config import get_settings
from pipelines.deployments import Deployment, current_deployment, find
from pipelines.domain import ScreenResult
from pipelines.pacs.client import OrthancClient
from pipelines.pacs.retrievals import not_retrieved
from pipelines.screening import capture, collect, publish, results, shadow
from pipelines.screening import suspicion as scoring
from pipelines.screening.notice import announce
from pipelines.tasks import TaskDefinition, get_task
from pipelines.triton_client import TritonClient

log = logging.getLogger(__name__)


class StageTimer:
    """Wall-clock seconds per named stage, logged as each one ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - started, 3)
        log.info("screen: stage %s took %.2f s", name, self.seconds[name])


def view_images(prepared: list[collect.PreparedExam], height: int, width: int) -> np.ndarray:
    """The model inputs [V, 1, H, W] of every view, exam by exam in view order."""
    images = [v.image for e in prepared for v in e.views.values()]
    return np.stack(images)[:, None] if images else np.zeros((0, 1, height, width), np.float32)


def score_views(triton: TritonClient, deployed: Deployment, images: np.ndarray,
                batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [V] and heatmaps [V, h, w] of the views."""
    if not len(images):
        return np.zeros(0, np.float32), np.zeros((0, 1, 1), np.float32)
    out = triton.infer_outputs(deployed.triton_model, images, batch_size, str(deployed.triton_version))
    return out["probability"].reshape(-1), out["heatmap"][:, 0]


def aggregate(task: TaskDefinition, deployed: Deployment, prepared: list[collect.PreparedExam],
              probs: np.ndarray, capacity: int | None) -> tuple[list[results.ExamRow], str]:
    """Exam rows (score, suspicion, flag) and why exams are flagged."""
    cuts = scoring.parse_cuts(deployed.suspicion_cuts)
    rows, i = [], 0
    for exam in prepared:
        views = tuple(results.ViewRow(v.view, float(probs[i + k]), v.qc, v.device)
                      for k, v in enumerate(exam.views.values()))
        i += len(views)
        score, all_flagged = scoring.score_without(
            task, {v.view: v.score for v in views}, [v.view for v in views if v.qc.discounted])
        rows.append(results.ExamRow(exam.exam_id, score, scoring.suspicion(score, cuts), False, views,
                                    all_flagged))
    flags, reason = scoring.flags(np.array([r.score for r in rows]), deployed.operating_point, capacity)
    return [dataclasses.replace(r, flagged=bool(f)) for r, f in zip(rows, flags, strict=True)], reason


def run(study_date: str, task: str = "mammo", notify: bool = True) -> ScreenResult:
    """Screen one study date (YYYY-MM-DD) for `task` with its deployed champion; `notify`
    posts the flagged exams to the configured webhook (the DAG does it in its own task)."""
    s = get_settings()
    spec = get_task(task)
    deployed = current_deployment(spec.triton_model)
    shadow_dep = find("shadow", spec.triton_model)
    height, width = spec.input_size()
    rid = results.run_id(spec.name, study_date, deployed.model_version)
    timer = StageTimer()
    results.start(rid, spec.name, study_date, deployed.model_name, deployed.model_version,
                  shadow_dep.model_version if shadow_dep else None, s.screening_capacity)
    missing = not_retrieved(spec.name, study_date)  # pull mode: what the PACS could not send
    try:
        with OrthancClient(s) as client:
            with timer("collect"):
                prepared, held = collect.collect(client, spec, study_date, height, width,
                                                 s.download_workers, s.decode_timeout_s)
            triton = TritonClient(s)
            with timer("score"):
                images = view_images(prepared, height, width)
                probs, heatmaps = score_views(triton, deployed, images, s.triton_batch_size)
            with timer("aggregate"):
                rows, reason = aggregate(spec, deployed, prepared, probs, s.screening_capacity)
            with timer("shadow"):
                agreement = shadow.score(triton, s.triton_batch_size, images, rows, study_date,
                                         deployed, spec)
            with timer("features"):  # for monitoring: metadata, image statistics, embeddings
                night = capture.night_frame(prepared, rows, images, capture.model_file(deployed))
            with timer("store"):
                results.store(rid, spec.name, study_date, deployed.model_version, reason, rows)
                capture.write_night(spec.name, study_date, deployed.model_version, night)
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
                       stage_seconds=timer.seconds)
        raise
    flagged = sum(r.flagged for r in rows)
    discounted = sum(1 for r in rows if not r.all_flagged for v in r.views if v.qc.discounted)
    results.finish(rid, "complete", exams=len(rows), flagged=flagged, quarantined=len(held),
                   views_discounted=discounted, stage_seconds=timer.seconds, worklist=str(pages.html))
    log.info("screen %s %s: %d exams, %d flagged (%s), %d views discounted, %d quarantined",
             spec.name, study_date, len(rows), flagged, reason, discounted, len(held))
    return ScreenResult(date=study_date, exams=len(rows), flagged=flagged, worklist=str(pages.html),
                        model_version=deployed.model_version, views_scored=int(len(probs)),
                        quarantined=held, shadow=agreement, task=spec.name, run_id=rid,
                        flag_reason=reason, views_discounted=discounted, stage_seconds=timer.seconds,
                        write_back=written, notified=notified, not_retrieved=missing)
