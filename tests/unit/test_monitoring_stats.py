"""Drift statistics on samples whose answer is known by construction (seeded), and the
night's assessment on synthetic exam frames: calm nights stay calm, each kind of change
shows in its own family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.monitoring import drift, stats
from pipelines.monitoring.records import DriftTest, NightStatus

DEVICES = ["GE MEDICAL SYSTEMS", "HOLOGIC"]
EMBEDDING = 70


# --- stats: calibration and power ------------------------------------------------------

def test_ks_on_same_distribution_is_calibrated_and_sees_a_half_sd_shift() -> None:
    rng = np.random.default_rng(0)
    calm = [stats.numeric("image", "img_mean", rng.normal(size=100), rng.normal(size=100))
            for _ in range(100)]
    assert sum(t is not None and t.p_value is not None and t.p_value > 0.01 for t in calm) >= 95
    # KS has about 65% power against a 0.5 sd shift at n = 100 per side and alpha 0.01
    shifted = [stats.numeric("image", "img_mean", rng.normal(size=100), rng.normal(0.5, 1.0, size=100))
               for _ in range(100)]
    assert sum(t is not None and t.p_value is not None and t.p_value < 0.01 for t in shifted) >= 50
    first = shifted[0]
    assert first is not None and first.test == "ks" and 0 < first.statistic <= 1
    assert first.detail.startswith("median ")


def test_ks_drops_nan_and_needs_two_values_per_side() -> None:
    test = stats.numeric("metadata", "kvp", np.array([28.0, np.nan, 29.0, 30.0]), np.array([28.0, 31.0]))
    assert test is not None and (test.reference_n, test.current_n) == (3, 2)
    assert stats.numeric("metadata", "kvp", np.array([28.0, 29.0]), np.array([28.0, np.nan])) is None


def test_chi2_on_same_shares_is_calibrated() -> None:
    rng = np.random.default_rng(1)
    names, shares = ["GE", "HOLOGIC", "SIEMENS"], [0.5, 0.3, 0.2]
    calm = [stats.categorical("metadata", "manufacturer", list(rng.choice(names, 100, p=shares)),
                              list(rng.choice(names, 100, p=shares))) for _ in range(100)]
    assert sum(t is not None and t.p_value is not None and t.p_value > 0.01 for t in calm) >= 95


def test_chi2_sees_a_new_manufacturer_and_names_the_change() -> None:
    test = stats.categorical("metadata", "manufacturer", ["GE MEDICAL SYSTEMS"] * 100, ["SIEMENS"] * 100)
    assert test is not None and test.p_value is not None and test.p_value < 1e-6
    assert test.detail == "'GE MEDICAL SYSTEMS' 100% -> 0%, 'SIEMENS' new at 100%"


def test_chi2_of_one_shared_category_is_one_and_of_an_empty_night_is_none() -> None:
    same = stats.categorical("metadata", "model_name", ["Senograph"] * 50, ["Senograph"] * 20)
    assert same is not None and (same.statistic, same.p_value) == (0.0, 1.0)
    assert stats.categorical("metadata", "model_name", ["Senograph"] * 50, []) is None


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(2)
    same = stats.psi("prediction", "score", rng.normal(size=2000), rng.normal(size=2000))
    shifted = stats.psi("prediction", "score", rng.normal(size=2000), rng.normal(1.0, 1.0, size=2000))
    assert same is not None and same.statistic < 0.05 and same.p_value is None
    assert shifted is not None and shifted.statistic > 0.25


def test_psi_stays_finite_when_the_night_leaves_the_reference_range() -> None:
    test = stats.psi("prediction", "score", np.linspace(0, 1, 500), np.full(100, 5.0))
    assert test is not None and np.isfinite(test.statistic) and test.statistic > 1
    constant = stats.psi("metadata", "pixel_spacing_mm", np.full(100, 0.1), np.full(100, 0.07))
    assert constant is not None and constant.statistic > 1


def test_binomial_flags_a_doubled_flag_rate_not_an_expected_one() -> None:
    doubled = stats.rate("prediction", "flag_rate", 0.1, 40, 200)
    usual = stats.rate("prediction", "flag_rate", 0.1, 21, 200)
    assert doubled is not None and doubled.p_value is not None and doubled.p_value < 1e-4
    assert usual is not None and usual.p_value is not None and usual.p_value > 0.5
    assert doubled.statistic == 0.2 and stats.rate("prediction", "flag_rate", 0.1, 0, 0) is None
    with pytest.raises(ValueError, match="1.5"):
        stats.rate("prediction", "flag_rate", 1.5, 1, 10)


def test_fisher_one_sided_detects_a_risen_artifact_rate_only() -> None:
    risen = stats.rate_increase("qc", "HOLOGIC|motion_blur", 1, 1000, 10, 100)
    same = stats.rate_increase("qc", "HOLOGIC|motion_blur", 10, 1000, 1, 100)
    fallen = stats.rate_increase("qc", "HOLOGIC|motion_blur", 100, 1000, 0, 100)
    assert risen is not None and risen.p_value is not None and risen.p_value < 1e-6
    assert same is not None and same.p_value is not None and same.p_value > 0.1
    assert fallen is not None and fallen.p_value == 1.0  # one-sided: fewer artifacts is not drift
    assert stats.rate_increase("qc", "HOLOGIC|motion_blur", 0, 0, 1, 100) is None


def test_benjamini_hochberg_q_is_at_least_p_and_monotone_in_p() -> None:
    rng = np.random.default_rng(3)
    p_values = np.r_[rng.uniform(size=40), [1e-5, 2e-4, 3e-3]]
    tests = [DriftTest("embedding", f"emb_{i}", "ks", 0.1, float(p), 0.0, 100, 100)
             for i, p in enumerate(p_values)]
    psi = DriftTest("prediction", "score", "psi", 0.4, None, 0.0, 100, 100)
    corrected = stats.correct([*tests, psi], alpha=0.01, psi_max=0.25)
    with_p = [t for t in corrected if t.p_value is not None]
    assert all(t.q_value is not None and t.p_value is not None and t.q_value >= t.p_value for t in with_p)
    ordered = sorted(with_p, key=lambda t: t.p_value or 0.0)
    assert all((a.q_value or 0.0) <= (b.q_value or 0.0) for a, b in zip(ordered, ordered[1:], strict=False))
    assert [t.feature for t in with_p if t.drifted] == ["emb_40", "emb_41"]  # 3e-3 * 43 / 3 > 0.01
    assert corrected[-1].q_value is None and corrected[-1].drifted and corrected[-1].threshold == 0.25
    assert {t.threshold for t in with_p} == {0.01}


# --- drift.assess on synthetic nights ----------------------------------------------------

def exams(rng: np.random.Generator, n: int = 100, *, manufacturers: list[str] | None = None,
          embedding_shift: float = 0.0, score_shift: float = 0.0) -> pd.DataFrame:
    makers = rng.choice(manufacturers or DEVICES, n)
    columns: dict[str, object] = {
        "manufacturer": makers, "model_name": [f"{m[:4]} model" for m in makers],
        "software_version": rng.choice(["1.0", "1.1"], n, p=[0.7, 0.3]),
        "device": [f"{m} {m[:4]} model" for m in makers],
        "kvp": rng.integers(26, 33, n).astype(float), "exposure_mas": rng.gamma(9.0, 10.0, n),
        "body_part_thickness_mm": rng.normal(55, 12, n), "compression_force_n": rng.normal(110, 25, n),
        "pixel_spacing_mm": np.full(n, 0.1),
        **{c: rng.normal(0.4, 0.1, n) for c in ("img_mean", "img_std", "img_p05", "img_p50", "img_p95",
                                                 "img_breast_share", "img_noise", "img_gradient")},
        **{f"emb_{i}": rng.normal(embedding_shift if i < 10 else 0.0, 1.0, n) for i in range(EMBEDDING)},
        "score": np.clip(rng.beta(2, 8, n) + score_shift, 0, 1),
    }
    return pd.DataFrame(columns)


def qc(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["device", "code", "views", "flagged"])


QC_BASELINE = qc([("HOLOGIC HOLO model", "motion_blur", 4000, 40), ("GE MEDICAL SYSTEMS GE M model",
                                                                     "motion_blur", 4000, 40)])
QC_CALM = qc([("HOLOGIC HOLO model", "motion_blur", 200, 2), ("GE MEDICAL SYSTEMS GE M model",
                                                               "motion_blur", 200, 3)])
OPERATING_POINT = 0.4
FLAG_RATE = 0.0705  # P(Beta(2, 8) >= 0.4)


def run(reference: pd.DataFrame, night: pd.DataFrame, qc_night: pd.DataFrame = QC_CALM) -> list[DriftTest]:
    return drift.assess(reference, night, operating_point=OPERATING_POINT, expected_flag_rate=FLAG_RATE,
                        qc_night=qc_night, qc_baseline=QC_BASELINE, alpha=0.01, psi_max=0.25)


def drifted(tests: list[DriftTest]) -> set[str]:
    return {t.family for t in tests if t.drifted and t.p_value is not None}


def test_calm_nights_raise_no_drifted_test() -> None:
    calm = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        tests = run(exams(rng), exams(rng))
        calm += not drifted(tests)
    assert calm >= 18
    families = {t.family for t in tests}
    assert families == {"metadata", "image", "embedding", "prediction", "qc"}
    assert sum(t.family == "embedding" for t in tests) == EMBEDDING


def test_a_new_manufacturer_drifts_metadata_only() -> None:
    rng = np.random.default_rng(4)
    tests = run(exams(rng), exams(rng, manufacturers=["SIEMENS"]))
    assert drifted(tests) == {"metadata"}
    manufacturer = next(t for t in tests if t.feature == "manufacturer")
    assert manufacturer.drifted and "'SIEMENS' new at 100%" in manufacturer.detail


def test_shifted_embedding_columns_drift_the_embedding() -> None:
    rng = np.random.default_rng(5)
    tests = run(exams(rng), exams(rng, embedding_shift=1.0))
    assert drifted(tests) == {"embedding"}
    decided = {t.feature for t in tests if t.drifted and t.p_value is not None}
    assert decided <= {f"emb_{i}" for i in range(10)}


def test_shifted_scores_drift_the_prediction() -> None:
    rng = np.random.default_rng(6)
    tests = run(exams(rng), exams(rng, score_shift=0.15))
    assert drifted(tests) == {"prediction"}
    rate = next(t for t in tests if t.feature == "flag_rate")
    assert rate.drifted and rate.statistic > 2 * FLAG_RATE and rate.reference_n == 100


def test_a_device_artifact_rate_rising_drifts_qc_and_a_new_device_uses_every_device() -> None:
    rng = np.random.default_rng(7)
    night = qc([("HOLOGIC HOLO model", "motion_blur", 200, 30), ("SIEMENS Mammomat", "motion_blur", 200, 2)])
    tests = run(exams(rng), exams(rng), qc_night=night)
    assert drifted(tests) == {"qc"}
    by_feature = {t.feature: t for t in tests if t.family == "qc"}
    assert by_feature["HOLOGIC HOLO model|motion_blur"].drifted
    new = by_feature["SIEMENS Mammomat|motion_blur"]
    assert not new.drifted and new.reference_n == 8000 and "all devices" in new.detail


def test_missing_or_empty_columns_are_skipped_and_a_bad_qc_frame_is_named() -> None:
    rng = np.random.default_rng(8)
    reference = exams(rng).drop(columns=["kvp"])
    night = exams(rng).assign(compression_force_n=np.nan)
    features = {t.feature for t in run(reference, night)}
    assert "kvp" not in features and "compression_force_n" not in features
    assert {"exposure_mas", "manufacturer", "emb_69", "score", "flag_rate"} <= features
    with pytest.raises(ValueError, match="flagged"):
        run(reference, night, qc_night=QC_CALM.drop(columns=["flagged"]))


def test_night_status_counts_families_with_a_p_value_and_judges_by_exams() -> None:
    tests = [DriftTest("prediction", "score", "psi", 0.9, None, 0.25, 100, 100, drifted=True),
             DriftTest("embedding", "emb_3", "ks", 0.5, 1e-6, 0.01, 100, 100, q_value=1e-4, drifted=True),
             DriftTest("metadata", "kvp", "ks", 0.1, 0.5, 0.01, 100, 100, q_value=0.9)]
    assert drift.night_status("2026-03-01", tests, exams=25, min_exams=20) == NightStatus(
        "2026-03-01", ("embedding",), judged=True)
    assert not drift.night_status("2026-03-01", tests, exams=19, min_exams=20).judged
