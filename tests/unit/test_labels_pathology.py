"""Pathology outcomes joined by exam pseudonym override BI-RADS, with provenance per view."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.errors import LabelFileInvalid
from pipelines.labels.birads import BiradsReading, read_report
from pipelines.labels.pathology import label_views, merge_labels, read_pathology, relabel_rows


def _pathology(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "pathology.csv"
    path.write_text("exam_id,laterality,outcome,date\n" + rows, encoding="utf-8")
    return path


def test_pathology_overrides_birads_for_its_breast_only(tmp_path: Path) -> None:
    outcomes = read_pathology(_pathology(tmp_path, "ex1,L,benign,2026-03-20\n"))
    reading = read_report("RIGHT BREAST: BI-RADS 1.\nLEFT BREAST: mass. BI-RADS 4.")
    labels = label_views("ex1", reading, outcomes)
    assert {v: (lab.label, lab.provenance) for v, lab in labels.items()} == {
        "R-CC": (0, "birads-report"), "L-CC": (0, "pathology"),
        "R-MLO": (0, "birads-report"), "L-MLO": (0, "pathology"),
    }
    assert labels["L-CC"].birads == 4


def test_malignant_pathology_turns_an_unknown_breast_positive(tmp_path: Path) -> None:
    outcomes = read_pathology(_pathology(tmp_path, "ex1,right,Malignant,2026-04-02\n"))
    reading = read_report("RIGHT BREAST: asymmetry. BI-RADS 0.\nLEFT BREAST: BI-RADS 1.")
    labels = label_views("ex1", reading, outcomes)
    assert (labels["R-MLO"].label, labels["R-MLO"].provenance) == (1, "pathology")


def test_provenance_is_addendum_or_none(tmp_path: Path) -> None:
    reading = read_report("RIGHT BREAST: BI-RADS 3.\nLEFT BREAST: BI-RADS 0.\n"
                          "ADDENDUM: left breast BI-RADS 1 after spot views.")
    labels = label_views("ex9", reading, {})
    assert (labels["L-CC"].label, labels["L-CC"].provenance) == (0, "birads-addendum")
    assert (labels["R-CC"].label, labels["R-CC"].provenance) == (None, "none")
    assert label_views("ex9", BiradsReading({}, {}), {})["R-CC"].provenance == "none"


def test_malignant_outranks_benign_and_bilateral_rows_cover_both(tmp_path: Path) -> None:
    outcomes = read_pathology(_pathology(
        tmp_path, "ex1,L,malignant,2026-03-20\nex1,L,benign,2026-03-21\nex2,B,benign,2026-01-05\n"))
    assert outcomes[("ex1", "L")].malignant
    assert {k for k in outcomes if k[0] == "ex2"} == {("ex2", "R"), ("ex2", "L")}


def test_pathology_outside_the_follow_up_window_does_not_count(tmp_path: Path) -> None:
    outcomes = read_pathology(_pathology(tmp_path, "ex1,L,malignant,2029-01-01\n"))
    reading = read_report("Overall BI-RADS 1.")
    late = label_views("ex1", reading, outcomes, exam_date=dt.date(2026, 3, 1))
    assert (late["L-CC"].label, late["L-CC"].provenance) == (0, "birads-report")
    assert label_views("ex1", reading, outcomes)["L-CC"].provenance == "pathology"


def test_merge_covers_every_exam_and_view() -> None:
    readings = {"b": read_report("BI-RADS 2"), "a": read_report("")}
    labels = merge_labels(readings, {})
    assert [(x.exam_id, x.view) for x in labels][:2] == [("a", "R-CC"), ("a", "L-CC")]
    assert len(labels) == 8


@pytest.mark.parametrize(
    ("row", "message"),
    [("ex1,X,benign,2026-01-01\n", "laterality 'X'"), ("ex1,L,atypia,2026-01-01\n", "outcome 'atypia'"),
     ("ex1,L,benign,01/02/2026\n", "not ISO"), (",L,benign,2026-01-01\n", "empty exam_id")],
)
def test_bad_rows_fail_naming_the_row_and_value(tmp_path: Path, row: str, message: str) -> None:
    with pytest.raises(LabelFileInvalid, match=message):
        read_pathology(_pathology(tmp_path, row))


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("exam_id,outcome\nex1,benign\n", encoding="utf-8")
    with pytest.raises(LabelFileInvalid, match="laterality, date"):
        read_pathology(path)


def test_manifest_rows_are_relabelled_by_pathology_within_the_window(tmp_path: Path) -> None:
    outcomes = read_pathology(_pathology(tmp_path, "ex1,L,malignant,2026-05-01\nex2,R,benign,2028-01-01\n"))
    rows = [
        {"exam_id": "ex1", "view": "L-CC", "laterality": "L", "study_date": "2026-03-01", "label": None},
        {"exam_id": "ex1", "view": "R-CC", "laterality": "R", "study_date": "2026-03-01", "label": 0},
        {"exam_id": "ex2", "view": "R-CC", "laterality": "R", "study_date": "2026-03-01", "label": 1,
         "label_source": "birads-addendum"},
    ]
    out = relabel_rows(rows, outcomes)
    assert [(r["label"], r["label_source"]) for r in out] == [
        (1, "pathology"), (0, "birads-report"), (1, "birads-addendum")]
    assert rows[0]["label"] is None  # the input is not modified
