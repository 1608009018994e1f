"""The exam-completeness rules of mammo_manifest.v2 and the frozen-dataset contract
mammo_dataset.v1 on planted data: a valid table passes; each planted violation fails the
expectation that guards it, on the frame and column it is about, with the planted count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.errors import DataContractViolation
from pipelines.validation.checkpoint import check
from pipelines.validation.contracts import CONTRACTS_DIR, load_contract
from pipelines.validation.run import enforce
from tests.contracts.test_manifest_contract import good_manifest

MANIFEST_V2 = load_contract(CONTRACTS_DIR / "mammo_manifest.v2.json")
DATASET_V1 = load_contract(CONTRACTS_DIR / "mammo_dataset.v1.json")
SPLIT_OF_EXAM = ["train"] * 6 + ["val"] * 3 + ["test"] * 3
POSITIVE_EXAMS = {0, 3, 6, 9}


def good_dataset() -> pd.DataFrame:
    """12 exams of 12 patients, 6/3/3 exams in train/val/test, positives in each split."""
    frame = good_manifest(exams=12)
    exam_no = frame.exam_id.str[3:7].map(lambda h: int(h, 16))
    frame["label"] = [int(e in POSITIVE_EXAMS and side == "L")
                      for e, side in zip(exam_no, frame.laterality, strict=True)]
    frame["birads"] = frame.label.map({0: 1, 1: 4})
    frame["pixel_std"] = 0.2
    frame["image_file"] = "images/" + frame.exam_id + "/" + frame.view + ".npy"
    frame["split"] = exam_no.map(lambda e: SPLIT_OF_EXAM[e])
    return frame.drop(columns=["image_path", "ingest_seq"])


def failures(frame: pd.DataFrame, contract: Any = DATASET_V1) -> list[dict[str, Any]]:
    return check(frame, contract).failed


def test_the_contracts_declare_their_frames_and_sources() -> None:
    assert MANIFEST_V2.frames == ["rows", "exams"] and MANIFEST_V2.source == "images"
    assert DATASET_V1.frames == ["rows", "exams", "patients", "splits"]
    assert DATASET_V1.source == "dataset"
    v1 = json.loads((CONTRACTS_DIR / "mammo_manifest.v1.json").read_text())["expectations"]
    v2 = json.loads(MANIFEST_V2.path.read_text())["expectations"]
    schema = "expect_table_columns_to_match_set"
    # v2 keeps every v1 rule; its schema adds label_source (label provenance)
    assert [e for e in v2[:len(v1)] if e["type"] != schema] == [e for e in v1 if e["type"] != schema]
    [old_columns] = [e["kwargs"]["column_set"] for e in v1 if e["type"] == schema]
    [new_columns] = [e["kwargs"]["column_set"] for e in v2 if e["type"] == schema]
    assert set(new_columns) - set(old_columns) == {"label_source"}


def test_an_unknown_label_source_fails_the_v2_label_domain() -> None:
    frame = good_manifest()
    frame.loc[[1, 2], "label_source"] = "guess"
    [failure] = failures(frame, MANIFEST_V2)
    assert failure["reason"].startswith(
        "expect_column_values_to_be_in_set on label_source: 2 offending rows")


def test_a_valid_manifest_passes_v2_and_a_valid_dataset_passes_v1() -> None:
    assert failures(good_manifest(), MANIFEST_V2) == []
    assert failures(good_dataset()) == []


def test_an_exam_missing_a_view_fails_completeness_naming_the_exam() -> None:
    frame = good_manifest()
    frame = frame[~((frame.exam_id == frame.exam_id[4]) & (frame.view == "R-MLO"))]
    found = {(f["frame"], f["kwargs"]["column"]): f for f in failures(frame, MANIFEST_V2)}
    assert set(found) == {("exams", "view_count"), ("exams", "distinct_view_count")}
    failure = found["exams", "view_count"]
    assert failure["expectation"] == "expect_column_values_to_be_between"
    assert failure["unexpected_count"] == 1 and failure["examples"] == [frame.exam_id.iloc[4]]
    assert failure["reason"].startswith(
        "expect_column_values_to_be_between on view_count per exam: 1 offending rows (e.g. ex-0001")


def test_an_exam_with_two_patients_fails() -> None:
    frame = good_manifest()
    frame.loc[0, "patient_id"] = "pt-other"
    [failure] = failures(frame, MANIFEST_V2)
    assert (failure["frame"], failure["kwargs"]["column"], failure["unexpected_count"]) == (
        "exams", "patient_count", 1)


def _move_one_view(frame: pd.DataFrame) -> pd.DataFrame:
    # one view of a test patient's exam leaks into train: that patient is in two splits
    frame.loc[frame.index[frame.split == "test"][0], "split"] = "train"
    return frame


def _second_exam_in_other_split(frame: pd.DataFrame) -> pd.DataFrame:
    # patients 1 and 7 (train, val) get a second exam of patient 10's (test)
    for exam in (1, 7):
        frame.loc[frame.exam_id == f"ex-{exam:04x}a1b2", "patient_id"] = "pt-000ac3d4"
    return frame


def _set(column: str, value: Any, rows: list[int]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype(object)
        for r in rows:
            frame.at[r, column] = value
        return frame
    return plant


def _no_positive_in(split: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame.split == split, "label"] = 0
        return frame
    return plant


def _all_positive_in(split: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame.split == split, "label"] = 1
        return frame
    return plant


# case: (plant, frame, expectation, column, offending rows of that frame)
PLANTED = {
    "patient in two splits (one view moved)": (
        _move_one_view, "patients", "expect_column_values_to_be_between", "split_count", 1),
    "patient in two splits (two exams)": (
        _second_exam_in_other_split, "patients", "expect_column_values_to_be_between", "split_count", 1),
    "no positive exam in val": (
        _no_positive_in("val"), "splits", "expect_column_values_to_be_between", "positive_exams", 1),
    "every test exam positive": (
        _all_positive_in("test"), "splits", "expect_column_values_to_be_between", "positive_share", 1),
    "flat image": (_set("pixel_std", 0.0, [3, 17]), "rows", "expect_column_values_to_be_between",
                   "pixel_std", 2),
    "saturated image": (_set("pixel_mean", 1.0, [5]), "rows", "expect_column_values_to_be_between",
                        "pixel_mean", 1),
    "unknown split": (_set("split", "holdout", [0, 1, 2, 3]), "rows", "expect_column_values_to_be_in_set",
                      "split", 4),
    "unlabelled view": (_set("label", None, [8]), "rows", "expect_column_values_to_not_be_null", "label", 1),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_a_planted_dataset_violation_names_frame_expectation_column_and_count(case: str) -> None:
    plant, frame_name, expectation, column, bad = PLANTED[case]
    failed = failures(plant(good_dataset()))
    hit = [f for f in failed if f["frame"] == frame_name and f["kwargs"].get("column") == column]
    assert len(hit) == 1, failed
    assert hit[0]["expectation"] == expectation and hit[0]["unexpected_count"] == bad
    assert f"{expectation} on {column}" in hit[0]["reason"] and f": {bad} offending rows" in hit[0]["reason"]
    assert {f["frame"] for f in failed} <= {frame_name, "splits"}  # nothing unrelated fires


def test_a_missing_split_fails_the_split_set() -> None:
    frame = good_dataset()
    failed = failures(frame[frame.split != "val"].reset_index(drop=True))
    assert [(f["frame"], f["expectation"]) for f in failed] == [
        ("splits", "expect_column_distinct_values_to_equal_set")]
    assert "observed" in failed[0]["reason"]


def test_a_duplicate_sop_instance_in_the_dataset_fails() -> None:
    frame = good_dataset()
    frame.loc[9, "instance_id"] = frame.loc[2, "instance_id"]
    [failure] = failures(frame)
    assert (failure["kwargs"]["column"], failure["unexpected_count"]) == ("instance_id", 2)


def test_enforce_renders_data_docs_and_raises_with_the_summary(isolated_settings: Path) -> None:
    report = enforce(good_dataset(), DATASET_V1)
    index = Path(str(report.data_docs))
    assert index.name == "index.html" and index.is_file()
    assert report.pages and all(Path(p).is_file() and p.endswith(".html") for p in report.pages)
    assert report.frame_rows == {"rows": 48, "exams": 12, "patients": 12, "splits": 3}
    assert report.success and report.failed_expectations == 0
    saved = json.loads(Path(report.report).read_text())
    assert saved["suite"] == "mammo_dataset.v1" and saved["data_docs"] == str(index)

    with pytest.raises(DataContractViolation) as caught:
        enforce(_move_one_view(good_dataset()), DATASET_V1)
    message = str(caught.value)
    assert "expect_column_values_to_be_between on split_count per patient: 1 offending rows" in message
    assert str(index) in message
    saved = json.loads(Path(report.report).read_text())
    assert saved["success"] is False and saved["failed_expectations"] == 1
    assert "mammo_dataset" in index.read_text()
