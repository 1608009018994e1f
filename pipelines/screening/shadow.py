"""The shadow model: scored on the night's exams beside the champion, compared, kept apart.

Its exam scores go to `shadow_results` with the champion's for the same exams; the
worklist, the flags and the PACS write-back use the champion only. A shadow that cannot
be scored (not ready, Triton error) is reported in the run's output and never fails the night.
"""

from __future__ import annotations

import logging

import numpy as np

from pipelines import db
from pipelines.domain import SCREENING_VIEWS, ShadowAgreement
from pipelines.errors import RadflowError
from pipelines.serving.deployment import Deployment, find
from pipelines.serving.triton_client import TritonClient
from pipelines.training.aggregate import exam_score

log = logging.getLogger(__name__)


def agreement(champion: np.ndarray, shadow: np.ndarray, champion_flags: np.ndarray,
              shadow_flags: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """Pearson r and Spearman rho of the exam scores, and the share of equal flags."""
    from scipy import stats

    if len(champion) == 0:
        return None, None, None
    flags = float(np.mean(champion_flags == shadow_flags))
    if len(champion) < 2 or np.ptp(champion) == 0 or np.ptp(shadow) == 0:
        return None, None, round(flags, 4)
    pearson = float(stats.pearsonr(champion, shadow).statistic)
    spearman = float(stats.spearmanr(champion, shadow).statistic)
    return round(pearson, 4), round(spearman, 4), round(flags, 4)


def exam_scores(probs: np.ndarray, exams: int) -> np.ndarray:
    """Exam scores from view probabilities in SCREENING_VIEWS order, 4 per exam."""
    return np.array([exam_score(dict(zip(SCREENING_VIEWS, map(float, probs[4 * i:4 * i + 4]), strict=True)))
                     for i in range(exams)])


def score(triton: TritonClient, batch_size: int, images: np.ndarray, exam_ids: list[str],
          study_date: str, champion: Deployment, champion_scores: np.ndarray) -> ShadowAgreement | None:
    """Score the night's views with the shadow, store its results, return the agreement;
    None when no shadow is deployed."""
    shadow = find("shadow")
    if shadow is None:
        return None
    try:
        probs = triton.infer(shadow.triton_model, images, batch_size, str(shadow.triton_version)) \
            if len(images) else np.zeros(0)
    except RadflowError as exc:
        log.warning("shadow %s v%s not scored: %s", shadow.triton_model, shadow.model_version, exc)
        return ShadowAgreement(model_version=shadow.model_version, exams=0, score_correlation=None,
                               rank_correlation=None, flag_agreement=None, flagged=0, error=str(exc))
    scores = exam_scores(probs, len(exam_ids))
    flags = scores >= shadow.operating_point
    champion_flags = champion_scores >= champion.operating_point
    pearson, spearman, flag_share = agreement(champion_scores, scores, champion_flags, flags)
    rows = [{"exam_id": e, "model_version": shadow.model_version, "champion_version": champion.model_version,
             "study_date": study_date, "score": float(sc), "flagged": bool(f), "champion_score": float(cs),
             "champion_flagged": bool(cf)}
            for e, sc, f, cs, cf in zip(exam_ids, scores, flags, champion_scores, champion_flags,
                                        strict=True)]
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.shadow_results, rows, keys=["exam_id", "model_version"])
    log.info("shadow v%s on %d exams: score r=%s, flag agreement %s", shadow.model_version,
             len(exam_ids), pearson, flag_share)
    return ShadowAgreement(model_version=shadow.model_version, exams=len(exam_ids), score_correlation=pearson,
                           rank_correlation=spearman, flag_agreement=flag_share, flagged=int(flags.sum()))
