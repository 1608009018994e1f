"""Image QC on synthetic views with planted artifacts (the truth), through the real path:
rendered pixels -> MG dataset -> `view_pixels` (VOI LUT, MONOCHROME1) -> `assess`.

Each artifact must be found in at least 95% of the views it was planted in, and clean
views must raise a flag of any kind at most 2% of the time, pooled over all four vendor
profiles at both synthetic scales (0.125, what screening runs, about 360-590 rows; and
0.25, what tests render elsewhere, about 710-1180 rows). No site and scale may fall far
behind the pool: a detector tuned on one pixel size must not go blind on another. Run
with `-s` to see the table.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_builders import synthetic_dataset

from pipelines.domain import QC_CODES, SCREENING_VIEWS, ViewQc
from pipelines.errors import PermanentError
from pipelines.imaging.preprocess import chest_wall_is_right, view_pixels
from pipelines.imaging.qc import QcLimits, assess

SITES = ("general", "north", "east", "south")
SCALES = (0.125, 0.25)
PER_COMBINATION = 5  # planted views per artifact, site and scale (40 per artifact)
CLEAN_PER_COMBINATION = 20  # clean views per site and scale (160)

Combination = tuple[str, float]


def synthetic_display(site: str, index: int, view: str, code: str,
                      scale: float = 0.25) -> tuple[np.ndarray, bool]:
    """(display, mirror) of one synthetic view with `code` planted ("" for none)."""
    ds = synthetic_dataset(site, index, view, code, scale)
    return view_pixels(ds, 128), chest_wall_is_right(ds, view.split("-")[0])


def synthetic_qc(site: str, index: int, view: str, code: str,
                 scale: float) -> tuple[ViewQc, float]:
    """QC of one synthetic view with `code` planted, and the seconds `assess` took."""
    display, mirror = synthetic_display(site, index, view, code, scale)
    started = time.perf_counter()
    qc = assess(display, mirror, view)
    return qc, time.perf_counter() - started


def planted_view(code: str, number: int) -> str:
    views = ("R-MLO", "L-MLO") if code == "missing_pectoral" else SCREENING_VIEWS
    return views[number % len(views)]


Results = dict[Combination, dict[str, list[ViewQc]]]


def found(views: list[ViewQc], code: str) -> int:
    """How many of `views` raise `code` ("": any flag)."""
    return sum(any(not code or f.code == code for f in v.flags) for v in views)


def pooled(results: Results, code: str) -> list[ViewQc]:
    return [view for by_code in results.values() for view in by_code[code]]


@pytest.fixture(scope="module")
def results() -> Results:
    """QC of every sampled view by (site, scale) and planted code ("" = clean); prints
    the detection table (hits of the planted code / views) and the time `assess` took."""
    out: Results = {}
    seconds: dict[float, list[float]] = {scale: [] for scale in SCALES}
    for scale in SCALES:
        for site in SITES:
            by_code: dict[str, list[ViewQc]] = {"": []}
            for n in range(CLEAN_PER_COMBINATION):
                qc, took = synthetic_qc(site, 1000 + n, SCREENING_VIEWS[n % 4], "", scale)
                by_code[""].append(qc)
                seconds[scale].append(took)
            for code in QC_CODES:
                for n in range(PER_COMBINATION):
                    qc, took = synthetic_qc(site, 2000 + 10 * n + QC_CODES.index(code),
                                            planted_view(code, n), code, scale)
                    by_code.setdefault(code, []).append(qc)
                    seconds[scale].append(took)
            out[(site, scale)] = by_code
    codes = ("", *QC_CODES)
    print("\nsite     scale  " + " ".join(f"{code or 'clean (flagged)':>16s}" for code in codes))
    for (site, scale), by_code in out.items():
        cells = (f"{found(by_code[code], code)}/{len(by_code[code])}" for code in codes)
        print(f"{site:8s} {scale:<6} " + " ".join(f"{cell:>16s}" for cell in cells))
    for scale, taken in seconds.items():
        print(f"assess at scale {scale}: median {1000 * np.median(taken):.1f} ms, "
              f"max {1000 * max(taken):.1f} ms per view")
    return out


@pytest.mark.parametrize("code", QC_CODES)
def test_each_artifact_is_found_in_95_percent_of_its_views(results: Results, code: str) -> None:
    views = pooled(results, code)
    assert found(views, code) >= 0.95 * len(views), (code, found(views, code), len(views))


@pytest.mark.parametrize("code", QC_CODES)
def test_no_site_or_scale_misses_an_artifact(results: Results, code: str) -> None:
    missed = {combination: f"{found(by_code[code], code)}/{len(by_code[code])}"
              for combination, by_code in results.items()
              if found(by_code[code], code) < 0.8 * len(by_code[code])}
    assert not missed, (code, missed)


def test_clean_views_are_rarely_flagged(results: Results) -> None:
    clean = pooled(results, "")
    flagged = [v for v in clean if v.flags]
    assert len(flagged) <= 0.02 * len(clean), [f.reason for v in flagged for f in v.flags]
    assert all(found(by_code[""], "") <= 1 for by_code in results.values())
    assert not any(v.discounted for v in clean if not v.flags)


def test_reasons_give_the_measured_value_and_the_limit(results: Results) -> None:
    for code in QC_CODES:
        flag = next(f for v in pooled(results, code) for f in v.flags if f.code == code)
        assert len(re.findall(r"-?\d+(?:\.\d+)?", flag.reason)) >= 2, flag.reason
        assert np.isfinite(flag.value)


def test_pectoral_is_only_judged_on_mlo_views(results: Results) -> None:
    for view in pooled(results, ""):
        assert ("pectoral_contrast" in view.features) == view.view.endswith("MLO")


def test_limits_move_the_decision() -> None:
    display, mirror = synthetic_display("general", 2001, "R-CC", "motion_blur")
    assert any(f.code == "motion_blur" for f in assess(display, mirror, "R-CC").flags)
    lenient = assess(display, mirror, "R-CC", QcLimits(min_blur_balance=0.0))
    assert not any(f.code == "motion_blur" for f in lenient.flags)


def test_blur_balance_looks_through_the_noise() -> None:
    """Noise added after the motion (as on a detector) must not hide it: tissue detail
    smeared along one axis under noise stronger than the detail is still unbalanced,
    and noise alone is balanced."""
    from scipy import ndimage

    from pipelines.imaging.qc_features import sharpness

    rng = np.random.default_rng(5)
    tissue = ndimage.gaussian_filter(rng.standard_normal((512, 512)), 2.0)
    smeared = ndimage.uniform_filter1d(tissue, 9, axis=1)
    noise = 1.5 * float(np.std(smeared)) * rng.standard_normal((512, 512))
    interior = np.zeros((512, 512), dtype=bool)
    interior[32:-32, 32:-32] = True
    _, blurred = sharpness(smeared + noise, interior)
    _, sharp = sharpness(tissue + noise, interior)
    _, pure_noise = sharpness(noise, interior)
    assert blurred < QcLimits().min_blur_balance < sharp, (blurred, sharp)
    assert pure_noise > QcLimits().min_blur_balance, pure_noise


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
