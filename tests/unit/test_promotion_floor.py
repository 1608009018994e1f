"""The floor of the promotion gate (registry/floor.py) and the three-way comparison table
(metrics/comparison.py), on score arrays built so that the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.metrics import comparison
from pipelines.registry import floor, gate, report
from pipelines.registry.policy import BootstrapPolicy, FloorPolicy, PromotionPolicy, load_policy

FLOOR = FloorPolicy(min_auc_ci_low=0.75, base_auc_margin=0.02)
POLICY = PromotionPolicy(
    auc_margin=0.02, sensitivity_margin=0.05, subgroup_margin=0.05, subgroup_min_exams=20,
    bootstrap=BootstrapPolicy(resamples=300, seed=7, confidence=0.95), floor=FLOOR)


def exams(separation: float, n: int = 200, positives: int = 40,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores whose AUC grows with `separation` (0: chance)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(positives, int), np.zeros(n - positives, int)]
    return labels, np.clip(0.4 + separation * labels + rng.normal(0, 0.15, n), 0, 1)


def scored(scores: np.ndarray, version: str = "2") -> gate.ScoredModel:
    return gate.ScoredModel(version=version, scores=scores, operating_point=0.5)


def test_a_first_champion_below_the_floor_is_refused_and_one_above_passes() -> None:
    labels, weak = exams(0.05)
    checks, metrics = floor.checks(labels, scored(weak), POLICY, first=True, base=None)
    assert [(c.name, c.passed) for c in checks] == [(floor.AUC_FLOOR, False)]
    assert checks[0].value == metrics["challenger_auc_ci_low"] < 0.75
    assert "lower bound must reach the policy's floor 0.750" in checks[0].detail
    _, strong = exams(0.4)
    checks, metrics = floor.checks(labels, scored(strong), POLICY, first=True, base=None)
    assert [(c.name, c.passed) for c in checks] == [(floor.AUC_FLOOR, True)]
    assert metrics["challenger_auc_ci_low"] >= 0.75


def test_later_promotions_are_held_to_the_champion_not_to_the_auc_floor() -> None:
    labels, weak = exams(0.05)
    assert floor.checks(labels, scored(weak), POLICY, first=False, base=None) == ([], {})


def test_a_policy_without_a_floor_checks_nothing() -> None:
    labels, weak = exams(0.0)
    no_floor = POLICY.model_copy(update={"floor": None})
    assert floor.checks(labels, scored(weak), no_floor, first=True, base=scored(weak, "base"),
                        base_uri="models:/b/1") == ([], {})


def test_fine_tuning_that_made_the_model_worse_than_its_base_is_refused() -> None:
    labels, good = exams(0.4)
    _, worse = exams(0.1, seed=1)
    checks, _ = floor.checks(labels, scored(worse), POLICY, first=False, base=scored(good, "b"),
                             base_uri="models:/mammo-screening-base/3")
    (check,) = checks
    assert (check.name, check.passed, check.limit) == (floor.NOT_WORSE_THAN_BASE, False, -0.02)
    assert "models:/mammo-screening-base/3" in check.detail
    checks, metrics = floor.checks(labels, scored(good), POLICY, first=False,
                                   base=scored(worse, "b"), base_uri="models:/mammo-screening-base/3")
    assert [c.passed for c in checks] == [True] and metrics["base_auc_difference"] > 0


def test_a_base_that_cannot_be_scored_fails_its_check_naming_why() -> None:
    labels, good = exams(0.4)
    checks, _ = floor.checks(labels, scored(good), POLICY, first=True, base=None,
                             base_uri="models:/m-123", base_problem="MlflowException: not found")
    assert [(c.name, c.passed) for c in checks] == [(floor.AUC_FLOOR, True),
                                                   (floor.NOT_WORSE_THAN_BASE, False)]
    assert "MlflowException: not found" in checks[1].detail


def test_a_first_promotion_scored_for_the_floor_needs_both_classes() -> None:
    result = gate.first_promotion(np.zeros(12, int))
    assert [c.name for c in result.failed] == [gate.TEST_SET]
    result = gate.first_promotion(np.r_[np.ones(3, int), np.zeros(9, int)])
    assert result.passed and (result.exams, result.positives) == (12, 3)
    refused = gate.extended(result, [gate.GateCheck(floor.AUC_FLOOR, 0.6, 0.75, False, "x")], {"a": 1.0})
    assert not refused.passed and refused.metrics == {"a": 1.0}


def test_the_repository_policy_has_a_floor_for_every_model() -> None:
    for name in ("mammo-screening", "cxr-nodule"):
        policy = load_policy(name).promotion
        assert policy.floor is not None and 0.5 < policy.floor.min_auc_ci_low < 1


def test_the_comparison_scores_every_model_on_the_same_resampled_exams() -> None:
    labels, base = exams(0.2)
    _, tuned = exams(0.4, seed=1)
    rows = comparison.compare(labels, [
        comparison.Contender(comparison.BASE, "models:/b/1", base, None),
        comparison.Contender(comparison.CHALLENGER, "m version 2", tuned, 0.6),
        comparison.Contender(comparison.CHAMPION, "m version 1", base ** 2, 0.25)],
        resamples=200, seed=3)
    assert [r.role for r in rows] == [comparison.BASE, comparison.CHALLENGER, comparison.CHAMPION]
    assert rows[1].auc > rows[0].auc and rows[1].auc_ci_low <= rows[1].auc <= rows[1].auc_ci_high
    # a monotone transform of the base's scores: the same AUC and, resampled alike, the same CI
    assert (rows[2].auc, rows[2].auc_ci_low, rows[2].auc_ci_high) == (
        rows[0].auc, rows[0].auc_ci_low, rows[0].auc_ci_high)
    assert rows[0].sensitivity is None and rows[1].sensitivity == pytest.approx(
        float(np.mean(tuned[labels == 1] >= 0.6)), abs=1e-4)
    with pytest.raises(ValueError, match="3 scores for 200 exams"):
        comparison.compare(labels, [comparison.Contender("x", "y", base[:3], None)])


def test_the_promotion_report_shows_the_three_way_comparison() -> None:
    labels, base = exams(0.2)
    _, tuned = exams(0.4, seed=1)
    rows = comparison.compare(labels, [
        comparison.Contender(comparison.BASE, "models:/mammo-screening-base/3", base, None),
        comparison.Contender(comparison.CHALLENGER, "mammo-screening version 2", tuned, 0.6)],
        resamples=100)
    result = gate.first_promotion(labels)
    page = report.render_html({
        "model_name": "mammo-screening", "version": "2", "previous_version": None, "approver": "ada",
        "reason": "first", "outcome": "promoted", "at": "2026-12-06T10:00:00+00:00",
        "dataset_version": "abc.dir", "policy": POLICY.model_dump(mode="json"),
        "gate": result.as_json(), "comparison": comparison.as_json(rows)})
    table = page[page.index('<table id="comparison">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 3 and "base as is" in table and "challenger (fine-tuned)" in table
    assert f"{rows[1].auc:.3f}" in table and "models:/mammo-screening-base/3" in table
