"""Write-back objects: the SR and the heatmap secondary captures, built from synthetic MG
datasets in memory, checked with pydicom, dcmtk (dsrdump, dcmdump) and dicom3tools
(dciodvfy); the replace logic against an in-memory stand-in of Orthanc's REST calls.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicom_builders import PATIENT_ID, PATIENT_NAME, screening_exam

from pipelines.errors import PermanentError
from pipelines.pacs.ours import is_ours
from pipelines.screening import overlays
from pipelines.screening.writeback import (
    ExamFinding,
    ViewFinding,
    build,
    encode,
    plan_uids,
    write_back,
)
from tests.unit.dicom_builders import sr_items, synth_mammo_views

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
REASON = "foreign object: 2 bright blobs over 0.98 of the range (limit 0)"


def _finding(datasets: list[pydicom.Dataset], *, task: str = "mammo", version: str = "3",
             scores: tuple[float, ...] = (0.12, 0.34, 0.81, 0.27), discount: str = "R-MLO",
             seed: int = 0) -> ExamFinding:
    rng = np.random.default_rng(seed)
    views = []
    for ds, score in zip(datasets, scores, strict=True):
        view = f"{ds.ImageLaterality}-{ds.ViewPosition}"
        heat = np.zeros((8, 6), np.float32)
        heat[2:4, 1:3] = 0.95  # one hot region, the rest cold
        views.append(ViewFinding(view=view, source=ds, score=score,
                                 image=rng.random((128, 96), dtype=np.float32), heatmap=heat,
                                 discounted_reason=REASON if view == discount else None))
    return ExamFinding(task=task, exam_score=0.55, suspicion=7, flagged=True,
                       model_name="mammo-classifier", model_version=version, views=tuple(views))


@pytest.fixture(scope="module")
def synth_views() -> list[pydicom.Dataset]:
    return synth_mammo_views()


@pytest.fixture(scope="module")
def built(synth_views: list[pydicom.Dataset], tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[ExamFinding, list[pydicom.Dataset], list[Path]]:
    """The finding, its objects read back from Part 10 bytes, and their files."""
    finding = _finding(synth_views)
    _, objects = build(finding)
    out = tmp_path_factory.mktemp("writeback")
    paths, read = [], []
    for i, ds in enumerate(objects):
        path = out / f"{i}.dcm"
        path.write_bytes(encode(ds))
        paths.append(path)
        read.append(pydicom.dcmread(path))
    return finding, read, paths


def _groups(sr: pydicom.Dataset) -> dict[str, pydicom.Dataset]:
    """Measurement groups by tracking identifier."""
    groups = {}
    for item in sr_items(sr.ContentSequence):
        if item.ValueType == "CONTAINER" and item.ConceptNameCodeSequence[0].CodeMeaning \
                == "Measurement Group":
            ident = next(c.TextValue for c in item.ContentSequence
                         if c.ConceptNameCodeSequence[0].CodeMeaning == "Tracking Identifier")
            groups[ident] = item
    return groups


def _child(group: pydicom.Dataset, meaning: str) -> pydicom.Dataset:
    return next(c for c in group.ContentSequence
                if c.ConceptNameCodeSequence[0].CodeMeaning == meaning)


def test_sr_files_under_the_source_study(built: Any) -> None:
    finding, objects, _ = built
    sr, src = objects[0], finding.views[0].source
    assert sr.SOPClassUID == COMPREHENSIVE_SR and sr.Modality == "SR"
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "PatientBirthDate",
                    "AccessionNumber", "StudyDate", "StudyID"):
        assert sr[keyword].value == src[keyword].value, keyword
    assert sr.Manufacturer == "radflow"
    assert sr.SeriesDescription == "radflow mammo SR mammo-classifier v3"
    assert sr.SeriesInstanceUID not in {v.source.SeriesInstanceUID for v in finding.views}
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"


def test_sr_holds_per_view_findings_referencing_the_sources(built: Any) -> None:
    finding, objects, _ = built
    groups = _groups(objects[0])
    assert set(groups) == {"R-CC", "L-CC", "R-MLO", "L-MLO", "exam"}
    for view in finding.views:
        group = groups[view.view]
        prob = _child(group, "Probability of cancer")
        assert float(prob.MeasuredValueSequence[0].NumericValue) == pytest.approx(view.score)
        refs = [c.ReferencedSOPSequence[0] for c in group.ContentSequence if c.ValueType == "IMAGE"]
        assert [r.ReferencedSOPInstanceUID for r in refs] == [view.source.SOPInstanceUID]
        assert refs[0].ReferencedSOPClassUID == view.source.SOPClassUID
        included = _child(group, "Included in exam score").ConceptCodeSequence[0].CodeMeaning
        assert included == ("No" if view.view == "R-MLO" else "Yes")
    assert _child(groups["R-MLO"], "Reason excluded from exam score").TextValue == REASON
    assert not any(c.ConceptNameCodeSequence[0].CodeMeaning.startswith("Reason")
                   for c in groups["R-CC"].ContentSequence)
    # every source is listed as evidence of the SR
    evidence = {inst.ReferencedSOPInstanceUID
                for study in objects[0].CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence
                for inst in series.ReferencedSOPSequence}
    assert evidence == {v.source.SOPInstanceUID for v in finding.views}


def test_sr_holds_the_exam_suspicion_and_flag(built: Any) -> None:
    _, objects, _ = built
    exam = _groups(objects[0])["exam"]
    assert float(_child(exam, "Suspicion score (1-10)").MeasuredValueSequence[0].NumericValue) == 7
    assert float(_child(exam, "Exam malignancy score").MeasuredValueSequence[0].NumericValue) \
        == pytest.approx(0.55)
    assert _child(exam, "Flagged for reading").ConceptCodeSequence[0].CodeMeaning == "Yes"
    assert len([c for c in exam.ContentSequence if c.ValueType == "IMAGE"]) == 4


def test_dsrdump_parses_the_sr(built: Any) -> None:
    _, _, paths = built
    done = subprocess.run(["dsrdump", "+Pl", str(paths[0])], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "Comprehensive SR Document" in done.stdout
    assert "Suspicion score (1-10)" in done.stdout and REASON in done.stdout
    assert "E:" not in done.stderr and "W:" not in done.stderr, done.stderr


@pytest.mark.parametrize("index", [0, 2, 5])  # SR, first and last heatmap
def test_dciodvfy_finds_no_errors(built: Any, index: int) -> None:
    assert shutil.which("dciodvfy"), "dciodvfy (Debian dicom3tools) is missing: run `make bootstrap`"
    _, _, paths = built
    done = subprocess.run(["dciodvfy", str(paths[index])], capture_output=True, text=True,
                          check=False)
    report = done.stdout + done.stderr
    assert ("ComprehensiveSR" if index == 0 else "SCImage") in report
    assert not [line for line in report.splitlines() if line.startswith("Error")], report


def test_secondary_captures_overlay_each_view(built: Any) -> None:
    finding, objects, paths = built
    scs = objects[2:]  # after the SR and the CAD SR
    assert len(scs) == 4 and len({sc.SeriesInstanceUID for sc in scs}) == 1
    assert len({sc.SOPInstanceUID for sc in scs}) == 4
    for view, sc, path in zip(finding.views, scs, paths[2:], strict=True):
        assert sc.SOPClassUID == SECONDARY_CAPTURE
        assert sc.StudyInstanceUID == view.source.StudyInstanceUID
        assert sc.PatientID == view.source.PatientID
        assert sc.Manufacturer == "radflow"
        assert sc.SeriesDescription == "radflow mammo heatmaps mammo-classifier v3"
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == view.source.SOPInstanceUID
        assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
        assert sc.BurnedInAnnotation == "NO"
        pixels = sc.pixel_array.astype(int)
        assert pixels.shape == (*view.image.shape, 3)
        hot, cold = pixels[40:56, 24:40], pixels[100:, 60:]  # heatmap 0.95 there, 0 here
        assert (hot[..., 0] > hot[..., 2] + 100).all()  # red/yellow tint
        assert (cold[..., 0] == cold[..., 1]).all() and (cold[..., 1] == cold[..., 2]).all()
        grey = np.rint(np.clip(view.image[100:, 60:], 0, 1) * 255)
        assert np.array_equal(cold[..., 0], grey)
        done = subprocess.run(["dcmdump", "-E", str(path)], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0 and "SecondaryCaptureImageStorage" in done.stdout


def test_overlay_orientation_follows_the_mirrored_source(built: Any) -> None:
    finding, objects, _ = built
    by_view = {v.view: sc for v, sc in zip(finding.views, objects[2:], strict=True)}
    assert list(finding.views[0].source.PatientOrientation) == ["P", "L"]  # R-CC as stored
    assert list(by_view["R-CC"].PatientOrientation) == ["A", "L"]  # mirrored: chest wall left
    assert list(by_view["L-MLO"].PatientOrientation) == ["A", "FR"]


def test_overlay_tint_grows_with_the_heatmap() -> None:
    image = np.full((32, 32), 0.5, np.float32)
    heat = np.array([[0.0, 0.3], [0.65, 1.0]], np.float32)
    rgb = overlays.overlay(image, heat).astype(int)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.int_
    low, mid, top = rgb[0, 0], rgb[24, 0], rgb[31, 31]
    assert low[0] == low[1] == low[2] == 128
    assert top[0] > mid[0] > 128 and top[2] < mid[2] < 128


def test_uids_are_deterministic_and_follow_the_content(synth_views: list[pydicom.Dataset]) -> None:
    a, b = plan_uids(_finding(synth_views)), plan_uids(_finding(synth_views))
    assert a == b
    assert all(uid.startswith("2.25.") and len(uid) <= 64 for uid in
               (a.sr_series, a.sr_instance, a.sc_series, *a.sc_instances.values()))
    changed = plan_uids(_finding(synth_views, scores=(0.12, 0.34, 0.82, 0.27)))
    other_task = plan_uids(_finding(synth_views, task="chest"))
    other_version = plan_uids(_finding(synth_views, version="4"))
    for other in (changed, other_task, other_version):
        assert other.sr_instance != a.sr_instance and other.sc_series != a.sc_series


def test_builds_when_optional_type2_attributes_are_absent() -> None:
    datasets = screening_exam(rows=64, cols=48)  # no PatientSex, StudyID, StudyTime
    for ds in datasets:
        assert "PatientSex" not in ds
    _, objects = build(_finding(datasets))
    sr = pydicom.dcmread(io.BytesIO(encode(objects[0])))
    assert sr.PatientID == PATIENT_ID and sr.PatientSex == ""
    assert "PatientSex" not in datasets[0]  # the sources are not modified


@pytest.mark.parametrize(("change", "message"), [
    ({"suspicion": 11}, "suspicion must be 1-10, got 11"),
    ({"task": "mammo screening"}, "task 'mammo screening'"),
    ({"exam_score": 1.5}, "exam score must be in [0, 1], got 1.5"),
    ({"views": ()}, "at least one view"),
])
def test_bad_findings_are_refused_by_name(synth_views: list[pydicom.Dataset],
                                          change: dict[str, Any], message: str) -> None:
    finding = dataclasses.replace(_finding(synth_views), **change)
    with pytest.raises(PermanentError) as err:
        build(finding)
    assert message in str(err.value)


def test_views_of_two_studies_are_refused(synth_views: list[pydicom.Dataset]) -> None:
    other = screening_exam(rows=64, cols=48)
    finding = _finding([*synth_views[:2], *other[2:]])
    with pytest.raises(PermanentError, match="from 2 studies"):
        build(finding)


def test_is_ours_needs_manufacturer_and_task() -> None:
    assert is_ours("radflow", "radflow mammo SR m v3", "mammo")
    assert not is_ours("radflow", "radflow chest SR m v3", "mammo")
    assert not is_ours("HOLOGIC, Inc.", "radflow mammo SR m v3", "mammo")
    assert not is_ours("radflow", "radflow mammography SR", "mammo")


class FakeOrthanc:
    """Orthanc's store / list / delete calls over a dict, for the replace logic only."""

    def __init__(self) -> None:
        self.instances: dict[str, pydicom.Dataset] = {}  # SOPInstanceUID -> dataset
        self.deleted_series: list[str] = []

    def upload(self, blob: bytes) -> dict[str, Any]:
        ds = pydicom.dcmread(io.BytesIO(blob))
        status = "AlreadyStored" if ds.SOPInstanceUID in self.instances else "Success"
        self.instances.setdefault(str(ds.SOPInstanceUID), ds)
        return {"Status": status, "ParentStudy": f"study-{ds.StudyInstanceUID[-6:]}",
                "ID": ds.SOPInstanceUID}

    def study_series(self, study_id: str) -> list[dict[str, Any]]:
        series: dict[str, dict[str, Any]] = {}
        for uid, ds in self.instances.items():
            s = series.setdefault(str(ds.SeriesInstanceUID), {
                "ID": f"series-{ds.SeriesInstanceUID}", "Instances": [],
                "MainDicomTags": {"SeriesInstanceUID": ds.SeriesInstanceUID,
                                  "Manufacturer": ds.get("Manufacturer", ""),
                                  "SeriesDescription": ds.get("SeriesDescription", "")}})
            s["Instances"].append(uid)
        return list(series.values())

    def series_instances(self, series_id: str) -> list[dict[str, Any]]:
        uid = series_id.removeprefix("series-")
        return [{"ID": k, "MainDicomTags": {"SOPInstanceUID": k}}
                for k, ds in self.instances.items() if ds.SeriesInstanceUID == uid]

    def delete_series(self, series_id: str) -> None:
        self.deleted_series.append(series_id)
        uid = series_id.removeprefix("series-")
        self.instances = {k: v for k, v in self.instances.items() if v.SeriesInstanceUID != uid}

    def delete_instance(self, instance_id: str) -> None:
        del self.instances[instance_id]

    def radflow(self, task: str) -> list[pydicom.Dataset]:
        return [ds for ds in self.instances.values()
                if is_ours(str(ds.get("Manufacturer", "")), str(ds.get("SeriesDescription", "")),
                           task)]


def test_rerun_replaces_and_never_duplicates(synth_views: list[pydicom.Dataset],
                                             caplog: pytest.LogCaptureFixture) -> None:
    orthanc = FakeOrthanc()
    for ds in synth_views:  # the originals, as the modality sent them
        orthanc.upload(encode(ds))
    other_task = _finding(synth_views, task="chest")
    write_back(orthanc, other_task)  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG)
    first = write_back(orthanc, _finding(synth_views))  # type: ignore[arg-type]
    assert (first.instances_stored, first.replaced) == (6, 0)
    again = write_back(orthanc, _finding(synth_views))  # type: ignore[arg-type]
    assert (again.instances_stored, again.replaced) == (0, 0)
    assert again.sr_sop_instance_uid == first.sr_sop_instance_uid
    new_model = write_back(orthanc, _finding(synth_views, version="4",  # type: ignore[arg-type]
                                             scores=(0.2, 0.3, 0.4, 0.5)))
    assert (new_model.instances_stored, new_model.replaced) == (6, 6)
    ours = orthanc.radflow("mammo")
    assert len(ours) == 6 and {ds.Modality for ds in ours} == {"SR", "OT"}
    assert len({ds.SeriesInstanceUID for ds in ours if ds.Modality == "SR"}) == 2  # SR, CAD SR
    assert {ds.SeriesDescription for ds in ours} == {"radflow mammo SR mammo-classifier v4",
                                                     "radflow mammo CAD-SR mammo-classifier v4",
                                                     "radflow mammo heatmaps mammo-classifier v4"}
    assert len(orthanc.radflow("chest")) == 6  # another task's objects are left alone
    assert {ds.SOPInstanceUID for ds in synth_views} <= set(orthanc.instances)  # originals kept
    # no identifier reaches the log
    text = caplog.text
    src = synth_views[0]
    for value in (src.PatientID, str(src.PatientName), src.StudyInstanceUID, src.AccessionNumber,
                  PATIENT_NAME):
        assert value not in text
    assert "6 stored, 6 replaced" in text


def test_stray_instances_in_a_kept_series_are_removed(synth_views: list[pydicom.Dataset]) -> None:
    orthanc = FakeOrthanc()
    finding = _finding(synth_views)
    write_back(orthanc, finding)  # type: ignore[arg-type]
    # a fifth heatmap in the same series, as if left by an interrupted older write
    _, objects = build(finding)
    stray = objects[2].copy()
    stray.SOPInstanceUID = pydicom.uid.generate_uid()
    orthanc.upload(encode(stray))
    result = write_back(orthanc, finding)  # type: ignore[arg-type]
    assert result.replaced == 1 and len(orthanc.radflow("mammo")) == 6


def test_a_refused_store_fails_before_anything_is_deleted(
        synth_views: list[pydicom.Dataset]) -> None:
    orthanc = FakeOrthanc()
    write_back(orthanc, _finding(synth_views))  # type: ignore[arg-type]
    before = set(orthanc.instances)

    def refuse(blob: bytes) -> dict[str, Any]:
        return {"Status": "Failure", "ParentStudy": "x"}

    orthanc.upload = refuse  # type: ignore[method-assign]
    with pytest.raises(PermanentError, match="status Failure"):
        write_back(orthanc, _finding(synth_views, version="4"))  # type: ignore[arg-type]
    assert set(orthanc.instances) == before  # the earlier result stays whole


def test_library_warnings_never_quote_the_patient(caplog: pytest.LogCaptureFixture) -> None:
    """highdicom warns about a one-component PatientName, quoting it: that must not escape."""
    import warnings

    datasets = screening_exam(rows=64, cols=48)
    for ds in datasets:
        ds.PatientName = "ZWIRNER"  # one component: highdicom warns with the name in it
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        _, objects = build(_finding(datasets))
    assert not [w for w in escaped if "ZWIRNER" in str(w.message)]
    assert "ZWIRNER" not in caplog.text
    assert "warning(s) while building" in caplog.text  # the warning was seen, scrubbed
    assert str(objects[0].PatientName) == "ZWIRNER"  # the PACS object keeps the identity
