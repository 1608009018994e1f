"""The promotion gate: challenger against champion on the same exams, by paired bootstrap.

Both models' exam scores are resampled with the same exam indices (stratified by label,
so every resample has both classes), which cancels the case-mix noise the two models
share. The checks, with margins from the policy:
- auc_difference: the lower bound of the CI of AUC(challenger) - AUC(champion) must be
  above -auc_margin.
- sensitivity_difference: each model's sensitivity at its own operating point; the
  challenger's may not drop by more than sensitivity_margin.
- subgroup_auc_difference[attribute=value]: per subgroup, the AUC may not drop by more
  than subgroup_margin. Subgroups are gated on their observed difference (at a hospital's
  volumes a subgroup's CI is too wide to gate on); those too small or with one class
  are listed as skipped with the reason.
The policy's floor (a first champion's AUC, a fine-tuned challenger against its base) is
in registry/floor.py. Pure numpy: the caller scores the models. Deterministic for a given seed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from pipelines.domain import GateCheck, SkippedSubgroup
from pipelines.registry.policy import PromotionPolicy

AUC, SENSITIVITY, FIRST, TEST_SET = ("auc_difference", "sensitivity_difference", "no_champion",
                                     "test_set")


@dataclasses.dataclass(frozen=True)
class ScoredModel:
    """One model's exam scores (aligned with the gate's labels) and its operating point."""

    version: str
    scores: np.ndarray
    operating_point: float


@dataclasses.dataclass(frozen=True)
class GateResult:
    """The checks; `metrics` holds the point estimates and CI bounds behind them."""

    checks: list[GateCheck]
    skipped: list[SkippedSubgroup]
    exams: int
    positives: int
    metrics: dict[str, float]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "exams": self.exams, "positives": self.positives,
                "metrics": self.metrics,
                "checks": [dataclasses.asdict(c) for c in self.checks],
                "skipped_subgroups": [dataclasses.asdict(s) for s in self.skipped]}


def first_promotion(labels: np.ndarray | None = None) -> GateResult:
    """The gate when no version is champion yet: nothing to compare against. With `labels`
    (the test split was scored, for the policy's floor) a split of one class fails."""
    if labels is not None and (failed := _one_class(np.asarray(labels, dtype=int))) is not None:
        return failed
    detail = ("no champion yet: nothing to compare against (first promotion)" if labels is None
              else "no champion yet: held to the policy's floor (first promotion)")
    check = GateCheck(name=FIRST, value=None, limit=None, passed=True, detail=detail)
    exams = 0 if labels is None else len(labels)
    positives = 0 if labels is None else int(np.sum(labels))
    return GateResult(checks=[check], skipped=[], exams=exams, positives=positives, metrics={})


def extended(result: GateResult, checks: list[GateCheck], metrics: dict[str, float]) -> GateResult:
    """`result` with more checks (and their metrics) appended."""
    return dataclasses.replace(result, checks=[*result.checks, *checks],
                               metrics={**result.metrics, **metrics})


def _one_class(labels: np.ndarray) -> GateResult | None:
    positives = int(labels.sum())
    if positives not in (0, len(labels)):
        return None
    check = GateCheck(name=TEST_SET, value=float(positives), limit=None, passed=False,
                      detail=f"the test split has {positives} positive exams of {len(labels)}: "
                             "AUC and sensitivity cannot be compared")
    return GateResult([check], [], len(labels), positives, {})


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def sensitivity(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Share of positive exams flagged (score >= threshold)."""
    return float(np.mean(scores[labels == 1] >= threshold))


def compare(labels: np.ndarray, challenger: ScoredModel, champion: ScoredModel,
            attributes: pd.DataFrame, policy: PromotionPolicy) -> GateResult:
    """Run every check of the gate.

    Args:
        labels: 0/1 per exam.
        challenger, champion: the two models' scores on the same exams, in label order.
        attributes: one row per exam (same order) with the policy's subgroup columns;
            a missing column is reported as a skipped subgroup.
        policy: margins, subgroups and bootstrap settings.
    """
    labels = np.asarray(labels, dtype=int)
    if (failed := _one_class(labels)) is not None:
        return failed
    positives = int(labels.sum())
    metrics = paired_bootstrap(labels, challenger, champion, policy)
    checks = [_auc_check(metrics, policy), _sensitivity_check(metrics, challenger, champion, policy)]
    subgroup_checks, skipped = _subgroups(labels, challenger, champion, attributes, policy)
    return GateResult(checks + subgroup_checks, skipped, len(labels), positives,
                      {k: round(v, 4) for k, v in metrics.items()})


def paired_bootstrap(labels: np.ndarray, challenger: ScoredModel, champion: ScoredModel,
                     policy: PromotionPolicy) -> dict[str, float]:
    """Point estimates and the paired-bootstrap CI bounds of the two differences (AUC and
    sensitivity at each model's operating point), `champion` being the model compared with."""
    a, b = challenger.scores, champion.scores
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    rng = np.random.default_rng(policy.bootstrap.seed)
    n = policy.bootstrap.resamples
    pos_idx = pos[rng.integers(0, len(pos), size=(n, len(pos)))]
    neg_idx = neg[rng.integers(0, len(neg), size=(n, len(neg)))]
    boot_labels = np.r_[np.ones(len(pos), int), np.zeros(len(neg), int)]
    auc_diff = np.array([
        auc(boot_labels, a[np.r_[p, q]]) - auc(boot_labels, b[np.r_[p, q]])
        for p, q in zip(pos_idx, neg_idx, strict=True)])
    sens_diff = ((a[pos_idx] >= challenger.operating_point).mean(axis=1)
                 - (b[pos_idx] >= champion.operating_point).mean(axis=1))
    tail = (1.0 - policy.bootstrap.confidence) / 2
    auc_lo, auc_hi = np.quantile(auc_diff, [tail, 1 - tail])
    sens_lo, sens_hi = np.quantile(sens_diff, [tail, 1 - tail])
    out = {"challenger_auc": auc(labels, a), "champion_auc": auc(labels, b),
           "challenger_sensitivity": sensitivity(labels, a, challenger.operating_point),
           "champion_sensitivity": sensitivity(labels, b, champion.operating_point),
           "auc_ci_low": float(auc_lo), "auc_ci_high": float(auc_hi),
           "sensitivity_ci_low": float(sens_lo), "sensitivity_ci_high": float(sens_hi)}
    out["auc_difference"] = out["challenger_auc"] - out["champion_auc"]
    out["sensitivity_difference"] = out["challenger_sensitivity"] - out["champion_sensitivity"]
    return out


def _auc_check(m: dict[str, float], policy: PromotionPolicy) -> GateCheck:
    limit, low = -policy.auc_margin, m["auc_ci_low"]
    level = round(100 * policy.bootstrap.confidence)
    return GateCheck(
        name=AUC, value=round(low, 4), limit=limit, passed=bool(low > limit),
        detail=(f"AUC {m['challenger_auc']:.3f} vs champion {m['champion_auc']:.3f}: difference "
                f"{m['auc_difference']:+.3f}, {level}% CI [{low:+.3f}, {m['auc_ci_high']:+.3f}]; "
                f"the lower bound must be above {limit:+.3f}"))


def _sensitivity_check(m: dict[str, float], challenger: ScoredModel, champion: ScoredModel,
                       policy: PromotionPolicy) -> GateCheck:
    limit, diff = -policy.sensitivity_margin, m["sensitivity_difference"]
    return GateCheck(
        name=SENSITIVITY, value=round(diff, 4), limit=limit, passed=bool(diff >= limit),
        detail=(f"sensitivity {m['challenger_sensitivity']:.3f} at operating point "
                f"{challenger.operating_point:.4f} vs champion {m['champion_sensitivity']:.3f} at "
                f"{champion.operating_point:.4f}: difference {diff:+.3f} (CI "
                f"[{m['sensitivity_ci_low']:+.3f}, {m['sensitivity_ci_high']:+.3f}]); "
                f"may not drop below {limit:+.3f}"))


def _subgroups(labels: np.ndarray, challenger: ScoredModel, champion: ScoredModel,
               attributes: pd.DataFrame, policy: PromotionPolicy,
               ) -> tuple[list[GateCheck], list[SkippedSubgroup]]:
    checks: list[GateCheck] = []
    skipped: list[SkippedSubgroup] = []
    for attribute in policy.subgroups:
        if attribute not in attributes:
            skipped.append(SkippedSubgroup(attribute, len(labels),
                                           f"the test split has no {attribute!r} attribute"))
            continue
        recorded = attributes[attribute].notna().to_numpy()
        values = attributes[attribute].astype(str).to_numpy()
        if missing := int((~recorded).sum()):
            skipped.append(SkippedSubgroup(f"subgroup_auc_difference[{attribute}=<missing>]",
                                           missing, f"no {attribute} recorded for these exams"))
        for value in sorted(set(values[recorded])):
            member = recorded & (values == value)
            name = f"subgroup_auc_difference[{attribute}={value}]"
            outcome = _subgroup_check(name, labels[member], challenger.scores[member],
                                      champion.scores[member], policy)
            if isinstance(outcome, GateCheck):
                checks.append(outcome)
            else:
                skipped.append(outcome)
    return checks, skipped


def _subgroup_check(name: str, labels: np.ndarray, a: np.ndarray, b: np.ndarray,
                    policy: PromotionPolicy) -> GateCheck | SkippedSubgroup:
    n, positives = len(labels), int(labels.sum())
    if n < policy.subgroup_min_exams:
        return SkippedSubgroup(name, n, f"{n} exams, fewer than {policy.subgroup_min_exams}")
    if positives in (0, n):
        return SkippedSubgroup(name, n, f"{positives} positive exams of {n}: AUC undefined")
    ours, theirs = auc(labels, a), auc(labels, b)
    diff, limit = ours - theirs, -policy.subgroup_margin
    return GateCheck(name=name, value=round(diff, 4), limit=limit, passed=bool(diff >= limit),
                     detail=(f"AUC {ours:.3f} vs champion {theirs:.3f} on {n} exams "
                             f"({positives} positive): difference {diff:+.3f}; may not drop below "
                             f"{limit:+.3f}"))
