"""The shadow model: scored on the night's exams beside the champion, compared, kept apart.

Each scoring batch scores its views with the shadow (`exam_scores`); the merge, once it
knows the champion's flags of the whole night, stores the shadow's exam scores in
`shadow_results` with the champion's and returns the agreement (`store`). The worklist, the
flags and the PACS write-back use the champion only. A shadow that cannot be scored (not
ready, Triton error) is reported in the run's output and never fails the night.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from pipelines import db
from pipelines.deployments import Deployment, find
from pipelines.domain import ShadowAgreement
from pipelines.errors import RadflowError
from pipelines.screening import suspicion as scoring
from pipelines.screening.results import ExamRow
from pipelines.tasks import TaskDefinition
from pipelines.triton_client import TritonClient

log = logging.getLogger(__name__)


def agreement(champion: np.ndarray, shadow: np.ndarray, champion_flags: np.ndarray,
              shadow_flags: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """Pearson r and Spearman rho of the exam scores, and the share of equal flags (the
    champion's flags as shown on the worklist; the shadow's at its own operating point)."""
    from scipy import stats

    if len(champion) == 0:
        return None, None, None
    flags = float(np.mean(champion_flags == shadow_flags))
    if len(champion) < 2 or np.ptp(champion) == 0 or np.ptp(shadow) == 0:
        return None, None, round(flags, 4)
    pearson = float(stats.pearsonr(champion, shadow).statistic)
    spearman = float(stats.spearmanr(champion, shadow).statistic)
    return round(pearson, 4), round(spearman, 4), round(flags, 4)


@dataclasses.dataclass(frozen=True)
class ShadowScores:
    """The shadow's exam scores of some exams (in their order), or why it has none."""

    model_version: str
    operating_point: float
    scores: tuple[float, ...] = ()
    error: str | None = None


def exam_scores(triton: TritonClient, batch_size: int, images: np.ndarray, exams: Sequence[ExamRow],
                task: TaskDefinition) -> ShadowScores | None:
    """Score the views (`images`, exam by exam in view order) with the task's shadow,
    discounting the views the champion discounted. None when no shadow is deployed."""
    shadow = find("shadow", task.triton_model)
    if shadow is None:
        return None
    try:
        probs = triton.infer(shadow.triton_model, images, batch_size, str(shadow.triton_version)) \
            if len(images) else np.zeros(0)
    except RadflowError as exc:
        log.warning("shadow %s v%s not scored: %s", shadow.triton_model, shadow.model_version, exc)
        return ShadowScores(shadow.model_version, shadow.operating_point, error=str(exc))
    scores, i = [], 0
    for exam in exams:
        views = {v.view: float(probs[i + k]) for k, v in enumerate(exam.views)}
        i += len(views)
        skip = [] if exam.all_flagged else [v.view for v in exam.views if v.qc.discounted]
        scores.append(scoring.score_without(task, views, skip)[0])
    return ShadowScores(shadow.model_version, shadow.operating_point, tuple(scores))


def store(shadow: ShadowScores, exams: Sequence[ExamRow], study_date: str,
          champion: Deployment) -> ShadowAgreement:
    """Store the shadow's scores of the night's `exams` (flagged as the worklist shows them)
    beside the champion's, and return the agreement (the error, when it was not scored)."""
    if shadow.error is not None:
        return ShadowAgreement(model_version=shadow.model_version, exams=0, score_correlation=None,
                               rank_correlation=None, flag_agreement=None, flagged=0, error=shadow.error)
    exam_ids = [e.exam_id for e in exams]
    champion_scores = np.array([e.score for e in exams])
    scores = np.array(shadow.scores, dtype=np.float64)
    flags = scores >= shadow.operating_point
    champion_flags = np.array([e.flagged for e in exams], dtype=bool)
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


def combined(parts: Sequence[ShadowScores | None]) -> ShadowScores | None:
    """The night's shadow scores from its batches' (in batch order): None when no batch had
    a shadow; an error when one failed or the batches were scored by different versions."""
    found = [p for p in parts if p is not None]
    if not found:
        return None
    versions = sorted({p.model_version for p in found})
    last = found[-1]
    if len(versions) > 1:
        return dataclasses.replace(last, scores=(), error=(
            f"the night's batches were scored by shadow versions {', '.join(versions)}: "
            "rerun the night to compare one version"))
    if len(found) < len(parts):
        return dataclasses.replace(last, scores=(), error=(
            f"{len(parts) - len(found)} of the night's {len(parts)} batches were scored "
            "without a shadow: rerun the night to compare"))
    failed = next((p for p in found if p.error is not None), None)
    if failed is not None:
        return failed
    return dataclasses.replace(last, scores=tuple(s for p in found for s in p.scores))
