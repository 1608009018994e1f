"""One screening night shared by workers: plan it into batches, score each batch.

`plan` lists the night's studies of the task's modality in the gateway Orthanc (as exam
pseudonyms and Orthanc ids, in a stable order), cuts them into batches of
RADFLOW_SCREENING_BATCH_EXAMS and returns the batches as references. A study still arriving
(not yet marked stable by Orthanc: instances received within RADFLOW_ORTHANC_STABLE_AGE_S) is
waited for up to that long plus ARRIVAL_MARGIN_S; one still arriving then is left out of the plan and
counted (`arriving`): the next night's run screens it with the other late arrivals
(pipelines/screening/late.py), so an exam is never screened, or quarantined for missing
views, while its images are still coming in. `score_batch` does the
heavy per-view work of one batch: download, views checked, preprocessing, image QC (a study
that cannot be screened is quarantined with its reason), the champion's probabilities and
heatmaps on Triton, the exam score and suspicion 1-10, the shadow's scores, the monitoring
features; then it stages them (pipelines/screening/staging.py), replacing only what that
batch staged before. Nothing anyone sees is written here: flags (the reading capacity ranks
the whole night), results, SR, heatmaps and the worklist come from the merge (merge.py),
once every batch is in.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np

from pipelines import db
from pipelines.config import RadflowSettings, get_settings
from pipelines.deployments import Deployment, current_deployment, find
from pipelines.domain import BatchResult, Quarantined, ScreeningBatch, ScreeningPlan
from pipelines.errors import InvalidStudy, PermanentError
from pipelines.pacs.client import OrthancClient
from pipelines.pacs.pseudonyms import pseudonym_for
from pipelines.screening import capture, collect, plans, results, shadow, staging
from pipelines.screening import suspicion as scoring
from pipelines.screening.timing import StageTimer
from pipelines.tasks import TaskDefinition, get_task
from pipelines.triton_client import TritonClient

log = logging.getLogger(__name__)
ARRIVAL_MARGIN_S = 5.0  # beyond Orthanc's stable age, for a study still arriving at planning


def plan(study_date: str, task: str = "mammo") -> ScreeningPlan:
    """Plan the night `study_date` (YYYY-MM-DD) of `task` for the deployed champion: its
    studies cut into batches (a plan made again for the same studies is the same plan, and
    keeps what its batches staged). Records the run as running."""
    s = get_settings()
    spec = get_task(task)
    deployed = current_deployment(spec.triton_model)
    shadow_dep = find("shadow", spec.triton_model)
    with OrthancClient(s) as client:
        studies, arriving = night_studies(client, spec, study_date,
                                          wait_s=s.orthanc_stable_age_s + ARRIVAL_MARGIN_S)
    night = plans.make_plan(spec.name, study_date, deployed.model_version, s.screening_batch_exams, studies)
    changed = plans.save_plan(night)
    pruned = plans.prune(spec.name, keep=study_date)
    results.start(results.run_id(spec.name, study_date, deployed.model_version), spec.name, study_date,
                  deployed.model_name, deployed.model_version,
                  shadow_dep.model_version if shadow_dep else None, s.screening_capacity)
    cut = night.batches()
    log.info("plan %s %s: %d studies in %d batches of up to %d (plan %s, %s), %d still arriving "
             "(left for the next night's catch-up); staging of %d completed nights dropped", spec.name,
             study_date, len(night.studies), len(cut), night.batch_exams, night.plan_id,
             "new" if changed else "unchanged", arriving, len(pruned))
    return ScreeningPlan(
        task=spec.name, date=study_date, plan_id=night.plan_id, model_version=night.model_version,
        exams=len(night.studies), batch_exams=night.batch_exams, arriving=arriving,
        batches=[ScreeningBatch(spec.name, study_date, i, night.plan_id, [p.exam_id for p in b])
                 for i, b in enumerate(cut)])


def night_studies(client: OrthancClient, task: TaskDefinition, study_date: str,
                  wait_s: float = 0.0) -> tuple[list[tuple[str, str]], int]:
    """(exam pseudonym, Orthanc id) of the date's stable studies of the task's modality, and
    how many were still arriving after waiting up to `wait_s` for them to become stable. A
    study without a valid StudyInstanceUID is listed as `orthanc:<id prefix>` (its batch
    quarantines it)."""
    found = client.find_studies(study_date.replace("-", ""), task.modality)
    studies = {sid: client.study(sid) for sid in found}
    deadline = time.monotonic() + wait_s
    while (arriving := [sid for sid, st in studies.items() if not st.get("IsStable", True)]) \
            and time.monotonic() < deadline:
        time.sleep(1.0)
        studies.update({sid: client.study(sid) for sid in arriving})
    uids = {sid: str(st.get("MainDicomTags", {}).get("StudyInstanceUID", "") or "")
            for sid, st in studies.items() if sid not in arriving}
    out = []
    with db.get_engine().begin() as conn:
        for sid, uid in uids.items():
            try:
                out.append((pseudonym_for(conn, "study", uid), sid))
            except InvalidStudy:
                out.append((f"orthanc:{sid[:8]}", sid))
    return out, len(arriving)


def score_batch(task: str, date: str, batch: int, plan_id: str,
                exams: Sequence[str] | None = None) -> BatchResult:
    """Score batch `batch` of the night's plan `plan_id` and stage its results (replacing
    what this batch staged before); `exams`, when given, are the pseudonyms the plan handed
    out for it.

    Raises:
        PermanentError: the night was planned again since, the batch does not exist or lists
            other exams, or another champion is deployed than the one the night was planned for.
        TritonUnavailable, OrthancUnavailable: retry (nothing was staged).
    """
    s = get_settings()
    spec = get_task(task)
    night = plans.load_plan(spec.name, date)
    if night.plan_id != plan_id:
        raise PermanentError(f"{spec.name} {date} was planned again (plan {night.plan_id}) after "
                             f"batch {batch} of plan {plan_id} was handed out: run the new plan's batches")
    studies = night.batch(batch)
    if exams is not None and list(exams) != [p.exam_id for p in studies]:
        raise PermanentError(f"batch {batch} of plan {plan_id} lists other exams than the plan: "
                             f"{len(exams)} given, {len(studies)} planned")
    deployed = current_deployment(spec.triton_model)
    night.check_champion(deployed.model_version)
    rid = results.run_id(spec.name, date, deployed.model_version)
    timer = StageTimer()
    try:
        staged = _score(s, spec, deployed, batch, studies, timer, f"{date} batch {batch}")
        with timer("stage"):
            staging.write_batch(night, dataclasses.replace(staged, stage_seconds=dict(timer.seconds)))
    except Exception as exc:
        results.finish(rid, "failed", error=f"{type(exc).__name__}: {exc}"[:2000],
                       stage_seconds=timer.seconds)
        raise
    scored = [e for e in staged.exams if e.reason is None]
    held = [Quarantined(id=e.study_id, reason=e.reason) for e in staged.exams if e.reason is not None]
    log.info("batch %d of %s %s: %d exams scored, %d quarantined", batch, spec.name, date,
             len(scored), len(held))
    return BatchResult(task=spec.name, date=date, batch=batch, plan_id=plan_id, exams=len(scored),
                       views_scored=sum(len(e.views) for e in scored), quarantined=held,
                       stage_seconds=timer.seconds)


def _score(s: RadflowSettings, spec: TaskDefinition, deployed: Deployment, batch: int,
           studies: Sequence[plans.Planned], timer: StageTimer, label: str) -> staging.StagedBatch:
    """Collect, score and describe one batch's studies (nothing written but quarantine records)."""
    height, width = spec.input_size()
    with OrthancClient(s) as client, timer("collect"):
        prepared, held = collect.collect(client, spec, [p.study_id for p in studies], height, width,
                                         s.download_workers, s.decode_timeout_s, label)
    triton = TritonClient(s)
    with timer("score"):
        images = view_images(prepared, height, width)
        probs, heatmaps = score_views(triton, deployed, images, s.triton_batch_size)
    with timer("aggregate"):
        rows = exam_rows(spec, deployed, prepared, probs)
    with timer("shadow"):
        shadow_scores = shadow.exam_scores(triton, s.triton_batch_size, images, rows, spec)
    with timer("features"):  # for monitoring: metadata, image statistics, embeddings
        frame = capture.night_frame(prepared, rows, images, capture.model_file(deployed))
    exams = staged_exams(studies, prepared, rows, held, shadow_scores)
    return staging.StagedBatch(batch, exams, images[:, 0], heatmaps, frame, shadow_scores, {})


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


def exam_rows(task: TaskDefinition, deployed: Deployment, prepared: list[collect.PreparedExam],
              probs: np.ndarray) -> list[results.ExamRow]:
    """Exam rows (score without the QC-flagged views, suspicion 1-10), not yet flagged: the
    flag needs the whole night (merge.flag)."""
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
    return rows


def staged_exams(studies: Sequence[plans.Planned], prepared: list[collect.PreparedExam],
                 rows: list[results.ExamRow], held: list[Quarantined],
                 shadow_scores: shadow.ShadowScores | None) -> tuple[staging.StagedExam, ...]:
    """One staged exam per planned study, in plan order: scored, or quarantined with its reason."""
    by_study = {e.study_id: (i, e, r) for i, (e, r) in enumerate(zip(prepared, rows, strict=True))}
    reasons = {q.id: q.reason for q in held}
    scores = shadow_scores.scores if shadow_scores is not None and shadow_scores.error is None else ()
    out = []
    for p in studies:
        if p.study_id not in by_study:
            out.append(staging.StagedExam(p.position, p.exam_id, p.study_id,
                                          reason=reasons.get(p.study_id, "not collected")))
            continue
        i, exam, row = by_study[p.study_id]
        views = tuple(staging.StagedView(v.view, v.score, v.device, pv.instance_id, pv.input_box, v.qc.flags)
                      for v, pv in zip(row.views, exam.views.values(), strict=True))
        out.append(staging.StagedExam(p.position, exam.exam_id, p.study_id, None, row.score, row.suspicion,
                                      row.all_flagged, views, scores[i] if scores else None))
    return tuple(out)
