"""Synthetic screening mammography: determinism, DICOM content, lesions, reports, push.

Everything runs at a tiny scale (about 120x100 pixels) so the module takes seconds. The
push tests talk to an in-process pynetdicom storage SCP on loopback, not to a network.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from pipelines import config
from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import OrthancUnavailable, PermanentError
from pipelines.synth import SynthExam, iter_exams, run
from pipelines.synth.exams import ExamPlan, plan_exam
from pipelines.synth.images import render_view
from pipelines.synth.report import parse_birads
from pipelines.synth.sites import PROFILES, geometry_for, profile_for_site

SCALE = 0.03
DATE = "2025-03-01"
VIEW_CODES = {"CC": "399162004", "MLO": "399368009"}
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RADFLOW_STATE_DIR", str(tmp_path / "state"))
    config.reset_settings()
    yield tmp_path / "state"
    config.reset_settings()


def exams(
    count: int, seed: int = 1, site: str = "general", patients: int | None = None
) -> list[SynthExam]:
    return list(iter_exams(count, DATE, site, seed, scale=SCALE, patients=patients))


def display(pixels: np.ndarray, photometric: str, max_value: int) -> np.ndarray:
    """Pixels with high = bright, whatever the photometric interpretation."""
    values = pixels.astype(np.float64)
    return max_value - values if photometric == "MONOCHROME1" else values


# --- determinism -------------------------------------------------------------------------


def encoded(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_same_arguments_give_identical_uids_and_bytes() -> None:
    first, second = exams(3), exams(3)
    for a, b in zip(first, second, strict=True):
        assert a.study_instance_uid == b.study_instance_uid
        for x, y in zip(a.instances, b.instances, strict=True):
            assert x.dataset.SOPInstanceUID == y.dataset.SOPInstanceUID
            assert encoded(x.dataset) == encoded(y.dataset)
            if x.name != "report":
                assert np.array_equal(x.dataset.pixel_array, y.dataset.pixel_array)


def test_exams_are_byte_identical_in_another_process_with_another_hash_seed() -> None:
    probe = (
        "import hashlib, io\n"
        "from pipelines.synth import iter_exams\n"
        f"exam = next(iter(iter_exams(1, {DATE!r}, 'north', 8, scale={SCALE})))\n"
        "for i in exam.instances:\n"
        "    b = io.BytesIO(); i.dataset.save_as(b, enforce_file_format=True)\n"
        "    print(hashlib.sha256(b.getvalue()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "PYTHONPATH": str(PROJECT)},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    exam = exams(1, seed=8, site="north")[0]
    assert other == [hashlib.sha256(encoded(i.dataset)).hexdigest() for i in exam.instances]


def test_different_seed_or_date_gives_different_exams() -> None:
    base = exams(2, seed=1)
    other_seed = exams(2, seed=2)
    other_date = list(iter_exams(2, "2025-03-02", "general", 1, scale=SCALE))
    for other in (other_seed, other_date):
        assert {e.study_instance_uid for e in base}.isdisjoint(e.study_instance_uid for e in other)
        assert not np.array_equal(
            base[0].instances[0].dataset.pixel_array, other[0].instances[0].dataset.pixel_array
        )


def test_exam_does_not_depend_on_batch_size() -> None:
    assert exams(5)[2].instances[1].dataset == exams(3)[2].instances[1].dataset


def test_date_formats_are_equivalent() -> None:
    a = next(iter(iter_exams(1, "2025-03-01", "general", 4, scale=SCALE)))
    b = next(iter(iter_exams(1, "20250301", "general", 4, scale=SCALE)))
    assert a.study_instance_uid == b.study_instance_uid


@pytest.mark.parametrize(
    "kwargs", [{"study_date": "2025-13-01"}, {"site": "a b"}, {"scale": 0.0}, {"exams": -1}]
)
def test_bad_arguments_raise_permanent_error(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"exams": 1, "study_date": DATE, "site": "general", "seed": 1}
    args.update(kwargs)
    with pytest.raises(PermanentError):
        run(**args, push=False, progress=False)  # type: ignore[arg-type]


# --- views and headers -------------------------------------------------------------------


def test_every_exam_has_four_views_with_correct_laterality_and_codes() -> None:
    for exam in exams(3):
        names = [i.name for i in exam.instances]
        assert names == [*SCREENING_VIEWS, "report"]
        series = {i.dataset.SeriesInstanceUID for i in exam.instances}
        assert len(series) == 5
        for instance in exam.instances[:4]:
            ds = instance.dataset
            side, position = instance.name.split("-")
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
            assert ds.Modality == "MG" and ds.StudyInstanceUID == exam.study_instance_uid
            assert ds.ImageLaterality == side and ds.ViewPosition == position
            code = ds.ViewCodeSequence[0]
            assert (code.CodeValue, code.CodingSchemeDesignator) == (VIEW_CODES[position], "SCT")
            assert ds.PresentationIntentType == "FOR PRESENTATION"
            assert ds.BodyPartExamined == "BREAST" and ds.BurnedInAnnotation == "NO"
            assert ds.PatientOrientation[0] == ("P" if side == "R" else "A")
            assert ds.BitsAllocated == 16 and ds.BitsStored in (12, 14)
            assert int(ds.pixel_array.max()) <= 2**ds.BitsStored - 1


def test_chest_wall_is_on_the_right_for_right_views() -> None:
    exam = exams(1, site="general")[0]
    for instance in exam.instances[:4]:
        pixels = instance.dataset.pixel_array.astype(np.float64)
        half = pixels.shape[1] // 2
        left, right = pixels[:, :half].mean(), pixels[:, half:].mean()
        assert (right > left) == (instance.dataset.ImageLaterality == "R")


def test_sites_map_to_distinct_vendors() -> None:
    manufacturers = {
        site: exams(1, site=site)[0].instances[0].dataset.Manufacturer
        for site in ("general", "north", "east", "south")
    }
    assert manufacturers["general"].startswith("HOLOGIC")
    assert manufacturers["north"].startswith("GE")
    assert len(set(manufacturers.values())) == 4
    assert profile_for_site("west") == profile_for_site("west")
    assert profile_for_site("west") in PROFILES.values()


def test_default_scale_gives_the_documented_matrix() -> None:
    geometry = geometry_for(PROFILES["hologic"], 0.125)
    assert (geometry.rows, geometry.cols) == (512, 416)
    assert geometry.spacing_mm == pytest.approx(0.52)


def test_monochrome1_vendor_stores_inverted_pixels() -> None:
    for site, photometric in (("north", "MONOCHROME1"), ("general", "MONOCHROME2")):
        ds = exams(1, site=site)[0].instances[1].dataset  # L-CC: air at the right edge
        assert ds.PhotometricInterpretation == photometric
        air = float(ds.pixel_array[:4, -4:].mean())
        max_value = 2**ds.BitsStored - 1
        if photometric == "MONOCHROME1":
            assert air > 0.9 * max_value and ds.PresentationLUTShape == "INVERSE"
            assert ds.VOILUTFunction == "SIGMOID"
        else:
            assert air < 0.1 * max_value and ds.PresentationLUTShape == "IDENTITY"
        breast = display(ds.pixel_array[ds.Rows // 2, :5], photometric, max_value).mean()
        assert breast > display(np.array([air]), photometric, max_value)[0] + 0.05 * max_value


# --- lesions -----------------------------------------------------------------------------


def first_positive(site: str, seed: int = 3) -> ExamPlan:
    for index in range(50):
        plan = plan_exam(seed, site, DATE, index, 50, 0.5)
        if plan.positive:
            return plan
    raise AssertionError("no positive exam in 50")


@pytest.mark.parametrize("site", ["general", "north", "east", "south"])
def test_positive_exam_shows_a_bright_mass_in_both_views_of_its_side(site: str) -> None:
    profile = profile_for_site(site)
    geometry = geometry_for(profile, 0.125)
    plan = first_positive(site)
    clean = dataclasses.replace(plan, findings=())
    for position in ("CC", "MLO"):
        with_mass = render_view(plan, profile, geometry, plan.lesion_side, position)
        without = render_view(clean, profile, geometry, plan.lesion_side, position)
        ((row, col, radius),) = with_mass.lesions
        inside = np.s_[row - radius // 2 : row + radius // 2, col - radius // 2 : col + radius // 2]
        gain = display(with_mass.pixels, profile.photometric, profile.max_value)[inside].mean() - (
            display(without.pixels, profile.photometric, profile.max_value)[inside].mean()
        )
        assert gain > 0.1 * profile.max_value, f"{site} {position}: mass adds only {gain:.0f}"
        other = "L" if plan.lesion_side == "R" else "R"
        assert not render_view(plan, profile, geometry, other, position).lesions


def test_negative_exams_have_no_mass() -> None:
    plans = [plan_exam(1, "general", DATE, i, 100, 0.3) for i in range(100)]
    for plan in plans:
        masses = [f for f in plan.findings if f.kind == "mass"]
        assert len(masses) == int(plan.positive)
        assert (plan.lesion_side != "") == plan.positive


# --- report and truth --------------------------------------------------------------------


def test_run_writes_readable_files_whose_report_matches_the_truth(
    tmp_path: Path, state_dir: Path
) -> None:
    out = tmp_path / "out"
    result = run(
        8, DATE, "north", 5, push=False, out_dir=out, scale=SCALE, positive_rate=0.5, progress=False
    )
    assert (result.exams, result.instances, result.stored) == (8, 40, 0)
    truth_path = Path(result.truth_file)
    assert truth_path == state_dir.resolve() / "synth" / f"truth-north-{DATE}-seed5.csv"
    rows = list(csv.DictReader(truth_path.open()))
    assert len(rows) == 8 and sum(int(r["label"]) for r in rows) == result.positives
    for row in rows:
        folder = out / f"{int(row['exam_index']):05d}"
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [f"{v}.dcm" for v in SCREENING_VIEWS] + ["report.dcm"]
        )
        for view in SCREENING_VIEWS:
            ds = pydicom.dcmread(folder / f"{view}.dcm")
            assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
            assert ds.StudyInstanceUID == row["study_instance_uid"]
        report = pydicom.dcmread(folder / "report.dcm")
        assert report.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.11" and report.Modality == "SR"
        assert (report.CompletionFlag, report.VerificationFlag) == ("COMPLETE", "VERIFIED")
        assert report.StudyInstanceUID == row["study_instance_uid"]
        assert report.ValueType == "CONTAINER"
        birads = parse_birads(report.ContentSequence[0].TextValue)
        assert (birads["R"], birads["L"]) == (int(row["birads_r"]), int(row["birads_l"]))
        if row["label"] == "1":
            side = row["lesion_side"]
            assert birads[side] in (4, 5) and birads["overall"] >= 4
        else:
            assert row["lesion_side"] == "" and {birads["R"], birads["L"]} <= {1, 2}


def test_positive_rate_is_respected_over_200_exams() -> None:
    result = run(200, DATE, "east", 11, push=False, scale=SCALE, progress=False)
    assert 0.22 <= result.positives / 200 <= 0.38
    none = sum(plan_exam(11, "east", DATE, i, 200, 0.0).positive for i in range(200))
    every = sum(plan_exam(11, "east", DATE, i, 200, 1.0).positive for i in range(200))
    assert (none, every) == (0, 200)


# --- identifiers -------------------------------------------------------------------------


def test_phi_looking_identifiers_are_present_for_deidentification() -> None:
    exam = exams(1)[0]
    study = dt.date.fromisoformat(DATE)
    for instance in exam.instances:
        ds = instance.dataset
        family, given, _ = str(ds.PatientName).split("^")
        assert family and given
        assert str(ds.PatientID).startswith("MRN") and str(ds.PatientID)[3:].isdigit()
        born = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
        age = study.year - born.year - ((study.month, study.day) < (born.month, born.day))
        assert 40 <= age <= 75 and ds.PatientAge == f"{age:03d}Y"
        assert ds.PatientSex == "F"
        for keyword in (
            "AccessionNumber",
            "StudyID",
            "ReferringPhysicianName",
            "InstitutionName",
            "InstitutionAddress",
            "OperatorsName",
            "StationName",
        ):
            assert str(ds.get(keyword, "")).strip(), keyword
        block = ds.private_block(0x0011, "RADFLOW SYNTH")
        assert block[0x01].value == ds.PatientID


def test_patient_pool_is_reused_on_other_dates() -> None:
    day_one = exams(4, patients=2)
    day_two = list(iter_exams(4, "2026-03-01", "general", 1, scale=SCALE, patients=2))
    ids = [e.instances[0].dataset.PatientID for e in day_one]
    assert ids[0] == ids[2] and ids[1] == ids[3] and ids[0] != ids[1]
    assert ids == [e.instances[0].dataset.PatientID for e in day_two]
    assert day_one[0].instances[0].dataset.PatientBirthDate == (
        day_two[0].instances[0].dataset.PatientBirthDate
    )
    uids = {e.study_instance_uid for e in day_one + day_two}
    assert len(uids) == 8


def test_progress_goes_to_stderr_without_phi(capsys: pytest.CaptureFixture[str]) -> None:
    run(3, DATE, "general", 9, push=False, scale=SCALE, progress=True)
    err = capsys.readouterr().err
    assert "synth: 3/3 exams, 15 instances" in err
    ds = exams(1, seed=9)[0].instances[0].dataset
    assert str(ds.PatientID) not in err and str(ds.PatientName).split("^")[0] not in err


# --- push --------------------------------------------------------------------------------


class StorageScp:
    """An in-process storage SCP on loopback that answers with a chosen status."""

    def __init__(self, status: int = 0x0000, *, drop_first: bool = False) -> None:
        from pynetdicom import AE, evt

        self.status = status
        self.drop_first = drop_first
        self.received: list[str] = []
        ae = AE(ae_title="ORTHANC")
        for sop_class in ("1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.88.11"):
            ae.add_supported_context(sop_class, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )
        assert server is not None
        self.server = server
        self.port = int(server.server_address[1])

    def _store(self, event: Any) -> int:
        if self.drop_first:
            self.drop_first = False
            event.assoc.abort()
            return 0xA700
        self.received.append(str(event.request.AffectedSOPInstanceUID))
        return self.status

    def close(self) -> None:
        self.server.shutdown()


ScpFactory = Callable[..., StorageScp]


@pytest.fixture
def scp_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScpFactory]:
    servers: list[StorageScp] = []

    def start(status: int = 0x0000, *, drop_first: bool = False) -> StorageScp:
        scp = StorageScp(status, drop_first=drop_first)
        servers.append(scp)
        monkeypatch.setenv("RADFLOW_ORTHANC_DICOM_PORT", str(scp.port))
        config.reset_settings()
        return scp

    yield start
    for scp in servers:
        scp.close()


def test_push_stores_every_instance_over_dicom(scp_factory: ScpFactory) -> None:
    scp = scp_factory(0xB000)  # a storage warning still counts as stored
    result = run(2, DATE, "south", 2, scale=SCALE, progress=False)
    assert result.stored == 10 and len(set(scp.received)) == 10


def test_push_reassociates_when_the_association_drops(scp_factory: ScpFactory) -> None:
    scp = scp_factory(drop_first=True)
    result = run(1, DATE, "general", 2, scale=SCALE, progress=False)
    assert result.stored == 5 and len(set(scp.received)) == 5


def test_push_failure_status_is_permanent_and_names_no_phi(scp_factory: ScpFactory) -> None:
    scp_factory(0xA700)
    with pytest.raises(PermanentError) as failure:
        run(1, DATE, "general", 2, scale=SCALE, progress=False)
    message = str(failure.value)
    assert "0xA700" in message and "exam 0" in message and "Mammography" in message
    ds = exams(1, seed=2)[0].instances[0].dataset
    assert str(ds.PatientID) not in message and ds.StudyInstanceUID not in message


def test_unreachable_orthanc_raises_orthanc_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RADFLOW_ORTHANC_DICOM_PORT", str(port))
    config.reset_settings()
    with pytest.raises(OrthancUnavailable, match=rf"127\.0\.0\.1:{port}.*RADFLOW.*ORTHANC"):
        run(1, DATE, "general", 2, scale=SCALE, progress=False)
