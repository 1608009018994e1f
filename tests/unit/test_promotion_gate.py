"""The promotion gate on score arrays built so that the answer is known, its policy file,
its report and its audit rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import db
from pipelines.errors import PolicyInvalid
from pipelines.registry import audit, gate, report
from pipelines.registry.policy import BootstrapPolicy, PromotionPolicy, load_policy

POLICY = PromotionPolicy(
    auc_margin=0.02, sensitivity_margin=0.05, subgroup_margin=0.05, subgroup_min_exams=20,
    subgroups=("manufacturer", "density"),
    bootstrap=BootstrapPolicy(resamples=300, seed=7, confidence=0.95))


def noisy_exams(n: int = 200, positives: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and a good but imperfect model's scores (AUC about 0.93)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(positives, int), np.zeros(n - positives, int)]
    return labels, np.clip(0.3 + 0.3 * labels + rng.normal(0, 0.15, n), 0, 1)


def model(scores: np.ndarray, operating_point: float = 0.45, version: str = "2") -> gate.ScoredModel:
    return gate.ScoredModel(version=version, scores=scores, operating_point=operating_point)


def by_name(result: gate.GateResult) -> dict[str, gate.GateCheck]:
    return {c.name: c for c in result.checks}


def no_attributes(n: int) -> pd.DataFrame:
    return pd.DataFrame(index=range(n))


def test_identical_models_pass_with_a_zero_difference() -> None:
    labels, scores = noisy_exams()
    result = gate.compare(labels, model(scores), model(scores.copy(), version="1"),
                          no_attributes(len(labels)), POLICY)
    assert result.passed and result.failed == []
    m = result.metrics
    assert m["auc_ci_low"] <= 0.0 <= m["auc_ci_high"]
    assert m["auc_difference"] == 0.0 and m["sensitivity_difference"] == 0.0
    assert by_name(result)[gate.AUC].value == 0.0 and by_name(result)[gate.AUC].limit == -0.02


def test_the_bootstrap_is_paired() -> None:
    """A monotone transform of the champion's scores ranks every exam the same way: with
    the same resampled exams for both models the AUC difference is 0 in every resample."""
    labels, scores = noisy_exams()
    result = gate.compare(labels, model(scores ** 2, operating_point=0.45 ** 2), model(scores),
                          no_attributes(len(labels)), POLICY)
    assert result.metrics["auc_ci_low"] == result.metrics["auc_ci_high"] == 0.0
    assert result.passed


def test_a_clearly_worse_challenger_fails_the_auc_gate_by_name() -> None:
    labels, good = noisy_exams()
    worse = np.clip(good + np.random.default_rng(1).normal(0, 0.4, len(good)), 0, 1)
    result = gate.compare(labels, model(worse), model(good), no_attributes(len(labels)), POLICY)
    assert not result.passed
    auc_check = by_name(result)[gate.AUC]
    assert auc_check in result.failed
    assert auc_check.value is not None and auc_check.value <= -0.02
    assert result.metrics["challenger_auc"] < result.metrics["champion_auc"] - 0.1
    assert "lower bound must be above -0.020" in auc_check.detail


def test_a_sensitivity_drop_beyond_the_margin_fails_even_with_the_same_ranking() -> None:
    labels, scores = noisy_exams()
    # Same scores, so the same AUC; a higher operating point flags fewer positives.
    result = gate.compare(labels, model(scores, operating_point=0.65),
                          model(scores, operating_point=0.45), no_attributes(len(labels)), POLICY)
    checks = by_name(result)
    assert checks[gate.AUC].passed
    assert not checks[gate.SENSITIVITY].passed
    assert [c.name for c in result.failed] == [gate.SENSITIVITY]
    assert result.metrics["champion_sensitivity"] - result.metrics["challenger_sensitivity"] > 0.05


def test_a_sensitivity_drop_within_the_margin_passes() -> None:
    labels = np.r_[np.ones(40, int), np.zeros(160, int)]
    champion = np.r_[np.full(40, 0.9), np.full(160, 0.1)]
    challenger = champion.copy()
    challenger[0] = 0.3  # one positive of 40 (0.025) falls below the operating point
    result = gate.compare(labels, model(challenger, 0.5), model(champion, 0.5),
                          no_attributes(200), POLICY)
    assert by_name(result)[gate.SENSITIVITY].value == pytest.approx(-0.025)
    assert by_name(result)[gate.SENSITIVITY].passed


def subgroup_exams() -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Vendor A: 400 exams both models separate perfectly. Vendor B: 20 exams in a narrow
    score band (so they never change the order against A's exams) that the challenger ranks
    backwards. C: 5 exams. D: 25 negatives only. Five exams have no vendor recorded."""
    parts = []  # (vendor, labels, champion, challenger)
    a_labels = np.r_[np.ones(100, int), np.zeros(300, int)]
    a_scores = np.where(a_labels == 1, 0.9, 0.1) + np.linspace(0, 0.05, 400)
    parts.append(("A", a_labels, a_scores, a_scores))
    b_labels = np.r_[np.ones(5, int), np.zeros(15, int)]
    b_champion = np.where(b_labels == 1, 0.65, 0.55)  # above the operating point 0.5 either way
    parts.append(("B", b_labels, b_champion, 1.2 - b_champion))
    parts.append(("C", np.array([1, 0, 0, 0, 0]), np.r_[0.9, [0.1] * 4], np.r_[0.9, [0.1] * 4]))
    parts.append(("D", np.zeros(25, int), np.full(25, 0.1), np.full(25, 0.1)))
    parts.append((None, np.array([1, 0, 0, 0, 0]), np.r_[0.9, [0.1] * 4], np.r_[0.9, [0.1] * 4]))
    vendors = [v for v, lab, _, _ in parts for _ in lab]
    labels = np.concatenate([p[1] for p in parts])
    champion = np.concatenate([p[2] for p in parts])
    challenger = np.concatenate([p[3] for p in parts])
    return labels, challenger, champion, pd.DataFrame({"manufacturer": vendors})


def test_a_subgroup_drop_fails_while_the_overall_gate_passes() -> None:
    labels, challenger, champion, attributes = subgroup_exams()
    result = gate.compare(labels, model(challenger, 0.5), model(champion, 0.5), attributes, POLICY)
    checks = by_name(result)
    assert checks[gate.AUC].passed and checks[gate.SENSITIVITY].value == 0.0
    assert checks["subgroup_auc_difference[manufacturer=A]"].passed
    b = checks["subgroup_auc_difference[manufacturer=B]"]
    assert not b.passed and b.value == pytest.approx(-1.0)
    assert [c.name for c in result.failed] == ["subgroup_auc_difference[manufacturer=B]"]


def test_subgroups_that_cannot_be_compared_are_listed_with_the_reason() -> None:
    labels, challenger, champion, attributes = subgroup_exams()
    result = gate.compare(labels, model(challenger, 0.5), model(champion, 0.5), attributes, POLICY)
    skipped = {s.name: (s.exams, s.reason) for s in result.skipped}
    assert skipped == {
        "subgroup_auc_difference[manufacturer=<missing>]": (5, "no manufacturer recorded for these exams"),
        "subgroup_auc_difference[manufacturer=C]": (5, "5 exams, fewer than 20"),
        "subgroup_auc_difference[manufacturer=D]": (25, "0 positive exams of 25: AUC undefined"),
        "density": (len(labels), "the test split has no 'density' attribute"),
    }
    # every exam's vendor is either checked or listed as skipped: nothing silently dropped
    checked = {c.name for c in result.checks if c.name.startswith("subgroup")}
    assert len(checked) + 3 == attributes.manufacturer.nunique(dropna=False)


def test_the_gate_is_deterministic_by_seed() -> None:
    labels, good = noisy_exams()
    other = np.clip(good + np.random.default_rng(3).normal(0, 0.1, len(good)), 0, 1)
    run = lambda seed: gate.compare(  # noqa: E731
        labels, model(other), model(good), no_attributes(len(labels)),
        POLICY.model_copy(update={"bootstrap": BootstrapPolicy(resamples=300, seed=seed)}))
    first, again, reseeded = run(11), run(11), run(12)
    assert first.as_json() == again.as_json()
    assert first.metrics["auc_ci_low"] != reseeded.metrics["auc_ci_low"]
    assert first.metrics["auc_difference"] == reseeded.metrics["auc_difference"]


def test_the_first_promotion_has_nothing_to_compare_and_says_so() -> None:
    result = gate.first_promotion()
    assert result.passed
    assert [(c.name, c.passed) for c in result.checks] == [(gate.FIRST, True)]
    assert "no champion" in result.checks[0].detail


def test_a_test_split_with_one_class_fails_instead_of_passing_silently() -> None:
    labels = np.zeros(30, int)
    result = gate.compare(labels, model(np.full(30, 0.2)), model(np.full(30, 0.1)),
                          no_attributes(30), POLICY)
    assert [c.name for c in result.failed] == [gate.TEST_SET]
    assert "0 positive exams of 30" in result.failed[0].detail


# The policy file.

def test_the_repository_policy_loads() -> None:
    policy = load_policy("mammo-screening")
    assert policy.owners and "operating_point" in policy.required_tags
    assert {"manufacturer", "density"} <= set(policy.promotion.subgroups)
    assert policy.promotion.auc_margin > 0 and policy.promotion.bootstrap.resamples >= 1000


def test_a_missing_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyInvalid, match="cannot be read"):
        load_policy("mammo-screening", tmp_path / "absent.yaml")


def test_a_model_without_a_policy_entry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registered_models.yaml"
    path.write_text("models:\n  chest-xray: {}\n")
    with pytest.raises(PolicyInvalid, match="no entry models.mammo-screening"):
        load_policy("mammo-screening", path)


@pytest.mark.parametrize(("edit", "field"), [
    (lambda p: p.pop("auc_margin"), "promotion.auc_margin"),
    (lambda p: p.update(sensitivity_margin=-0.1), "promotion.sensitivity_margin"),
    (lambda p: p.update(force=True), "promotion.force"),
    (lambda p: p["bootstrap"].update(resamples=10), "promotion.bootstrap.resamples"),
])
def test_an_invalid_policy_names_the_field(tmp_path: Path, edit, field: str) -> None:
    import yaml

    from pipelines.registry.policy import POLICY_FILE

    document = yaml.safe_load(POLICY_FILE.read_text())
    edit(document["models"]["mammo-screening"]["promotion"])
    path = tmp_path / "registered_models.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(PolicyInvalid, match=f"models.mammo-screening.{field}"):
        load_policy("mammo-screening", path)


# The report and the audit rows.

def test_the_report_names_every_check_and_escapes_text() -> None:
    labels, challenger, champion, attributes = subgroup_exams()
    result = gate.compare(labels, model(challenger, 0.5), model(champion, 0.5), attributes, POLICY)
    document = {"model_name": "mammo-screening", "version": "2", "previous_version": "1",
                "approver": "Dr. <b>Ada</b>", "reason": "better & safer", "outcome": "refused",
                "at": "2026-04-01T10:00:00+00:00", "dataset_version": "abc.dir",
                "policy": POLICY.model_dump(mode="json"), "gate": result.as_json()}
    page = report.render_html(document)
    assert page.startswith("<!doctype html>") and "<script" not in page and "http" not in page
    for check in result.checks:
        assert check.name in page
    assert "Dr. &lt;b&gt;Ada&lt;/b&gt;" in page and "better &amp; safer" in page
    assert page.count('class="fail"') == 1 and "manufacturer=C" in page
    line = report.summary(result.as_json())
    assert "subgroup_auc_difference[manufacturer=B]=-1.0000 (limit -0.0500) FAIL" in line
    assert line.endswith("4 subgroups skipped")


def test_rollback_finds_the_promotion_that_made_a_version_champion() -> None:
    row = {"model_name": "m", "alias": "champion", "approver": "Dr. A", "reason": "r", "gates": {}}
    with db.get_engine().begin() as conn:
        audit.record(conn, **row, action=audit.PROMOTE, version="1", previous_version=None,
                     outcome=audit.PROMOTED)
        audit.record(conn, **row, action=audit.PROMOTE, version="2", previous_version="1",
                     outcome=audit.PROMOTED)
        audit.record(conn, **row, action=audit.PROMOTE, version="3", previous_version="2",
                     outcome=audit.REFUSED)
        assert audit.last_promotion(conn, "m", "2")["previous_version"] == "1"  # type: ignore[index]
        assert audit.last_promotion(conn, "m", "1")["previous_version"] is None  # type: ignore[index]
        assert audit.last_promotion(conn, "m", "3") is None  # refused: never champion
        assert audit.last_promotion(conn, "other", "2") is None
