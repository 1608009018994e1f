"""The Mammography CAD SR (TID 4000) written beside the Comprehensive SR: built from
synthetic MG exams in memory, checked with dicom3tools (dciodvfy) and dcmtk (dsrdump, which
checks the IOD's relationship constraints), and its marks traced back to the source pixels.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicom_builders import breast_pixels, mg_image

from pipelines.deid import without_pixel_data
from pipelines.imaging.preprocess import model_input_box, peak_location, preprocess, view_pixels
from pipelines.screening import cad_sr
from pipelines.screening.collect import collect_view
from pipelines.screening.writeback import ExamFinding, ViewFinding, build, encode, plan_uids
from pipelines.tasks import load as load_tasks
from tests.unit.dicom_builders import sr_items, synth_mammo_views

MAMMOGRAPHY_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
REASON = "foreign object: 2 bright blobs over 0.98 of the range (limit 0)"
SCORES = {"R-CC": 0.12, "L-CC": 0.34, "R-MLO": 0.81, "L-MLO": 0.27}
PEAKS = {"R-CC": (2, 1), "L-CC": (5, 4), "R-MLO": (0, 0), "L-MLO": (7, 2)}  # heatmap cells


def _view(ds: pydicom.Dataset, *, discount: str = "R-MLO") -> ViewFinding:
    """A view as screening scores it: the real model input, an 8x6 heatmap hot in one cell."""
    view = f"{ds.ImageLaterality}-{ds.ViewPosition}"
    heat = np.full((8, 6), 0.05, np.float32)
    heat[PEAKS[view]] = 0.95
    return ViewFinding(view=view, source=ds, score=SCORES[view],
                       image=preprocess(ds, view[0], 128, 96), heatmap=heat,
                       discounted_reason=REASON if view == discount else None)


def _exam(views: list[ViewFinding], *, flagged: bool = True, exam_score: float = 0.3) -> ExamFinding:
    return ExamFinding(task="mammo", exam_score=exam_score, suspicion=7, flagged=flagged,
                       model_name="mammo-classifier", model_version="3", views=tuple(views))


@pytest.fixture(scope="module")
def synth_views() -> list[pydicom.Dataset]:
    return synth_mammo_views()


@pytest.fixture(scope="module")
def built(synth_views: list[pydicom.Dataset], tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[ExamFinding, pydicom.Dataset, Path]:
    """The finding, its CAD SR read back from Part 10 bytes, and the file."""
    finding = _exam([_view(ds) for ds in synth_views])
    _, objects = build(finding)
    assert [o.SOPClassUID for o in objects[:2]] == ["1.2.840.10008.5.1.4.1.1.88.33", MAMMOGRAPHY_CAD_SR]
    path = tmp_path_factory.mktemp("cad_sr") / "cad.dcm"
    path.write_bytes(encode(objects[1]))
    return finding, pydicom.dcmread(path), path


def _meaning(item: pydicom.Dataset) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeMeaning) if "ConceptNameCodeSequence" in item else ""


def _child(item: pydicom.Dataset, meaning: str) -> pydicom.Dataset:
    return next(c for c in item.ContentSequence if _meaning(c) == meaning)


def _resolve(sr: pydicom.Dataset, path: list[int]) -> pydicom.Dataset:
    """The content item a ReferencedContentItemIdentifier points at."""
    assert path[0] == 1
    item = sr
    for position in path[1:]:
        item = item.ContentSequence[position - 1]
    return item


def _findings(sr: pydicom.Dataset) -> dict[str, pydicom.Dataset]:
    """Single image findings by the SOP instance their Center is selected from."""
    out = {}
    for item in sr_items(sr.ContentSequence):
        if _meaning(item) == "Single Image Finding":
            ref = _child(_child(item, "Center"), "")
            image = _resolve(sr, list(ref.ReferencedContentItemIdentifier))
            assert ref.RelationshipType == "SELECTED FROM" and image.ValueType == "IMAGE"
            out[str(image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)] = item
    return out


def test_dciodvfy_and_dsrdump_find_no_errors(built: Any) -> None:
    assert shutil.which("dciodvfy"), "dciodvfy (Debian dicom3tools) is missing: run `make bootstrap`"
    _, _, path = built
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    report = done.stdout + done.stderr
    assert "MammographyCADSR" in report
    assert not [line for line in report.splitlines() if line.startswith("Error")], report
    dump = subprocess.run(["dsrdump", "+Pl", str(path)], capture_output=True, text=True, check=False)
    assert dump.returncode == 0 and "Mammography CAD SR Document" in dump.stdout
    # dcmtk checks the IOD's relationship constraints (by-reference ones too), not templates
    complaints = [line for line in dump.stderr.splitlines()
                  if line.strip() and "template constraints not yet supported" not in line]
    assert complaints == [], dump.stderr


def test_root_is_the_mammography_cad_report_in_the_source_study(built: Any) -> None:
    finding, sr, _ = built
    src = finding.views[0].source
    assert sr.SOPClassUID == MAMMOGRAPHY_CAD_SR and sr.Modality == "SR"
    assert sr.ConceptNameCodeSequence[0].CodeValue == "111036"
    assert sr.ConceptNameCodeSequence[0].CodingSchemeDesignator == "DCM"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "4000"
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "AccessionNumber", "StudyDate"):
        assert sr[keyword].value == src[keyword].value, keyword
    assert sr.Manufacturer == "radflow"
    assert sr.SeriesDescription == "radflow mammo CAD-SR mammo-classifier v3"
    assert sr.PreliminaryFlag == "PRELIMINARY" and sr.VerificationFlag == "UNVERIFIED"
    assert [_meaning(c) for c in sr.ContentSequence] == [
        "Language of Content Item and Descendants", "Image Library",
        "CAD Processing and Findings Summary", "Summary of Detections", "Summary of Analyses"]
    evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                for series in s.ReferencedSeriesSequence for i in series.ReferencedSOPSequence}
    assert evidence == {str(v.source.SOPInstanceUID) for v in finding.views}


def test_image_library_lists_every_view_with_laterality_and_view(built: Any) -> None:
    finding, sr, _ = built
    entries = _child(sr, "Image Library").ContentSequence
    assert len(entries) == 4
    for view, entry in zip(finding.views, entries, strict=True):
        assert entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == view.source.SOPInstanceUID
        side = _child(entry, "Image Laterality").ConceptCodeSequence[0].CodeMeaning
        assert side == {"R": "Right breast", "L": "Left breast"}[view.view[0]]
        code = _child(entry, "Image View").ConceptCodeSequence[0]
        assert code.CodeValue == {"CC": "399162004", "MLO": "399368009"}[view.view[2:]]
        assert _child(entry, "Patient Orientation Row").TextValue == view.source.PatientOrientation[0]


def test_one_mark_per_scored_view_at_its_heatmap_peak(built: Any) -> None:
    finding, sr, _ = built
    marks = _findings(sr)
    scored = [v for v in finding.views if not v.discounted_reason]
    assert set(marks) == {str(v.source.SOPInstanceUID) for v in scored}  # not R-MLO
    for view in scored:
        mark = marks[str(view.source.SOPInstanceUID)]
        prob = _child(mark, "Probability of cancer").MeasuredValueSequence[0]
        assert float(prob.NumericValue) == pytest.approx(100 * view.score)
        assert prob.MeasurementUnitsCodeSequence[0].CodeValue == "%"
        intent = _child(mark, "Rendering Intent").ConceptCodeSequence[0].CodeValue
        assert intent == ("111150" if view.score >= finding.exam_score else "111151")
        assert _child(mark, "Algorithm Name").TextValue == "mammo-classifier"
        assert _child(mark, "Algorithm Version").TextValue == "3"
        center = _child(mark, "Center")
        assert center.GraphicType == "POINT"
        column, row = center.GraphicData
        assert 0 <= column <= view.source.Columns and 0 <= row <= view.source.Rows
        box = model_input_box(view_pixels(view.source, 128), view.source, view.view)
        expected = peak_location(view.heatmap, view.source, view.view, box)
        assert (column, row) == pytest.approx(expected, abs=0.01)
    # R-CC is stored chest wall right: its model input is mirrored, so the peak in heatmap
    # column 1 of 6 lies a quarter of the crop's width in from the crop's right edge
    r_cc = next(v for v in finding.views if v.view == "R-CC")
    left, right = model_input_box(view_pixels(r_cc.source, 128), r_cc.source, "R-CC")[2:]
    column = _child(marks[str(r_cc.source.SOPInstanceUID)], "Center").GraphicData[0]
    assert column == pytest.approx(right - 0.25 * (right - left), abs=0.01)


def test_summary_names_the_algorithm_and_the_failed_view(built: Any) -> None:
    finding, sr, _ = built
    summary = _child(sr, "CAD Processing and Findings Summary")
    assert summary.ConceptCodeSequence[0].CodeValue == "111244"  # not all succeeded; with findings
    assert _child(summary, "Algorithm Name").TextValue == "mammo-classifier"
    assert _child(summary, "Algorithm Version").TextValue == "3"
    text = _child(summary, "Impression Description").TextValue
    assert text.startswith("Flagged for reading") and "suspicion 7 of 10" in text
    assert f"R-MLO left out of the exam score by image QC: {REASON}" in text
    detections = _child(sr, "Summary of Detections")
    assert detections.ConceptCodeSequence[0].CodeMeaning == "Partially Succeeded"

    def views_in(container: str) -> set[str]:
        found = set()
        for detection in _child(detections, container).ContentSequence:
            assert _child(detection, "Algorithm Name").TextValue == "mammo-classifier"
            ref = _child(detection, "")
            library = _resolve(sr, list(ref.ReferencedContentItemIdentifier))
            found.add(str(library.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
        return found

    uid = {v.view: str(v.source.SOPInstanceUID) for v in finding.views}
    assert views_in("Failed Detections") == {uid["R-MLO"]}
    assert views_in("Successful Detections") == {uid["R-CC"], uid["L-CC"], uid["L-MLO"]}
    analyses = _child(sr, "Summary of Analyses")
    assert analyses.ConceptCodeSequence[0].CodeMeaning == "Succeeded"
    analysis = _child(_child(analyses, "Successful Analyses"), "Analysis Performed")
    assert _child(analysis, "Algorithm Version").TextValue == "3"


def test_an_unflagged_exam_only_offers_its_marks(synth_views: list[pydicom.Dataset]) -> None:
    finding = _exam([_view(ds, discount="") for ds in synth_views], flagged=False, exam_score=0.1)
    sr = cad_sr.content(finding)
    intents = {_child(m, "Rendering Intent").ConceptCodeSequence[0].CodeValue
               for m in _findings(sr).values()}
    assert intents == {"111151"} and len(_findings(sr)) == 4
    summary = _child(sr, "CAD Processing and Findings Summary")
    assert summary.ConceptCodeSequence[0].CodeValue == "111242"  # all succeeded; with findings
    assert _child(summary, "Impression Description").TextValue.startswith("Not flagged")
    assert _child(sr, "Summary of Detections").ConceptCodeSequence[0].CodeMeaning == "Succeeded"


def _marked_mammogram(laterality: str) -> tuple[pydicom.Dataset, tuple[float, float]]:
    """A full-size view (odd size: block averaging drops a row and a column) with a bright
    disk inside the breast; the disk's centre (column, row) in its pixels."""
    rows, cols = 2101, 1703
    pixels = breast_pixels(rows, cols, laterality=laterality, seed=3)
    depth = 0.35 * cols  # from the chest wall, which is stored on the side of the laterality
    column, row = (cols - 1 - depth if laterality == "R" else depth), 0.3 * rows
    yy, xx = np.mgrid[0:rows, 0:cols]
    pixels[(yy - row) ** 2 + (xx - column) ** 2 <= 25**2] = 4095
    return mg_image(pixels, laterality=laterality, position="CC"), (column + 0.5, row + 0.5)


@pytest.mark.parametrize("laterality", ["R", "L"])
def test_a_planted_peak_maps_back_to_where_it_is_in_the_original(laterality: str) -> None:
    """The model input is the breast crop, resized, mirrored for a chest wall on the right:
    a heatmap peak where the model input shows a planted disk marks the disk's pixels."""
    ds, (column, row) = _marked_mammogram(laterality)
    image = preprocess(ds, laterality, 128, 96)
    i, j = np.unravel_index(int(np.argmax(image)), image.shape)
    heat = np.zeros(image.shape, np.float32)  # a heatmap cell per model input pixel
    heat[i, j] = 0.9
    view = ViewFinding(view=f"{laterality}-CC", source=ds, score=0.9, image=image, heatmap=heat)
    box = cad_sr.region(view)
    assert box is not None
    top, bottom, left, right = box
    assert (bottom - top) < ds.Rows and (right - left) < 0.8 * ds.Columns  # really cropped
    step = ((right - left) / 96, (bottom - top) / 128)  # source pixels per model input pixel
    mark = _findings(cad_sr.content(_exam([view], exam_score=0.9)))[str(ds.SOPInstanceUID)]
    found = _child(mark, "Center").GraphicData
    assert abs(found[0] - column) <= 2 * step[0] and abs(found[1] - row) <= 2 * step[1], (found, column, row)

    # publish hands over headers without pixels: the same mark from the box it passes
    header = without_pixel_data(ds)
    boxed = dataclasses.replace(view, source=header, input_box=box)
    again = _findings(cad_sr.content(_exam([boxed], exam_score=0.9)))[str(ds.SOPInstanceUID)]
    assert list(_child(again, "Center").GraphicData) == list(found)
    # ... and no mark at all when it passes neither pixels nor a box
    blind = cad_sr.content(_exam([dataclasses.replace(view, source=header)], exam_score=0.9))
    assert _findings(blind) == {}
    summary = _child(blind, "CAD Processing and Findings Summary")
    assert summary.ConceptCodeSequence[0].CodeValue == "111241"  # all succeeded; without findings
    assert f"No mark on {laterality}-CC" in _child(summary, "Impression Description").TextValue


@pytest.mark.parametrize("laterality", ["R", "L"])
def test_the_nightly_write_back_marks_the_planted_peak(laterality: str) -> None:
    """Screening keeps headers without pixels: the box `collect_view` found beside the model
    input, handed on as publish hands it, still places the mark on the planted disk."""
    ds, (column, row) = _marked_mammogram(laterality)
    prepared = collect_view(ds, f"{laterality}-CC", load_tasks()["mammo"], 128, 96, 60.0)
    assert "PixelData" not in prepared.header and prepared.input_box is not None
    image = prepared.image
    i, j = np.unravel_index(int(np.argmax(image)), image.shape)
    heat = np.zeros(image.shape, np.float32)  # a heatmap cell per model input pixel
    heat[i, j] = 0.9
    view = ViewFinding(view=prepared.view, source=prepared.header, score=0.9, image=image,
                       heatmap=heat, input_box=prepared.input_box)
    top, bottom, left, right = prepared.input_box
    step = ((right - left) / 96, (bottom - top) / 128)  # source pixels per model input pixel
    mark = _findings(cad_sr.content(_exam([view], exam_score=0.9)))[str(ds.SOPInstanceUID)]
    found = _child(mark, "Center").GraphicData
    assert abs(found[0] - column) <= 2 * step[0] and abs(found[1] - row) <= 2 * step[1], (found, column, row)


def test_a_radiograph_task_keeps_no_input_box() -> None:
    ds, _ = _marked_mammogram("L")
    prepared = collect_view(ds, "PA", load_tasks()["cxr-nodule"], 128, 96, 60.0)
    assert prepared.input_box is None  # its model input is the whole image, never marked


def test_only_mammograms_get_a_cad_sr(synth_views: list[pydicom.Dataset]) -> None:
    mg = _exam([_view(ds) for ds in synth_views])
    uids = plan_uids(mg)
    assert uids.cad_series and uids.cad_instance and uids == plan_uids(mg)
    assert len({uids.cad_series, uids.sr_series, uids.sc_series}) == 3
    dx_sources = []
    for ds in synth_views:
        dx = pydicom.dcmread(io.BytesIO(encode(ds)))
        dx.Modality = "DX"
        dx_sources.append(dx)
    dx = _exam([_view(ds) for ds in dx_sources])
    assert plan_uids(dx).cad_series is None
    _, objects = build(dx)
    assert len(objects) == 5 and MAMMOGRAPHY_CAD_SR not in {o.SOPClassUID for o in objects}
