"""Evaluation metrics on cases whose answers are known by construction, the figures as
real PNG files, and the report of a split (exam aggregation, subgroups, gallery)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pipelines.errors import NoTrainingData
from pipelines.metrics import binary as metrics
from pipelines.metrics import flat_metrics, plots, write_report
from pipelines.modelfiles.inference import view_outputs, view_scores

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def noisy_case(n: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 4 == 0).astype(int)
    return labels, rng.normal(0.0, 1.0, n) + labels


def test_perfect_separation_has_auc_one_and_a_ci_of_one() -> None:
    labels, scores = np.r_[np.zeros(30), np.ones(10)], np.r_[np.linspace(0, 0.4, 30), np.linspace(0.6, 1, 10)]
    est = metrics.auc_with_ci(labels, scores, resamples=300)
    assert est.auc == 1.0
    assert (est.ci_low, est.ci_high) == (pytest.approx(1.0, abs=1e-12), pytest.approx(1.0, abs=1e-12))


def test_auc_of_a_small_example_matches_the_pair_count_by_hand() -> None:
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered -> 0.75
    assert metrics.auc_with_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], resamples=50).auc == 0.75
    # a tie between a positive and a negative counts half: (1 + 0.5 + 2) / 4
    assert metrics.auc_with_ci([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.9], resamples=50).auc == 0.875


def test_the_ci_brackets_the_auc_and_a_seed_repeats_it_exactly() -> None:
    labels, scores = noisy_case()
    first, again = (metrics.auc_with_ci(labels, scores, resamples=400, seed=7) for _ in range(2))
    other = metrics.auc_with_ci(labels, scores, resamples=400, seed=8)
    assert first == again
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)
    assert first.ci_low < first.auc < first.ci_high
    assert 0.6 < first.auc < 0.9  # one standard deviation apart: about 0.76


def test_sensitivity_and_specificity_at_a_threshold_count_flagged_exams() -> None:
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert metrics.sensitivity_specificity(labels, scores, 0.35) == (1.0, 0.5)
    assert metrics.sensitivity_specificity(labels, scores, 0.5) == (0.5, 1.0)
    assert metrics.threshold_for_sensitivity(labels, scores, 0.5) == 0.8
    assert metrics.threshold_for_sensitivity(labels, scores, 1.0) == 0.35


def test_specificity_at_sensitivity_090_on_a_constructed_case() -> None:
    # 9 of 10 positives score 0.90 or more, the tenth 0.2; one negative scores 0.95
    positives = [0.90, 0.91, 0.92, 0.93, 0.94, 0.96, 0.97, 0.98, 0.99, 0.2]
    negatives = [0.05, 0.1, 0.15, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.95]
    labels, scores = np.r_[np.ones(10), np.zeros(10)], np.r_[positives, negatives]
    assert metrics.specificity_at_sensitivity(labels, scores, 0.9) == pytest.approx(0.9)
    assert metrics.threshold_for_sensitivity(labels, scores, 0.9) == 0.90
    assert metrics.sensitivity_specificity(labels, scores, 0.90) == (pytest.approx(0.9), pytest.approx(0.9))
    # all positives only at 0.2, where 7 negatives are flagged too
    assert metrics.specificity_at_sensitivity(labels, scores, 1.0) == pytest.approx(0.3)


def test_perfectly_calibrated_bins_have_an_ece_of_zero() -> None:
    probs = np.repeat([0.15, 0.55, 0.85], 20)
    labels = np.r_[np.arange(20) < 3, np.arange(20) < 11, np.arange(20) < 17].astype(int)
    curve = metrics.reliability_bins(labels, probs)
    assert [(b.low, b.count) for b in curve] == [(0.1, 20), (0.5, 20), (0.8, 20)]
    assert [b.observed_rate for b in curve] == pytest.approx([0.15, 0.55, 0.85])
    assert metrics.expected_calibration_error(curve) == pytest.approx(0.0, abs=1e-12)


def test_a_constant_09_on_half_positives_has_an_ece_of_04() -> None:
    labels = np.arange(40) % 2
    curve = metrics.reliability_bins(labels, np.full(40, 0.9))
    assert [(b.low, b.high, b.count, b.observed_rate) for b in curve] == [(0.9, 1.0, 40, 0.5)]
    assert metrics.expected_calibration_error(curve) == pytest.approx(0.4)


def test_reliability_bins_are_closed_below_and_the_last_holds_one() -> None:
    curve = metrics.reliability_bins([0, 1, 1], [0.0, 0.3, 1.0])
    assert [b.low for b in curve] == [0.0, 0.3, 0.9]


def test_a_subgroup_of_one_class_or_few_exams_has_no_auc_but_a_reason() -> None:
    labels, scores = noisy_case(120)
    groups = np.where(np.arange(120) < 60, "HOLOGIC", "GE")
    groups[labels == 1] = "HOLOGIC"  # GE: negatives only
    groups[:3] = "SIEMENS"  # 3 exams, one of them positive
    found = {g.group: g for g in metrics.subgroup_aucs(labels, scores, list(groups), resamples=100)}
    assert sorted(found) == ["GE", "HOLOGIC", "SIEMENS"]
    assert found["GE"].auc is None and found["GE"].reason == f"only negative exams ({found['GE'].exams})"
    assert found["SIEMENS"].auc is None and "3 exams, fewer than" in str(found["SIEMENS"].reason)
    hologic = found["HOLOGIC"]
    assert hologic.reason is None and hologic.auc is not None
    assert hologic.ci_low is not None and hologic.ci_high is not None
    assert hologic.ci_low <= hologic.auc <= hologic.ci_high
    assert sum(g.exams for g in found.values()) == 120
    assert sum(g.positives for g in found.values()) == labels.sum()


def test_metrics_refuse_one_class_and_labels_other_than_0_and_1() -> None:
    with pytest.raises(ValueError, match="positive and negative"):
        metrics.auc_with_ci([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="0 or 1"):
        metrics.sensitivity_specificity([0, 2, 1], [0.1, 0.2, 0.3], 0.5)


def assert_png(path: Path, size: tuple[int, int] | None = None) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100
        if size is not None:
            assert image.size == size


def test_the_figures_are_written_as_png_files(tmp_path: Path) -> None:
    labels, scores = noisy_case(80)
    probs = 1.0 / (1.0 + np.exp(-scores))
    est = metrics.auc_with_ci(labels, probs, resamples=50)
    curve = metrics.reliability_bins(labels, probs)
    rng = np.random.default_rng(0)
    view = plots.GalleryView(rng.random((64, 48)), rng.random((4, 3)), "ex-1 L-CC p=0.91")
    written = [
        plots.roc_plot(labels, probs, tmp_path / "roc.png", operating_point=0.6, auc=est),
        plots.reliability_plot(curve, metrics.expected_calibration_error(curve), tmp_path / "rel.png"),
        plots.heatmap_gallery({"true positives": [view, view], "false positives": []},
                              tmp_path / "gallery" / "g.png"),
    ]
    assert written == [tmp_path / "roc.png", tmp_path / "rel.png", tmp_path / "gallery" / "g.png"]
    for path in written:
        assert_png(path)


def views(exams: int, seed: int = 0, density: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """4 views per exam, every fourth exam positive in its left breast, scores that separate."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(exams):
        for view in ("L-CC", "L-MLO", "R-CC", "R-MLO"):
            rows.append({"exam_id": f"ex-{e:04d}", "view": view, "laterality": view[0],
                         "label": int(e % 4 == 0 and view[0] == "L"),
                         "manufacturer": ["HOLOGIC, Inc.", "SIEMENS"][e % 2],
                         **({"density": [1, 2, None, 4][e % 4]} if density else {})})
    frame = pd.DataFrame(rows)
    return frame, np.clip(rng.normal(0.3, 0.1, len(frame)) + 0.4 * frame.label, 0.0, 1.0)


def test_a_report_aggregates_views_by_breast_mean_and_exam_max(tmp_path: Path) -> None:
    rows, _ = views(3)
    # exam 0 (positive): left 0.9 and 0.1 average 0.5; right 0.6 and 0.6 -> exam 0.6
    scores = np.array([0.9, 0.1, 0.6, 0.6] + [0.2] * 4 + [0.3, 0.3, 0.7, 0.7])
    report = write_report(rows, scores, 0.65, tmp_path, resamples=20)
    assert (report["views"], report["exams"], report["positive_exams"]) == (12, 3, 1)
    # exam 2 (0.7) is flagged, exam 0 (0.6, not 0.9 as with a max over views) is not
    assert (report["sensitivity"], report["specificity"]) == (0.0, 0.5)
    assert report["auc"] == 0.5


def test_a_report_writes_its_numbers_and_figures_with_subgroups_and_a_gallery(tmp_path: Path) -> None:
    rows, scores = views(80)
    rows.loc[rows.exam_id == "ex-0005", "label"] = None  # an unlabelled exam is left out
    rng = np.random.default_rng(1)
    images, heatmaps = rng.random((len(rows), 1, 64, 48)), rng.random((len(rows), 1, 4, 3))
    report = write_report(rows, scores, 0.55, tmp_path, images=images, heatmaps=heatmaps,
                          split="val", resamples=100)
    assert json.loads((tmp_path / "evaluation.json").read_text()) == report
    for name in ("roc.png", "reliability.png", "heatmap_gallery.png"):
        assert_png(tmp_path / name)
    assert (report["exams"], report["unlabelled_views"], report["positive_exams"]) == (79, 4, 20)
    assert report["auc_ci_low"] <= report["auc"] <= report["auc_ci_high"]
    assert sum(b["count"] for b in report["reliability"]) == 79
    manufacturers = {g["group"]: g for g in report["subgroups"]["manufacturer"]}
    assert manufacturers["SIEMENS"]["auc"] is None and "only negative" in manufacturers["SIEMENS"]["reason"]
    assert manufacturers["HOLOGIC, Inc."]["auc"] is not None
    assert {g["group"]: g["exams"] for g in report["subgroups"]["density"]} == {
        "1": 20, "2": 19, "unknown": 20, "4": 20}
    assert report["gallery"]["true_positive_views"] == 4 and report["gallery_skipped"] is None
    flat = flat_metrics(report)
    assert flat["val_auc"] == report["auc"] and flat["val_ece"] == report["ece"]
    assert flat["val_auc_manufacturer_hologic_inc_ci_low"] == manufacturers["HOLOGIC, Inc."]["ci_low"]
    assert flat["val_exams_manufacturer_siemens"] == 39 and "val_auc_manufacturer_siemens" not in flat
    assert flat["val_exams_density_unknown"] == 20


def test_a_report_without_heatmaps_or_density_says_so(tmp_path: Path) -> None:
    rows, scores = views(12, density=False)
    report = write_report(rows, scores, 0.5, tmp_path, images=np.zeros((48, 1, 8, 8)), resamples=20)
    assert report["gallery"] is None and report["gallery_skipped"] == "the model returns no heatmaps"
    assert not (tmp_path / "heatmap_gallery.png").exists()
    assert [(g["group"], g["exams"]) for g in report["subgroups"]["density"]] == [("unknown", 12)]


def test_a_report_refuses_a_split_of_one_class_and_misaligned_inputs(tmp_path: Path) -> None:
    rows, scores = views(8)
    with pytest.raises(NoTrainingData, match="0 positive of 8"):
        write_report(rows.assign(label=0), scores, 0.5, tmp_path)
    with pytest.raises(ValueError, match="heatmaps: 3 for 32 view rows"):
        write_report(rows, scores, 0.5, tmp_path, heatmaps=np.zeros((3, 1, 2, 2)))


class TupleModel(torch.nn.Module):
    """Probability = mean pixel; heatmap = 4x4 average pool, like the registered model."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.mean(dim=(2, 3)), torch.nn.functional.avg_pool2d(x, 4)


def test_view_outputs_read_a_tuple_model_and_a_bare_tensor_model() -> None:
    images = np.random.default_rng(0).random((5, 1, 8, 12)).astype(np.float32)
    expected = images.mean(axis=(1, 2, 3))
    scores, heatmaps = view_outputs(TupleModel(), images, batch_size=2)
    assert scores == pytest.approx(expected, abs=1e-6)
    assert heatmaps is not None and heatmaps.shape == (5, 1, 2, 3)
    assert view_scores(TupleModel(), images, batch_size=2) == pytest.approx(expected, abs=1e-6)

    def bare(x: torch.Tensor) -> torch.Tensor:
        return TupleModel()(x)[0]

    scores, heatmaps = view_outputs(bare, images, batch_size=3)
    assert scores == pytest.approx(expected, abs=1e-6) and heatmaps is None
    assert view_scores(bare, images) == pytest.approx(expected, abs=1e-6)
