"""`radflow screen --date D`: the exams of study date D from Orthanc, scored through
Triton, exam results upserted, worklist published."""

from __future__ import annotations

import logging
import time

import numpy as np

from pipelines import db
from pipelines.config import get_settings
from pipelines.domain import SCREENING_VIEWS, Quarantined, ScreenResult
from pipelines.errors import PermanentError
from pipelines.ingest import exams
from pipelines.pacs.client import OrthancClient
from pipelines.pacs.pseudonyms import pseudonym_for
from pipelines.screening import shadow
from pipelines.screening.worklist import WorklistRow, publish
from pipelines.serving.deployment import current_deployment
from pipelines.serving.triton_client import TritonClient
from pipelines.training.aggregate import exam_score

log = logging.getLogger(__name__)


Collected = dict[str, tuple[str, np.ndarray]]


def _collect(client: OrthancClient, study_date: str) -> tuple[Collected, list[Quarantined]]:
    """{exam pseudonym: (orthanc study id, views [4, 1, H, W])} and the quarantined studies."""
    s = get_settings()
    found, held = {}, []
    for study_id in client.find_studies(study_date.replace("-", "")):
        try:
            datasets = exams.download(client, study_id, s.download_workers)
            exam = exams.assemble(datasets, f"orthanc:{study_id[:8]}", s.image_height, s.image_width)
        except PermanentError as exc:
            held.append(Quarantined(id=study_id, reason=str(exc)))
            with db.get_engine().begin() as conn:
                db.upsert(conn, db.quarantine, [{"stage": "screen", "item_id": study_id,
                          "reason": str(exc)}], keys=["stage", "item_id"])
            continue
        with db.get_engine().begin() as conn:
            exam_id = pseudonym_for(conn, "study", exam.identifiers["study"])
        stack = np.stack([exam.views[v] for v in SCREENING_VIEWS])[:, None]
        found[exam_id] = (study_id, stack)
    return found, held


def run(study_date: str) -> ScreenResult:
    """Screen one study date (YYYY-MM-DD) with the deployed champion."""
    s = get_settings()
    deployed = current_deployment()
    started = time.monotonic()
    with OrthancClient(s) as client:
        found, held = _collect(client, study_date)
    triton = TritonClient(s)
    images = np.concatenate([v for _, v in found.values()]) if found else np.zeros((0, 1, 1, 1))
    probs = triton.infer(s.triton_model, images, s.triton_batch_size, str(deployed.triton_version)) \
        if len(images) else np.zeros(0)
    rows, results, scores = [], [], []
    for i, (exam_id, (study_id, _)) in enumerate(found.items()):
        view_scores = {v: float(p) for v, p in zip(SCREENING_VIEWS, probs[4 * i:4 * i + 4], strict=True)}
        score = exam_score(view_scores)  # breast = mean of its views, exam = max (as trained)
        flagged = score >= deployed.operating_point
        scores.append(score)
        results.append({"exam_id": exam_id, "model_version": deployed.model_version,
                        "study_date": study_date, "score": score, "flagged": flagged,
                        "views_scored": 4, "view_scores": view_scores})
        rows.append(WorklistRow(exam_id, score, flagged, view_scores,
                                f"{client.url}/app/explorer.html#study?uuid={study_id}"))
    agreement = shadow.score(triton, s.triton_batch_size, images, list(found), study_date, deployed,
                             np.array(scores, dtype=np.float64))
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.exam_results, results, keys=["exam_id", "model_version"])
    path = publish(s.worklists_dir, study_date, deployed.model_version, rows)
    log.info("screen: %s, %d exams, %d flagged, %d quarantined in %.1f s", study_date, len(rows),
             sum(r.flagged for r in rows), len(held), time.monotonic() - started)
    return ScreenResult(date=study_date, exams=len(rows), flagged=sum(r.flagged for r in rows),
                        worklist=str(path), model_version=deployed.model_version,
                        views_scored=int(len(probs)), quarantined=held, shadow=agreement)
