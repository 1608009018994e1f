"""Exam-level screening metrics: pure, seeded functions of labels and scores.

Every function takes `labels` (0 or 1) and `scores` (the model's probability) as 1-D
arrays with one entry per exam. An exam is flagged when its score is at or above the
threshold. The same inputs and seed always give the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_RESAMPLES = 2000
CI_LEVEL = 0.95
RELIABILITY_BINS = 10
# A subgroup AUC from fewer exams has an interval too wide to act on.
MIN_SUBGROUP_EXAMS = 20


@dataclasses.dataclass(frozen=True)
class AucEstimate:
    """ROC AUC with its stratified-bootstrap percentile confidence interval."""

    auc: float
    ci_low: float
    ci_high: float
    level: float
    resamples: int


@dataclasses.dataclass(frozen=True)
class ReliabilityBin:
    """One non-empty bin [low, high) of predicted probability (the last bin includes 1.0)."""

    low: float
    high: float
    mean_predicted: float
    observed_rate: float
    count: int


@dataclasses.dataclass(frozen=True)
class SubgroupAuc:
    """AUC of one subgroup; `auc` and its interval are None when `reason` says why not."""

    group: str
    exams: int
    positives: int
    auc: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str | None = None


def _binary(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """labels as int 0/1 and scores as float64, checked to be 1-D and of one length."""
    y, s = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-D and of one length")
    bad = sorted(set(y.tolist()) - {0.0, 1.0})
    if bad:
        raise ValueError(f"labels must be 0 or 1: got {bad[:5]}")
    return y.astype(np.int64), s


def _require_both_classes(y: np.ndarray) -> None:
    positives = int(y.sum())
    if positives in (0, len(y)):
        raise ValueError(f"needs positive and negative exams: got {positives} positive of {len(y)}")


def auc_with_ci(labels: ArrayLike, scores: ArrayLike, *, resamples: int = DEFAULT_RESAMPLES,
                level: float = CI_LEVEL, seed: int = 0) -> AucEstimate:
    """ROC AUC and its percentile bootstrap confidence interval.

    The bootstrap is stratified: each resample draws the positives and the negatives
    separately, with replacement and in their own numbers, so every resample has both
    classes and the prevalence of the data.

    Raises:
        ValueError: one class only, fewer than one resample, or malformed inputs.
    """
    from sklearn.metrics import roc_auc_score

    y, s = _binary(labels, scores)
    _require_both_classes(y)
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1: got {resamples}")
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    resampled_labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    rng = np.random.default_rng(seed)
    aucs = np.empty(resamples)
    for b in range(resamples):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        aucs[b] = roc_auc_score(resampled_labels, s[idx])
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(aucs, [tail, 100.0 - tail])
    return AucEstimate(auc=float(roc_auc_score(y, s)), ci_low=float(low), ci_high=float(high),
                       level=level, resamples=resamples)


def threshold_for_sensitivity(labels: ArrayLike, scores: ArrayLike, target: float) -> float:
    """The highest threshold whose sensitivity reaches `target`: the operating point
    chosen on validation.

    Raises:
        ValueError: `target` outside (0, 1], one class only, or malformed inputs.
    """
    from sklearn.metrics import roc_curve

    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1]: got {target}")
    y, s = _binary(labels, scores)
    _require_both_classes(y)
    _, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    return float(thresholds[np.argmax(tpr >= target)])


def sensitivity_specificity(labels: ArrayLike, scores: ArrayLike, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) when exams scoring `threshold` or more are flagged.

    Raises:
        ValueError: one class only, or malformed inputs.
    """
    y, s = _binary(labels, scores)
    _require_both_classes(y)
    flagged = s >= threshold
    return float(flagged[y == 1].mean()), float((~flagged[y == 0]).mean())


def specificity_at_sensitivity(labels: ArrayLike, scores: ArrayLike, target: float = 0.9) -> float:
    """The best specificity of any threshold whose sensitivity reaches `target` (ROC curve).

    Raises:
        ValueError: one class only, or malformed inputs.
    """
    from sklearn.metrics import roc_curve

    y, s = _binary(labels, scores)
    _require_both_classes(y)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return float(1.0 - fpr[tpr >= target].min())


def reliability_bins(labels: ArrayLike, probabilities: ArrayLike,
                     bins: int = RELIABILITY_BINS) -> list[ReliabilityBin]:
    """The reliability curve: equal-width bins of [0, 1] that hold at least one exam.

    Raises:
        ValueError: a probability outside [0, 1], or malformed inputs.
    """
    y, p = _binary(labels, probabilities)
    if ((p < 0.0) | (p > 1.0)).any():
        raise ValueError(f"probabilities must be in [0, 1]: got {p.min():.4g} to {p.max():.4g}")
    # inner edges as k / bins exactly, so that 0.3 falls in [0.3, 0.4) and not below it
    ids = np.digitize(p, np.arange(1, bins) / bins)
    out = []
    for b in np.unique(ids):
        member = ids == b
        out.append(ReliabilityBin(low=float(b / bins), high=float((b + 1) / bins),
                                  mean_predicted=float(p[member].mean()),
                                  observed_rate=float(y[member].mean()), count=int(member.sum())))
    return out


def expected_calibration_error(curve: Sequence[ReliabilityBin]) -> float:
    """ECE: the exam-weighted mean gap between predicted probability and observed rate."""
    total = sum(b.count for b in curve)
    if total == 0:
        raise ValueError("expected calibration error of no exams")
    return float(sum(b.count * abs(b.observed_rate - b.mean_predicted) for b in curve) / total)


def subgroup_aucs(labels: ArrayLike, scores: ArrayLike, groups: Sequence[str], *,
                  min_exams: int = MIN_SUBGROUP_EXAMS, resamples: int = DEFAULT_RESAMPLES,
                  seed: int = 0) -> list[SubgroupAuc]:
    """AUC with its confidence interval per group, sorted by group name.

    A group with one class, or fewer than `min_exams` exams, gets auc None and the reason.

    Raises:
        ValueError: `groups` not of the length of `labels`, or malformed inputs.
    """
    y, s = _binary(labels, scores)
    names = np.asarray(groups, dtype=object)
    if names.shape != y.shape:
        raise ValueError(f"groups {names.shape} must have one entry per exam {y.shape}")
    return [_subgroup(str(name), y[names == name], s[names == name], min_exams, resamples, seed)
            for name in sorted(set(names.tolist()))]


def _subgroup(name: str, y: np.ndarray, s: np.ndarray, min_exams: int, resamples: int,
              seed: int) -> SubgroupAuc:
    n, positives = len(y), int(y.sum())
    if positives in (0, n):
        reason = f"only {'negative' if positives == 0 else 'positive'} exams ({n})"
        return SubgroupAuc(group=name, exams=n, positives=positives, reason=reason)
    if n < min_exams:
        reason = f"{n} exams, fewer than the {min_exams} needed"
        return SubgroupAuc(group=name, exams=n, positives=positives, reason=reason)
    est = auc_with_ci(y, s, resamples=resamples, seed=seed)
    return SubgroupAuc(group=name, exams=n, positives=positives, auc=est.auc, ci_low=est.ci_low,
                       ci_high=est.ci_high)
