"""Realised sensitivity, specificity and AUC with bootstrap confidence intervals.

One stratified percentile bootstrap per cell: each resample draws the exams with a positive
outcome and those with a negative outcome separately, with replacement and in their own
numbers, seeded, so the same inputs always give the same intervals. Sensitivity is read at
the stored flags (the operating point used that night), not at a threshold chosen now.
A metric whose class is missing is None with the reason.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate and its percentile CI; all None when `reason` says why not."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str | None = None


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney AUC: the share of (positive, negative) pairs ranked right, ties half."""
    ordered = np.sort(negative)
    below = np.searchsorted(ordered, positive, side="left")
    tied = np.searchsorted(ordered, positive, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(positive) * len(negative)))


def _interval(values: np.ndarray, point: float, confidence: float) -> Estimate:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return Estimate(point, float(low), float(high))


def realised_metrics(truth: ArrayLike, flagged: ArrayLike, scores: ArrayLike, *, resamples: int,
                     seed: int, confidence: float = 0.95) -> tuple[Estimate, Estimate, Estimate]:
    """(sensitivity, specificity, AUC) of exams with an outcome.

    Args:
        truth: 1 for a positive outcome, 0 for a negative one, one per exam.
        flagged: whether the exam was flagged that night.
        scores: the exam score that night.
        resamples: bootstrap resamples (at least 1).
        seed: the generator's seed.
        confidence: the CI's level.

    Raises:
        ValueError: inputs of different lengths, truth other than 0/1, or no resample.
    """
    y = np.asarray(truth, dtype=np.int64)
    f, s = np.asarray(flagged, dtype=bool), np.asarray(scores, dtype=np.float64)
    if not y.shape == f.shape == s.shape or y.ndim != 1:
        raise ValueError(f"truth {y.shape}, flagged {f.shape} and scores {s.shape} must be 1-D, one length")
    if set(np.unique(y).tolist()) - {0, 1}:
        raise ValueError("truth must be 0 or 1")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1: got {resamples}")
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rng = np.random.default_rng(seed)
    sens, spec, auc = np.empty(resamples), np.empty(resamples), np.empty(resamples)
    for b in range(resamples):
        p = rng.choice(pos, len(pos)) if len(pos) else pos
        n = rng.choice(neg, len(neg)) if len(neg) else neg
        sens[b] = f[p].mean() if len(p) else np.nan
        spec[b] = (~f[n]).mean() if len(n) else np.nan
        auc[b] = _auc(s[p], s[n]) if len(p) and len(n) else np.nan
    missing = {"positive": not len(pos), "negative": not len(neg)}
    no_pos = Estimate(None, reason=f"no exam with a positive outcome ({len(neg)} negative)")
    no_neg = Estimate(None, reason=f"no exam with a negative outcome ({len(pos)} positive)")
    return (no_pos if missing["positive"] else _interval(sens, float(f[pos].mean()), confidence),
            no_neg if missing["negative"] else _interval(spec, float((~f[neg]).mean()), confidence),
            no_pos if missing["positive"] else no_neg if missing["negative"]
            else _interval(auc, _auc(s[pos], s[neg]), confidence))
