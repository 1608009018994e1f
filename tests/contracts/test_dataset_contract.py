"""The exam-completeness rules of mammo_manifest.v2/v3 and the frozen-dataset contracts
mammo_dataset.v1/v2 on planted data: a valid table passes; each planted violation fails the
expectation that guards it, on the frame and column it is about, with the planted count.
A later version keeps every rule of the one before it; manifest v3 and dataset v2 add the
breast density column (A-D, null when the report states none).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.contracts.checkpoint import check
from pipelines.contracts.enforce import enforce
from pipelines.contracts.suites import CONTRACTS_DIR, load_contract
from pipelines.errors import DataContractViolation
from tests.contracts.test_manifest_contract import good_manifest

MANIFEST_V2 = load_contract(CONTRACTS_DIR / "mammo_manifest.v2.json")
MANIFEST_V3 = load_contract(CONTRACTS_DIR / "mammo_manifest.v3.json")
DATASET_V1 = load_contract(CONTRACTS_DIR / "mammo_dataset.v1.json")
DATASET_V2 = load_contract(CONTRACTS_DIR / "mammo_dataset.v2.json")
SCHEMA = "expect_table_columns_to_match_set"
SPLIT_OF_EXAM = ["train"] * 6 + ["val"] * 3 + ["test"] * 3
POSITIVE_EXAMS = {0, 3, 6, 9}


def good_dataset(density: bool = True) -> pd.DataFrame:
    """12 exams of 12 patients, 6/3/3 exams in train/val/test, positives in each split.

    Without `density` the frame has the columns of a dataset built before v2 (for v1).
    """
    frame = good_manifest(exams=12)
    exam_no = frame.exam_id.str[3:7].map(lambda h: int(h, 16))
    frame["label"] = [int(e in POSITIVE_EXAMS and side == "L")
                      for e, side in zip(exam_no, frame.laterality, strict=True)]
    frame["birads"] = frame.label.map({0: 1, 1: 4})
    frame["pixel_std"] = 0.2
    frame["image_file"] = "images/" + frame.exam_id + "/" + frame.view + ".npy"
    frame["split"] = exam_no.map(lambda e: SPLIT_OF_EXAM[e])
    return frame.drop(columns=["image_path", "ingest_seq"] + ([] if density else ["density"]))


def failures(frame: pd.DataFrame, contract: Any = DATASET_V2) -> list[dict[str, Any]]:
    return check(frame, contract).failed


def _rules_and_columns(contract: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The expectations other than the schema, and the schema's column set."""
    spec = json.loads(contract.path.read_text())["expectations"]
    [columns] = [e["kwargs"]["column_set"] for e in spec if e["type"] == SCHEMA]
    return [e for e in spec if e["type"] != SCHEMA], columns


def test_the_contracts_declare_their_frames_and_sources() -> None:
    assert MANIFEST_V2.frames == ["rows", "exams"] and MANIFEST_V2.source == "images"
    assert DATASET_V1.frames == ["rows", "exams", "patients", "splits"]
    assert DATASET_V1.source == "dataset"
    v1 = json.loads((CONTRACTS_DIR / "mammo_manifest.v1.json").read_text())["expectations"]
    v2 = json.loads(MANIFEST_V2.path.read_text())["expectations"]
    schema = SCHEMA
    # v2 keeps every v1 rule; its schema adds label_source (label provenance)
    assert [e for e in v2[:len(v1)] if e["type"] != schema] == [e for e in v1 if e["type"] != schema]
    [old_columns] = [e["kwargs"]["column_set"] for e in v1 if e["type"] == schema]
    [new_columns] = [e["kwargs"]["column_set"] for e in v2 if e["type"] == schema]
    assert set(new_columns) - set(old_columns) == {"label_source"}


@pytest.mark.parametrize(("old", "new"), [(MANIFEST_V2, MANIFEST_V3), (DATASET_V1, DATASET_V2)])
def test_the_density_versions_keep_every_rule_and_add_only_the_density_column(old: Any, new: Any) -> None:
    assert (new.name, new.version, new.source, new.frames) == (
        old.name, old.version + 1, old.source, old.frames)
    old_rules, old_columns = _rules_and_columns(old)
    new_rules, new_columns = _rules_and_columns(new)
    assert new_rules[:len(old_rules)] == old_rules
    [added] = new_rules[len(old_rules):]
    assert (added["type"], added["kwargs"]) == (
        "expect_column_values_to_be_in_set", {"column": "density", "value_set": ["A", "B", "C", "D"]})
    assert [c for c in new_columns if c != "density"] == old_columns and "density" in new_columns


def test_an_unknown_label_source_fails_the_v2_label_domain() -> None:
    frame = good_manifest()
    frame.loc[[1, 2], "label_source"] = "guess"
    [failure] = failures(frame, MANIFEST_V2)
    assert failure["reason"].startswith(
        "expect_column_values_to_be_in_set on label_source: 2 offending rows")


def test_a_valid_manifest_passes_v2_and_a_valid_dataset_passes_v1() -> None:
    assert failures(good_manifest(), MANIFEST_V2) == []
    assert failures(good_dataset(density=False), DATASET_V1) == []


def test_a_valid_manifest_passes_v3_and_a_valid_dataset_passes_v2() -> None:
    assert failures(good_manifest(), MANIFEST_V3) == []
    frame = good_dataset()
    assert frame.density.isna().any() and frame.density.notna().any()
    assert failures(frame) == []
    assert failures(frame.assign(density=None)) == []  # no report of the dataset states one


def test_the_dataset_schema_is_exact_so_density_needs_dataset_v2() -> None:
    [v1_failure] = failures(good_dataset(), DATASET_V1)  # a dataset built with density
    assert (v1_failure["frame"], v1_failure["expectation"]) == ("rows", SCHEMA)
    assert "'density'" in v1_failure["reason"]
    # a dataset built before density: the schema fails, and so does the rule on the missing column
    v2_failures = failures(good_dataset(density=False))
    assert {(f["expectation"], f["kwargs"].get("column")) for f in v2_failures} == {
        (SCHEMA, None), ("expect_column_values_to_be_in_set", "density")}


@pytest.mark.parametrize("contract", [MANIFEST_V3, DATASET_V2], ids=["manifest.v3", "dataset.v2"])
def test_a_density_outside_a_to_d_fails_naming_the_column_and_count(contract: Any) -> None:
    frame = good_dataset() if contract is DATASET_V2 else good_manifest(exams=12)
    frame["density"] = frame.density.astype(object)
    frame.loc[[0, 5, 9], "density"] = ["E", "c", "3"]
    [failure] = failures(frame, contract)
    assert (failure["frame"], failure["kwargs"]["column"], failure["unexpected_count"]) == (
        "rows", "density", 3)
    assert failure["reason"].startswith("expect_column_values_to_be_in_set on density: 3 offending rows")


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


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("case", list(PLANTED))
def test_a_planted_dataset_violation_names_frame_expectation_column_and_count(
    case: str, version: int
) -> None:
    plant, frame_name, expectation, column, bad = PLANTED[case]
    contract = DATASET_V2 if version == 2 else DATASET_V1
    failed = failures(plant(good_dataset(density=version == 2)), contract)
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
    report = enforce(good_dataset(), DATASET_V2)
    index = Path(str(report.data_docs))
    assert index.name == "index.html" and index.is_file()
    assert report.pages and all(Path(p).is_file() and p.endswith(".html") for p in report.pages)
    assert report.frame_rows == {"rows": 48, "exams": 12, "patients": 12, "splits": 3}
    assert report.success and report.failed_expectations == 0
    saved = json.loads(Path(report.report).read_text())
    assert saved["suite"] == "mammo_dataset.v2" and saved["data_docs"] == str(index)

    with pytest.raises(DataContractViolation) as caught:
        enforce(_move_one_view(good_dataset()), DATASET_V2)
    message = str(caught.value)
    assert "expect_column_values_to_be_between on split_count per patient: 1 offending rows" in message
    assert str(index) in message
    saved = json.loads(Path(report.report).read_text())
    assert saved["success"] is False and saved["failed_expectations"] == 1
    assert "mammo_dataset" in index.read_text()
