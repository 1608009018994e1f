"""synth can plant the two changes monitoring must detect: a vendor change and an ageing
detector, each from a chosen day, while everything else about the site stays the same."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from pipelines import cli
from pipelines.errors import PermanentError
from pipelines.synth import SynthExam, iter_exams, run
from pipelines.synth.images import detector_gain
from pipelines.synth.run import TRUTH_COLUMNS
from pipelines.synth.sites import PROFILES, profile_for_site

DATE = "2025-03-01"
SCALE = 0.03
UNIT_HEADERS = ("Manufacturer", "ManufacturerModelName", "SoftwareVersions", "DetectorID",
                "DeviceSerialNumber", "KVP", "DetectorType", "BitsStored",
                "PhotometricInterpretation", "PixelSpacing")

# SHA-256 of the pixels and windows of 3 exams (seed 5, scale 0.0625, artifact_rate 0.5) as
# synth drew them before the drift options existed: a default run must not change a byte.
GOLDEN = {
    "north": "b20d2059d249e20b02581fbd907d7da8a563b49fde2c9d2bca8a02e340f3dff1",
    "east": "eef195a543ae46619e7189380d1a9c4a00bea709a96973bb8b1ee32752ff529e",
}


def exams(count: int, site: str = "north", scale: float = SCALE, date: str = DATE,
          **options: object) -> list[SynthExam]:
    return list(iter_exams(count, date, site, 4, scale=scale, **options))  # type: ignore[arg-type]


def views(exam: SynthExam) -> list[pydicom.Dataset]:
    return [instance.dataset for instance in exam.instances if instance.name != "report"]


def displayed(ds: pydicom.Dataset) -> np.ndarray:
    """Pixels as a fraction of full scale, high = dense, whatever the photometry."""
    values = ds.pixel_array.astype(np.float64) / (2**ds.BitsStored - 1)
    return 1.0 - values if ds.PhotometricInterpretation == "MONOCHROME1" else values


def pixel_noise(ds: pydicom.Dataset) -> float:
    """Robust noise estimate: MAD of horizontal neighbour differences (texture is smoother)."""
    diff = np.diff(displayed(ds), axis=1)
    return float(np.median(np.abs(diff - np.median(diff))) * 1.4826 / np.sqrt(2))


def contrast(ds: pydicom.Dataset) -> float:
    """Spread of the smoothed image (air to dense tissue), noise averaged out."""
    low, high = np.percentile(ndimage.gaussian_filter(displayed(ds), 4), (5, 95))
    return float(high - low)


# --- vendor change ----------------------------------------------------------------------


def test_vendor_change_swaps_the_unit_but_keeps_the_sites_population() -> None:
    own, replaced = exams(6), exams(6, vendor="siemens")
    siemens = PROFILES["siemens"]
    assert profile_for_site("north").key == "ge"
    for before, after in zip(own, replaced, strict=True):
        assert after.plan == before.plan  # patient, findings, lesion sizes, density, BI-RADS
        assert after.plan.findings == before.plan.findings
        assert after.plan.density_level == before.plan.density_level
        for ds, old in zip(views(after), views(before), strict=True):
            assert ds.Manufacturer == "SIEMENS" and old.Manufacturer == "GE MEDICAL SYSTEMS"
            assert ds.ManufacturerModelName == siemens.model
            assert ds.SoftwareVersions == siemens.software
            assert float(ds.PixelSpacing[0]) == pytest.approx(siemens.spacing_mm / SCALE, rel=1e-4)
            assert (ds.BitsStored, ds.PhotometricInterpretation) == (12, "MONOCHROME2")
            assert ds.Rows != old.Rows
    assert any(exam.plan.positive for exam in own)


def test_unknown_vendor_is_a_permanent_error_naming_the_known_ones() -> None:
    with pytest.raises(PermanentError) as caught:
        iter_exams(1, DATE, "north", 4, vendor="philips")
    message = str(caught.value)
    assert "'philips'" in message
    assert all(key in message for key in ("fujifilm", "ge", "hologic", "siemens"))


# --- detector degradation ---------------------------------------------------------------


def test_degraded_detector_keeps_the_units_headers_with_noisier_flatter_images() -> None:
    healthy, aged = exams(2, scale=0.125), exams(2, scale=0.125, detector_degradation=0.8)
    for before, after in zip(healthy, aged, strict=True):
        assert after.plan == before.plan
        for ds, old in zip(views(after), views(before), strict=True):
            assert ds.SOPInstanceUID == old.SOPInstanceUID
            for keyword in UNIT_HEADERS:
                assert ds.get(keyword) == old.get(keyword), keyword
            assert pixel_noise(ds) > 1.5 * pixel_noise(old)
            assert contrast(ds) < 0.9 * contrast(old)


def gain_seen(site: str, date: str, view: int) -> tuple[np.ndarray, np.ndarray]:
    """The gain field as it shows in a view: aged / healthy smoothed pixels, in the breast."""
    pair = [exams(1, site, 0.125, date, vendor="hologic", detector_degradation=d)[0]
            for d in (0.0, 0.8)]
    healthy, aged = (ndimage.gaussian_filter(displayed(views(e)[view]), 6) for e in pair)
    breast = healthy > 0.25 * healthy.max()
    ratio = aged / np.maximum(healthy, 1e-6)
    return ratio / np.median(ratio[breast]), breast


def test_gain_non_uniformity_sits_at_the_same_detector_pixels_every_day() -> None:
    # L-CC on one day, R-CC (drawn mirrored, then flipped) a week later: same detector.
    first, first_breast = gain_seen("general", DATE, 1)
    later, later_breast = gain_seen("general", "2025-03-09", 0)
    both = first_breast & later_breast
    assert both.mean() > 0.1
    assert np.corrcoef(first[both], later[both])[0, 1] > 0.8
    assert np.ptp(first[both]) > 0.05  # visible, not a rounding effect


def test_gain_field_has_the_documented_amplitude_and_only_when_degraded() -> None:
    unit = PROFILES["ge"]
    assert detector_gain("north", unit, 64, 52) is None
    aged = exams(1, detector_degradation=0.5)[0].profile
    gain = detector_gain("north", aged, 64, 52)
    assert gain is not None and gain.shape == (64, 52)
    assert float(gain.mean()) == pytest.approx(1.0, abs=1e-3)
    assert float(np.ptp(gain)) == pytest.approx(0.12 * 0.5, rel=0.02)
    finer = detector_gain("north", aged, 127, 103)  # every other pixel: the 64x52 grid
    assert finer is not None
    np.testing.assert_allclose(gain, finer[::2, ::2], atol=2e-3)  # same field at every scale
    elsewhere = detector_gain("east", aged, 64, 52)
    assert elsewhere is not None and not np.allclose(gain, elsewhere)


def test_no_degradation_leaves_todays_pixels_byte_identical() -> None:
    for site, digest in GOLDEN.items():
        for degradation in (None, 0.0):
            batch = (
                iter_exams(3, DATE, site, 5, scale=0.0625, artifact_rate=0.5)
                if degradation is None
                else iter_exams(3, DATE, site, 5, scale=0.0625, artifact_rate=0.5,
                                detector_degradation=degradation)
            )
            sha = hashlib.sha256()
            for exam in batch:
                for ds in views(exam):
                    sha.update(bytes(ds.PixelData))
                    sha.update(f"{ds.WindowCenter} {ds.WindowWidth}".encode())
            assert sha.hexdigest() == digest, (site, degradation)


@pytest.mark.parametrize("degradation", [1.5, -0.1, float("nan")])
def test_degradation_out_of_range_is_a_permanent_error(degradation: float) -> None:
    with pytest.raises(PermanentError, match=r"detector degradation must be in \[0, 1\]"):
        iter_exams(1, DATE, "north", 4, detector_degradation=degradation)


# --- truth CSV and CLI ------------------------------------------------------------------


def truth(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_truth_csv_records_the_vendor_and_the_degradation(tmp_path: Path) -> None:
    result = run(2, DATE, "north", 4, push=False, out_dir=tmp_path / "dcm", scale=SCALE,
                 progress=False, vendor="siemens", detector_degradation=0.4)
    rows = truth(result.truth_file)
    assert tuple(rows[0]) == TRUTH_COLUMNS
    assert [(r["vendor"], r["manufacturer"], float(r["detector_degradation"])) for r in rows] == [
        ("siemens", "SIEMENS", 0.4)] * 2
    default = truth(run(1, DATE, "north", 4, push=False, scale=SCALE, progress=False).truth_file)
    assert (default[0]["vendor"], float(default[0]["detector_degradation"])) == ("ge", 0.0)


def test_cli_passes_both_options_and_reports_bad_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["synth", "--exams", "1", "--date", DATE, "--site", "north", "--no-push",
            "--scale", str(SCALE), "--json"]
    assert cli.main([*base, "--vendor", "fujifilm", "--detector-degradation", "0.25"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = truth(out["truth_file"])
    assert (row["vendor"], float(row["detector_degradation"])) == ("fujifilm", 0.25)
    for bad, named in ((["--vendor", "agfa"], "argument --vendor: unknown vendor 'agfa'"),
                       (["--detector-degradation", "1.5"], "argument --detector-degradation: 1.5")):
        with pytest.raises(SystemExit) as refused:  # refused before any work
            cli.main([*base, *bad])
        assert refused.value.code == 2
        assert named in capsys.readouterr().err
