"""`radflow outcomes`: how the served model did, once outcomes arrived.

The screened exams' stored results (`exam_results`: the exam score and the flag at the
operating point used that night, per model version) joined with their outcomes (`outcomes`,
the ground truth of pipelines/outcomes/truth.py), per model version and month of the study
date, and per version over all months: exams screened, exams with an outcome, the share
still without one (no record yet, or a pending BI-RADS 0, 3, 4 or 5), and sensitivity,
specificity and AUC with bootstrap CIs (pipelines/outcomes/bootstrap.py).

`check_sensitivity` is the monitoring alert's rule: the lower bound of a version's realised
sensitivity (all months) below the policy's `outcomes.min_sensitivity`, once
`min_exams_with_outcome` of its exams have an outcome.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pipelines import db
from pipelines.model_policy import OutcomesPolicy
from pipelines.outcomes.bootstrap import Estimate, realised_metrics
from pipelines.outcomes.truth import NEGATIVE, PENDING, POSITIVE, BreastOutcome, breast_truth, exam_truth

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

ALL_MONTHS = "all"
DEFAULT_RESAMPLES, DEFAULT_SEED, DEFAULT_CONFIDENCE = 2000, 20260401, 0.95


@dataclasses.dataclass(frozen=True)
class PerformanceRow:
    """One model version in one month (or ALL_MONTHS)."""

    model_version: str
    month: str
    exams_screened: int
    exams_with_outcome: int
    positives: int
    negatives: int
    pending: int  # exams whose outcome is still pending (BI-RADS 0, 3, 4 or 5)
    without_outcome_share: float
    sensitivity: Estimate
    specificity: Estimate
    auc: Estimate


@dataclasses.dataclass(frozen=True)
class RealisedPerformance:
    """Every version's rows by month, newest month first, then its all-months row."""

    task: str
    rows: list[PerformanceRow]
    outcomes: int  # breast outcomes stored for the task's screened exams
    resamples: int
    seed: int
    confidence: float

    def total(self, model_version: str) -> PerformanceRow | None:
        return next((r for r in self.rows if r.model_version == model_version and r.month == ALL_MONTHS),
                    None)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SensitivityCheck:
    """The alert rule on one version: `below` is the alert."""

    model_version: str
    min_sensitivity: float
    min_exams_with_outcome: int
    exams_with_outcome: int
    sensitivity: Estimate
    below: bool
    reason: str


def _version_key(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)


def _exam_truths(conn: Connection, task: str) -> dict[str, str]:
    """{exam pseudonym: its truth} of the task's screened exams that have outcome rows."""
    t, r = db.outcomes, db.exam_results
    screened = sa.select(r.c.exam_id).where(r.c.task == task).distinct()
    sides: dict[str, list[str]] = defaultdict(list)
    for row in conn.execute(sa.select(t).where(t.c.exam_id.in_(screened))).mappings():
        sides[row["exam_id"]].append(breast_truth(BreastOutcome.from_row(row)))
    return {e: truth for e, found in sides.items() if (truth := exam_truth(found))}


def _row(version: str, month: str, exams: Sequence[tuple[str, float, bool]], truths: dict[str, str],
         resamples: int, seed: int, confidence: float) -> PerformanceRow:
    known = [(e, s, f) for e, s, f in exams if truths.get(e) in (POSITIVE, NEGATIVE)]
    pending = sum(truths.get(e) == PENDING for e, _, _ in exams)
    if known:
        sens, spec, auc = realised_metrics([truths[e] == POSITIVE for e, _, _ in known],
                                           [f for _, _, f in known], [s for _, s, _ in known],
                                           resamples=resamples, seed=seed, confidence=confidence)
    else:
        sens = spec = auc = Estimate(None, reason="no exam with an outcome yet")
    positives = sum(truths[e] == POSITIVE for e, _, _ in known)
    return PerformanceRow(version, month, len(exams), len(known), positives, len(known) - positives, pending,
                          1.0 - len(known) / len(exams) if exams else 0.0, sens, spec, auc)


def realised_performance(task: str = "mammo", resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                         confidence: float = DEFAULT_CONFIDENCE,
                         versions: Iterable[str] | None = None) -> RealisedPerformance:
    """The table of `task`'s screened exams (all model versions, or only `versions`).

    Raises:
        ValueError: resamples below 1.
    """
    r = db.exam_results
    with db.get_engine().connect() as conn:
        truths = _exam_truths(conn, task)
        query = sa.select(r.c.model_version, r.c.study_date, r.c.exam_id, r.c.score, r.c.flagged).where(
            r.c.task == task)
        if versions is not None:
            query = query.where(r.c.model_version.in_(list(versions)))
        results = conn.execute(query).all()
        stored = conn.execute(sa.select(sa.func.count()).select_from(db.outcomes).where(
            db.outcomes.c.exam_id.in_(sa.select(r.c.exam_id).where(r.c.task == task)))).scalar_one()
    cells: dict[tuple[str, str], list[tuple[str, float, bool]]] = defaultdict(list)
    for version, study_date, exam_id, score, flagged in results:
        exam = (str(exam_id), float(score), bool(flagged))
        cells[(str(version), str(study_date)[:7])].append(exam)
        cells[(str(version), ALL_MONTHS)].append(exam)
    newest_first = sorted(cells, key=lambda k: k[1], reverse=True)
    order = sorted(newest_first, key=lambda k: (_version_key(k[0]), k[1] == ALL_MONTHS))
    rows = [_row(v, m, cells[(v, m)], truths, resamples, seed, confidence) for v, m in order]
    return RealisedPerformance(task, rows, int(stored), resamples, seed, confidence)


def latest_screened_version(task: str = "mammo") -> str | None:
    """The model version of the task's latest complete screening run: the champion that
    screens now (None before the first night)."""
    runs = db.screening_runs
    with db.get_engine().connect() as conn:
        found = conn.execute(sa.select(runs.c.model_version).where(
            runs.c.task == task, runs.c.status == "complete").order_by(
            runs.c.study_date.desc(), runs.c.started_at.desc()).limit(1)).scalar()
    return None if found is None else str(found)


def check_sensitivity(performance: RealisedPerformance, model_version: str,
                      policy: OutcomesPolicy) -> SensitivityCheck:
    """Whether `model_version`'s realised sensitivity is below the policy's minimum.

    The alert (`below`) needs at least `policy.min_exams_with_outcome` exams with an
    outcome, a sensitivity (a positive outcome among them), and its CI's lower bound below
    `policy.min_sensitivity`; the reason says which of these decided.
    """
    row = performance.total(model_version)
    exams = row.exams_with_outcome if row else 0
    sens = row.sensitivity if row else Estimate(None, reason=f"version {model_version} screened no exam")
    level = f"{performance.confidence:.0%} CI"

    def result(below: bool, reason: str) -> SensitivityCheck:
        return SensitivityCheck(model_version, policy.min_sensitivity, policy.min_exams_with_outcome, exams,
                                sens, below, reason)

    if exams < policy.min_exams_with_outcome:
        return result(False, f"{exams} exams with an outcome, fewer than the {policy.min_exams_with_outcome} "
                             "the policy needs before judging")
    if sens.value is None or sens.ci_low is None:
        return result(False, f"no realised sensitivity: {sens.reason}")
    shown = f"realised sensitivity {sens.value:.3f} ({level} {sens.ci_low:.3f}-{sens.ci_high:.3f}, " \
            f"{row.positives if row else 0} cancers)"
    if sens.ci_low < policy.min_sensitivity:
        return result(True, f"{shown}: lower bound below the minimum {policy.min_sensitivity:.2f}")
    return result(False, f"{shown}: lower bound at or above the minimum {policy.min_sensitivity:.2f}")
