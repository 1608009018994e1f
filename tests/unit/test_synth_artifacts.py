"""Synthetic artifacts: planned deterministically at the asked rate, drawn only into the
view the plan names, recorded in the truth CSV; MLO views show a pectoral muscle unless
its absence is the planted artifact."""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipelines import config
from pipelines.errors import PermanentError
from pipelines.synth import iter_exams, run
from pipelines.synth.artifacts import ARTIFACT_CODES, plan_artifacts
from pipelines.synth.exams import plan_exam
from pipelines.synth.images import render_view
from pipelines.synth.sites import geometry_for, profile_for_site

DATE = "2025-03-01"


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RADFLOW_STATE_DIR", str(tmp_path / "state"))
    config.reset_settings()
    yield tmp_path / "state"
    config.reset_settings()


def test_rate_codes_and_views_of_the_plan() -> None:
    plans = [plan_artifacts(7, "general", DATE, i, 0.4) for i in range(1000)]
    planted = [p for p in plans if p]
    assert 330 <= len(planted) <= 470  # 400 expected; binomial sd 15.5
    assert all(len(p) == 1 for p in planted)
    codes = Counter(code for p in planted for _, code in p)
    assert set(codes) == set(ARTIFACT_CODES) and min(codes.values()) >= 40, codes
    assert all(view.endswith("MLO") for p in planted for view, code in p
               if code == "missing_pectoral")
    assert plans == [plan_artifacts(7, "general", DATE, i, 0.4) for i in range(1000)]
    assert not any(plan_artifacts(7, "general", DATE, i, 0.0) for i in range(100))


def test_artifacts_do_not_move_any_other_choice() -> None:
    for index in range(20):
        plain = plan_exam(3, "north", DATE, index, 50, 0.3, 0.2)
        planted = plan_exam(3, "north", DATE, index, 50, 0.3, 0.2, artifact_rate=0.5)
        assert dataclasses.replace(planted, artifacts=()) == plain


def render(code: str, view: str, site: str = "general", index: int = 4,
           scale: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(clean, planted) stored pixels of one view, chest wall left, bright = dense."""
    plan = plan_exam(9, site, DATE, index, 100, 0.3)
    profile = profile_for_site(site)
    geometry = geometry_for(profile, scale)
    side, position = view.split("-")
    out = []
    for artifacts in ((), ((view, code),)):
        pixels = render_view(dataclasses.replace(plan, artifacts=artifacts), profile, geometry,
                             side, position).pixels.astype(np.float64)
        if profile.photometric == "MONOCHROME1":
            pixels = profile.max_value - pixels
        out.append(pixels[:, ::-1] if side == "R" else pixels)
    return out[0], out[1]


@pytest.mark.parametrize("site", ["general", "north"])  # MONOCHROME2 and MONOCHROME1
def test_foreign_object_and_clipping_saturate_the_detector(site: str) -> None:
    top = profile_for_site(site).max_value
    clean, metal = render("foreign_object", "L-CC", site)
    saturated = np.count_nonzero(metal == top) - np.count_nonzero(clean == top)
    assert 10 <= saturated <= 0.01 * metal.size  # a few mm: a small disc or ring
    clean, clipped = render("clipped_exposure", "R-MLO", site)
    breast = clean > np.percentile(clean, 40)
    assert np.mean(clipped[breast] == top) >= 0.1


def test_motion_blur_smears_one_axis() -> None:
    from scipy import ndimage

    clean, blurred = (ndimage.gaussian_filter(image, 1.5)  # without the (unblurred) noise
                      for image in render("motion_blur", "R-CC", scale=0.25))
    energy = [np.mean(np.diff(image, axis=axis) ** 2) for image in (clean, blurred) for axis in (0, 1)]
    ratios = (energy[2] / energy[0], energy[3] / energy[1])
    assert min(ratios) < 0.6 < max(ratios), ratios


def test_grid_lines_are_periodic() -> None:
    clean, lined = render("grid_lines", "L-MLO")
    difference = lined - clean
    profile = max((difference.mean(axis=axis) for axis in (0, 1)), key=np.ptp)
    spectrum = np.abs(np.fft.rfft(profile - profile.mean()))[1:]
    assert spectrum.max() > 8 * np.median(spectrum)


@pytest.mark.parametrize("view", ["R-MLO", "L-MLO"])
def test_mlo_shows_a_pectoral_muscle_unless_it_is_the_artifact(view: str) -> None:
    clean, missing = render("missing_pectoral", view)
    rows, cols = clean.shape
    corner = (slice(0, rows // 8), slice(0, cols // 12))
    breast = clean[clean > np.percentile(clean, 40)]
    assert clean[corner].mean() > np.median(breast)
    assert missing[corner].mean() < clean[corner].mean() - 0.3 * np.ptp(breast)


def test_only_the_planted_view_changes() -> None:
    exam = next(iter(iter_exams(1, DATE, "east", 2, scale=0.05, artifact_rate=1.0)))
    plain = next(iter(iter_exams(1, DATE, "east", 2, scale=0.05)))
    (planted_view, _), = exam.plan.artifacts
    for a, b in zip(exam.instances, plain.instances, strict=True):
        if a.name == "report":
            continue
        same = np.array_equal(a.dataset.pixel_array, b.dataset.pixel_array)
        assert same == (a.name != planted_view), a.name


def test_truth_csv_names_view_and_code() -> None:
    result = run(12, DATE, "south", 4, push=False, scale=0.03, progress=False, artifact_rate=0.5)
    with open(result.truth_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    planned = [" ".join(f"{v}:{c}" for v, c in
                        plan_exam(4, "south", DATE, i, 12, 0.3, artifact_rate=0.5).artifacts)
               for i in range(12)]
    assert [row["artifacts"] for row in rows] == planned
    assert any(planned) and not all(planned)


def test_artifact_rate_out_of_range_is_refused() -> None:
    with pytest.raises(PermanentError, match="artifact_rate=1.5"):
        iter_exams(1, DATE, "general", 1, artifact_rate=1.5)
