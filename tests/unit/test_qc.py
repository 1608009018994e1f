"""Image QC on synthetic views with planted artifacts (the truth), through the real path:
rendered pixels -> MG dataset -> `view_pixels` (VOI LUT, MONOCHROME1) -> `assess`.

Each artifact must be found in at least 90% of the views it was planted in, and clean
views must raise a flag of any kind at most 5% of the time. Views are about 1024 rows
(the working resolution), from all four vendor profiles. Run with `-s` to see the table.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pipelines.domain import QC_CODES, SCREENING_VIEWS, ViewQc
from pipelines.errors import PermanentError
from pipelines.imaging.preprocess import chest_wall_is_right, view_pixels
from pipelines.imaging.qc import QcLimits, assess
from pipelines.synth.dicom import mg_dataset, patient_study
from pipelines.synth.exams import plan_exam
from pipelines.synth.images import render_view
from pipelines.synth.sites import geometry_for, profile_for_site

SITES = ("general", "north", "east", "south")
PER_SITE = 4  # planted views per artifact and site (16 per artifact)
CLEAN_PER_SITE = 10  # clean views per site (40)


def synthetic_display(site: str, index: int, view: str, code: str) -> tuple[np.ndarray, bool]:
    """(display, mirror) of one synthetic view with `code` planted ("" for none)."""
    plan = plan_exam(23, site, "2026-01-05", index, 10_000, 0.3)
    if code == "burned_in_text":
        plan = dataclasses.replace(plan, burned_in_text=(view,))
    elif code:
        plan = dataclasses.replace(plan, artifacts=((view, code),))
    profile = profile_for_site(site)
    scale = math.ceil(1024 / profile.detector_rows * 1000) / 1000  # about 1024 rows
    geometry = geometry_for(profile, scale)
    side, position = view.split("-")
    image = render_view(plan, profile, geometry, side, position)
    ds = mg_dataset(plan, profile, geometry, view, image, patient_study(plan, profile))
    return view_pixels(ds, 256), chest_wall_is_right(ds, side)


def synthetic_qc(site: str, index: int, view: str, code: str) -> tuple[ViewQc, float]:
    """QC of one synthetic view with `code` planted, and the seconds `assess` took."""
    display, mirror = synthetic_display(site, index, view, code)
    started = time.perf_counter()
    found = assess(display, mirror, view)
    return found, time.perf_counter() - started


def planted_view(code: str, number: int) -> str:
    views = ("R-MLO", "L-MLO") if code == "missing_pectoral" else SCREENING_VIEWS
    return views[number % len(views)]


@pytest.fixture(scope="module")
def results() -> dict[str, list[ViewQc]]:
    """QC of every sampled view, by planted code ("" = clean); prints the table."""
    out: dict[str, list[ViewQc]] = {"": []}
    seconds: list[float] = []
    for site in SITES:
        for n in range(CLEAN_PER_SITE):
            found, took = synthetic_qc(site, 1000 + n, SCREENING_VIEWS[n % 4], "")
            out[""].append(found)
            seconds.append(took)
        for code in QC_CODES:
            for n in range(PER_SITE):
                found, took = synthetic_qc(site, 2000 + 10 * n + QC_CODES.index(code),
                                           planted_view(code, n), code)
                out.setdefault(code, []).append(found)
                seconds.append(took)
    print("\nplanted            n  detected  other flags")
    for code, views in out.items():
        hits = sum(any(f.code == code for f in v.flags) for v in views) if code else 0
        other = sum(any(f.code != code for f in v.flags) for v in views)
        extra = sorted({f.code for v in views for f in v.flags if f.code != code})
        print(f"{code or 'clean':18s} {len(views):2d}  {hits:8d}  {other:11d} {' '.join(extra)}")
    print(f"assess: median {1000 * np.median(seconds):.1f} ms, "
          f"max {1000 * max(seconds):.1f} ms per view")
    return out


@pytest.mark.parametrize("code", QC_CODES)
def test_each_artifact_is_found_in_90_percent_of_its_views(
    results: dict[str, list[ViewQc]], code: str
) -> None:
    views = results[code]
    hits = [any(f.code == code for f in v.flags) for v in views]
    assert sum(hits) >= 0.9 * len(views), (code, sum(hits), len(views))


def test_clean_views_are_rarely_flagged(results: dict[str, list[ViewQc]]) -> None:
    flagged = [v for v in results[""] if v.flags]
    assert len(flagged) <= 0.05 * len(results[""]), [f.reason for v in flagged for f in v.flags]
    assert not any(v.discounted for v in results[""] if not v.flags)


def test_reasons_give_the_measured_value_and_the_limit(results: dict[str, list[ViewQc]]) -> None:
    for code in QC_CODES:
        flag = next(f for v in results[code] for f in v.flags if f.code == code)
        assert len(re.findall(r"-?\d+(?:\.\d+)?", flag.reason)) >= 2, flag.reason
        assert np.isfinite(flag.value)


def test_pectoral_is_only_judged_on_mlo_views(results: dict[str, list[ViewQc]]) -> None:
    for view in results[""]:
        assert ("pectoral_contrast" in view.features) == view.view.endswith("MLO")


def test_limits_move_the_decision() -> None:
    display, mirror = synthetic_display("general", 2001, "R-CC", "motion_blur")
    assert any(f.code == "motion_blur" for f in assess(display, mirror, "R-CC").flags)
    lenient = assess(display, mirror, "R-CC", QcLimits(min_blur_balance=0.0))
    assert not any(f.code == "motion_blur" for f in lenient.flags)


def test_blank_image_has_nothing_to_flag() -> None:
    assert assess(np.zeros((64, 64), dtype=np.float32), False, "R-CC").flags == ()


def test_bad_input_is_refused_with_its_shape() -> None:
    with pytest.raises(ValueError, match=r"\(10, 10\)"):
        assess(np.zeros((10, 10), dtype=np.float32), False, "L-CC")


def shipped_images() -> list[Path]:
    """DICOM test files of pydicom, pydicom-data and deid-data on disk."""
    import data_store  # pydicom-data
    import deid_data
    import pydicom.data

    roots = [Path(pydicom.data.__file__).parent / "test_files",
             Path(data_store.__file__).parent / "data", Path(deid_data.__file__).parent / "data"]
    return sorted(p for root in roots for p in root.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc", ".zip", ".json", ".txt"))


def test_real_mg_and_cr_files_do_not_crash_assess() -> None:
    assessed = 0
    for path in shipped_images():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, force=True)
                if str(ds.get("Modality", "")) not in ("MG", "CR", "DX") or "PixelData" not in ds:
                    continue
                display = view_pixels(ds, 256)
            except (PermanentError, Exception):  # undecodable: ingest quarantines it
                continue
        if display.ndim != 2 or min(display.shape) < 32:
            continue
        laterality = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "L")
        view = f"{laterality[:1] or 'L'}-{str(ds.get('ViewPosition', '') or 'MLO')}"
        found = assess(display, chest_wall_is_right(ds, laterality), view)
        assert all(np.isfinite(v) for v in found.features.values()), (path.name, found.features)
        assessed += 1
    assert assessed >= 3, assessed
