"""The floor of the promotion gate: what a champion must reach whatever it replaces.

- auc_floor (first promotion): with no champion to compare against, the lower bound of
  the challenger's test AUC CI (stratified bootstrap, the policy's resamples, seed and
  confidence) must reach `floor.min_auc_ci_low`. Later challengers are held to the
  champion, which passed it.
- not_worse_than_base (every promotion of a fine-tuned challenger): the lower bound of
  the paired-bootstrap CI of AUC(challenger) - AUC(base as is) must be above
  -`floor.base_auc_margin`: fine-tuning on the hospital's data must not have made the
  model worse than what it started from. A base that cannot be scored fails the check,
  naming why.
Pure numpy: the caller scores the models.
"""

from __future__ import annotations

import numpy as np

from pipelines.domain import GateCheck
from pipelines.metrics.binary import auc_with_ci
from pipelines.registry import gate
from pipelines.registry.policy import FloorPolicy, PromotionPolicy

AUC_FLOOR, NOT_WORSE_THAN_BASE = "auc_floor", "not_worse_than_base"


def checks(labels: np.ndarray, challenger: gate.ScoredModel, policy: PromotionPolicy, *,
           first: bool, base: gate.ScoredModel | None, base_uri: str = "",
           base_problem: str = "") -> tuple[list[GateCheck], dict[str, float]]:
    """The floor's checks (none when the policy has no floor) and the metrics behind them.

    Args:
        labels: 0/1 per exam, of both classes.
        first: no champion yet (the AUC floor applies).
        base, base_uri, base_problem: the base as is, scored on the same exams; its URI
            (empty when trained from scratch: no base check); why it was not scored.
    """
    floor = policy.floor
    if floor is None:
        return [], {}
    found: list[GateCheck] = []
    metrics: dict[str, float] = {}
    level = round(100 * policy.bootstrap.confidence)
    if first:
        estimate = auc_with_ci(labels, challenger.scores, resamples=policy.bootstrap.resamples,
                               seed=policy.bootstrap.seed, level=policy.bootstrap.confidence)
        metrics.update(challenger_auc=estimate.auc, challenger_auc_ci_low=estimate.ci_low,
                       challenger_auc_ci_high=estimate.ci_high)
        found.append(GateCheck(
            name=AUC_FLOOR, value=round(estimate.ci_low, 4), limit=floor.min_auc_ci_low,
            passed=bool(estimate.ci_low >= floor.min_auc_ci_low),
            detail=(f"first champion: test AUC {estimate.auc:.3f}, {level}% CI "
                    f"[{estimate.ci_low:.3f}, {estimate.ci_high:.3f}]; the lower bound must reach "
                    f"the policy's floor {floor.min_auc_ci_low:.3f}")))
    if base_uri:
        check, base_metrics = _base_check(labels, challenger, base, base_uri, base_problem, policy, floor)
        found.append(check)
        metrics.update(base_metrics)
    return found, {k: round(v, 4) for k, v in metrics.items()}


def _base_check(labels: np.ndarray, challenger: gate.ScoredModel, base: gate.ScoredModel | None,
                base_uri: str, problem: str, policy: PromotionPolicy,
                floor: FloorPolicy) -> tuple[GateCheck, dict[str, float]]:
    limit = -floor.base_auc_margin
    if base is None:
        return GateCheck(name=NOT_WORSE_THAN_BASE, value=None, limit=limit, passed=False,
                         detail=f"the base {base_uri} could not be scored on the test split "
                                f"({problem}): fine-tuning cannot be shown not to have made it worse"), {}
    m = gate.paired_bootstrap(labels, challenger, base, policy)
    level = round(100 * policy.bootstrap.confidence)
    low = m["auc_ci_low"]
    return GateCheck(
        name=NOT_WORSE_THAN_BASE, value=round(low, 4), limit=limit, passed=bool(low > limit),
        detail=(f"AUC {m['challenger_auc']:.3f} vs the base as is ({base_uri}) "
                f"{m['champion_auc']:.3f}: difference {m['auc_difference']:+.3f}, {level}% CI "
                f"[{low:+.3f}, {m['auc_ci_high']:+.3f}]; the lower bound must be above {limit:+.3f}")), {
        "base_auc": m["champion_auc"], "base_auc_difference": m["auc_difference"],
        "base_auc_difference_ci_low": low, "base_auc_difference_ci_high": m["auc_ci_high"]}
