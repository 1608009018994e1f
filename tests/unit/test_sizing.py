"""The deployment sizing's arithmetic and how it reads the benchmark results (no services)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.sizing import Measured, Plan, cores_for, exams_served, load, per_exam_cpu_s, render, size


def measured(**changes: object) -> Measured:
    base: dict[str, object] = dict(
        ingest_cpu_s=1.0, ingest_j2k_cpu_s=9.0, ingest_exams_per_s=0.5, ingest_j2k_exams_per_s=0.1,
        screening_cpu_s={"score_batch/collect": 0.1, "score_batch/score": 0.2,
                         "merge_screening/write_back": 0.3},
        batch_wall_s=0.15, collect_wall_s=0.05, merge_wall_s=0.4,
        night_fixed_cpu_s=10.0, screening_scale=0.125)
    base.update(changes)
    return Measured(**base)  # type: ignore[arg-type]


def test_collect_on_small_images_counts_as_one_more_full_size_ingest() -> None:
    # ingest 1.0 + collect max(0.1, 1.0) + score 0.2 + write_back 0.3
    assert per_exam_cpu_s(measured(), 1.0) == pytest.approx(2.5)
    assert per_exam_cpu_s(measured(), 9.0) == pytest.approx(18.5)
    # at full size the measured collect stands
    assert per_exam_cpu_s(measured(screening_scale=1.0), 1.0) == pytest.approx(1.6)


def test_cores_round_up_with_the_headroom_and_never_below_one() -> None:
    plan = Plan(window_h=5, headroom=2)
    assert cores_for(9000, plan) == 1  # 18,000 CPU-s with headroom fit one core in 5 h
    assert cores_for(9001, plan) == 2
    assert cores_for(0, plan) == 1
    assert cores_for(45_000, Plan(window_h=5, headroom=1)) == 3


def test_a_row_by_hand() -> None:
    plan = Plan(window_h=5, headroom=2)
    row = size(2000, measured(gpu_images_per_s=0.5), plan)
    assert row.cpu_s == pytest.approx(2000 * 2.5 + 10)
    assert row.cores == 1  # 5,010 x 2 / 18,000 s
    assert row.cores_j2k == 5  # (2000 x 18.5 + 10) x 2 / 18,000 = 4.1
    # batches 2 at a time: collect at ingest speed 1 / 0.5 = 2 s + 0.1 s of the rest; merge 0.4 s
    assert row.night_h == pytest.approx(2000 * (2.1 / 2 + 0.4) / 3600)
    assert row.night_j2k_h == pytest.approx(2000 * (10.1 / 2 + 0.4) / 3600)
    assert row.ingest_run_h == pytest.approx(2000 / 0.5 / 3600)
    assert row.images_per_s == pytest.approx(2000 * 4 * 2 / 18_000)
    assert row.gpus == 2  # 0.89 images/s needed, 0.5 per GPU


def test_without_gpu_or_jpeg2000_figures_nothing_is_invented() -> None:
    plan = Plan()
    m = measured(ingest_j2k_cpu_s=None, ingest_j2k_exams_per_s=None)
    row = size(25, m, plan)
    assert row.gpus is None and row.cores_j2k is None and row.night_j2k_h is None
    text = render([row, size(20_000, m, plan)], m, plan)
    assert "No GPU was measured" in text and "not measured" in text
    assert "**8.1 h**" in text  # 20,000 exams x (2.1 / 2 + 0.4) s: over the 5 h window, in bold


def test_exams_served_inverts_the_throughput_needed() -> None:
    plan = Plan(window_h=5, headroom=2)
    assert exams_served(size(2000, measured(), plan).images_per_s, plan) == 2000
    assert exams_served(1.0, plan) == 2250  # 18,000 images in 5 h, 4 views, x2


def test_a_bad_plan_or_night_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="headroom"):
        Plan(headroom=0.5)
    with pytest.raises(ValueError, match="batch_slots"):
        Plan(batch_slots=0)
    with pytest.raises(ValueError, match="got 0"):
        size(0, measured(), Plan())


def _write(folder: Path, name: str, secondary: dict, **top: object) -> None:
    data = {"benchmark": name, "value": 1.0, "machine": "2 cores", "date": "2026-12-06T00:00:00+00:00",
            "params": {"exams": 40, "scale": 0.125}, "secondary": secondary, **top}
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_load_reads_the_result_files(tmp_path: Path) -> None:
    _write(tmp_path, "screening", {
        "cpu_s_per_exam": {"score_batch/collect": 0.1, "merge_screening/write_back": 0.01, "stages": 0.11,
                           "dag": 0.5},
        "wall_s_per_exam": {"score_batch": 0.2, "score_batch/collect": 0.1, "merge_screening": 0.3},
        "dag_fixed_cpu_s": 12.0})
    _write(tmp_path, "ingest", {"cpu_s_per_exam": {"radflow": 0.8, "orthanc": 0.2, "total": 1.0},
                                "exams_per_s": 0.7,
                                "jpeg2000_lossless": {"cpu_s_per_exam": {"total": 8.8},
                                                      "ingest_exams_s": 0.1}})
    _write(tmp_path, "serving", {}, value=300.0)
    m = load(tmp_path)
    assert m.screening_cpu_s == {"score_batch/collect": 0.1, "merge_screening/write_back": 0.01}  # no sums
    assert (m.batch_wall_s, m.collect_wall_s, m.merge_wall_s) == (0.2, 0.1, 0.3)
    assert (m.ingest_cpu_s, m.ingest_j2k_cpu_s, m.ingest_j2k_exams_per_s) == (1.0, 8.8, 0.1)
    assert m.night_fixed_cpu_s == 12.0 and m.cpu_triton_images_per_s == 300.0
    assert m.gpu_images_per_s is None and m.train_images_per_s is None


def test_load_names_the_benchmark_to_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python -m benchmarks.screening"):
        load(tmp_path)
    _write(tmp_path, "screening", {"exams_per_min": 80})  # from before the CPU figures
    _write(tmp_path, "ingest", {"cpu_s_per_exam": {"total": 1.0}, "exams_per_s": 0.7})
    with pytest.raises(ValueError, match="rerun python -m benchmarks.screening"):
        load(tmp_path)
