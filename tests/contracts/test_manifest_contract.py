"""The manifest data contract (data_contracts/mammo_manifest.v*.json) on planted data.

A good manifest passes; each planted violation fails the expectation that guards it, on
the right column, with exactly the planted rows counted. The planted cases run on v1 (the
first release) and on v3 (the latest, which adds the breast density domain).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from pipelines import db
from pipelines.contracts.checkpoint import check
from pipelines.contracts.enforce import validate_frame
from pipelines.contracts.suites import CONTRACTS_DIR, Contract, latest, load_contract, load_suite
from pipelines.domain import SCREENING_VIEWS

MANIFEST = CONTRACTS_DIR / "mammo_manifest.v1.json"
MANIFEST_V3 = CONTRACTS_DIR / "mammo_manifest.v3.json"
DENSITY_OF_EXAM = ["C", "B", None, "A", "D"]  # None: the report states no density


@pytest.fixture(scope="module")
def suite() -> Any:
    gx_suite, meta = load_suite(MANIFEST)
    assert meta["contract"] == "mammo_manifest" and meta["version"] == 1
    return gx_suite


@pytest.fixture(scope="module")
def contract_v3() -> Contract:
    """v3 runs through its frames (rows, and the derived per-exam frame)."""
    contract = load_contract(MANIFEST_V3)
    assert (contract.name, contract.version) == ("mammo_manifest", 3)
    return contract


def good_manifest(exams: int = 3) -> pd.DataFrame:
    """A valid manifest: `exams` exams x 4 views, every column of the images table."""
    rows = []
    for e in range(exams):
        positive = e == 0
        for i, view in enumerate(SCREENING_VIEWS):
            side, position = view.split("-")
            birads = 4 if positive and side == "L" else 1
            rows.append({
                "exam_id": f"ex-{e:04x}a1b2", "view": view, "patient_id": f"pt-{e:04x}c3d4",
                "instance_id": f"im-{e:04x}{i:02d}", "study_date": "2026-03-14",
                "laterality": side, "view_position": position, "modality": "MG",
                "manufacturer": ["HOLOGIC, Inc.", "SIEMENS", "GE MEDICAL SYSTEMS"][e % 3],
                "rows": 416, "columns": 328, "bits_stored": [12, 14, 12][e % 3],
                "pixel_spacing_mm": 0.07 + 0.01 * e,
                "photometric": "MONOCHROME2" if e % 2 == 0 else "MONOCHROME1",
                "patient_age": 48 + e, "birads": birads, "label": int(birads >= 4),
                "label_source": "birads-report", "density": DENSITY_OF_EXAM[e % len(DENSITY_OF_EXAM)],
                "image_path": f"/lake/images/study_date=2026-03-14/ex-{e:04x}/{view}.npy",
                "pixel_mean": 0.25 + 0.05 * i, "ingest_seq": 100 + e,
            })
    frame = pd.DataFrame(rows)
    assert list(frame.columns) == [c.name for c in db.images.columns]
    return frame


def test_a_valid_manifest_passes(suite: Any) -> None:
    assert validate_frame(good_manifest(), suite) == []


def test_a_valid_manifest_with_and_without_stated_densities_passes_v3(contract_v3: Contract) -> None:
    frame = good_manifest(exams=5)
    assert frame.density.isna().any() and set(frame.density.dropna()) == {"A", "B", "C", "D"}
    assert check(frame, contract_v3).failed == []
    assert check(frame.assign(density=None), contract_v3).failed == []  # no report states one


def test_the_latest_contract_knows_every_column_of_the_images_table() -> None:
    spec = json.loads(latest("mammo_manifest").read_text())
    column_sets = [e["kwargs"]["column_set"] for e in spec["expectations"]
                   if e["type"] == "expect_table_columns_to_match_set"]
    assert column_sets == [[c.name for c in db.images.columns]]


def _set(column: str, value: Any, rows: list[int]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = frame[column].astype(object)
        for r in rows:
            frame.at[r, column] = value
        return frame
    return plant


def _duplicate_key(frame: pd.DataFrame) -> pd.DataFrame:
    # A second R-CC of exam 1 (as a double-ingested instance would give).
    extra = frame.iloc[[4]].copy()
    extra["instance_id"] = "im-duplicate"
    return pd.concat([frame, extra], ignore_index=True)


def _with_col(v: str, side: str, position: str, rows: list[int]) -> Callable[..., pd.DataFrame]:
    def plant(frame: pd.DataFrame) -> pd.DataFrame:
        frame = _set("view", v, rows)(frame)
        return _set("view_position", position, rows)(_set("laterality", side, rows)(frame))
    return plant


PLANTED = {
    "modality CT": (_set("modality", "CT", [5]),
                    "expect_column_values_to_be_in_set", "modality", 1),
    "duplicate exam and view": (_duplicate_key,
                                "expect_compound_columns_to_be_unique", ["exam_id", "view"], 2),
    "unknown view R-XCCL": (_set("view", "R-XCCL", [2, 6]),
                            "expect_column_values_to_be_in_set", "view", 2),
    "pixel spacing 5 mm": (_set("pixel_spacing_mm", 5.0, [0, 1, 2]),
                           "expect_column_values_to_be_between", "pixel_spacing_mm", 3),
    "label 2": (_set("label", 2, [7]), "expect_column_values_to_be_in_set", "label", 1),
    "duplicate instance": (_set("instance_id", "im-000000", [9]),
                           "expect_column_values_to_be_unique", "instance_id", 2),
    "photometric RGB": (_set("photometric", "RGB", [3]),
                        "expect_column_values_to_be_in_set", "photometric", 1),
    "laterality B": (_with_col("R-CC", "B", "CC", [0]),
                     "expect_column_values_to_be_in_set", "laterality", 1),
    "missing patient": (_set("patient_id", None, [10, 11]),
                        "expect_column_values_to_not_be_null", "patient_id", 2),
}


# Only v3 knows the density column.
PLANTED_V3 = {
    "density E": (_set("density", "E", [1]), "expect_column_values_to_be_in_set", "density", 1),
    "lower-case density": (_set("density", "c", [0, 4]),
                           "expect_column_values_to_be_in_set", "density", 2),
    "pre-2013 number": (_set("density", "3", [6, 7, 8]),
                        "expect_column_values_to_be_in_set", "density", 3),
}


@pytest.mark.parametrize(("version", "case"), [(1, c) for c in PLANTED]
                         + [(3, c) for c in {**PLANTED, **PLANTED_V3}])
def test_a_planted_violation_is_reported_on_its_column_with_its_row_count(
    suite: Any, contract_v3: Contract, version: int, case: str
) -> None:
    plant, expectation, column, bad_rows = {**PLANTED, **PLANTED_V3}[case]
    frame = plant(good_manifest())
    # v3 also checks exam completeness on the per-exam frame (a duplicate view breaks it too;
    # tests/contracts/test_dataset_contract.py covers that frame): here, the rows
    failed = validate_frame(frame, suite) if version == 1 else [
        f for f in check(frame, contract_v3).failed if f["frame"] == "rows"]
    assert len(failed) == 1, failed
    failure = failed[0]
    assert failure["expectation"] == expectation
    where = failure["kwargs"].get("column", failure["kwargs"].get("column_list"))
    assert where == column
    assert failure["unexpected_count"] == bad_rows
    assert str(column) in failure["reason"] and str(bad_rows) in failure["reason"]


def test_several_violations_are_all_reported(suite: Any) -> None:
    frame = _set("modality", "CT", [0])(_set("label", 2, [1, 2])(good_manifest()))
    failed = {f["kwargs"].get("column"): f["unexpected_count"] for f in validate_frame(frame, suite)}
    assert failed == {"modality": 1, "label": 2}


def test_a_manifest_smaller_than_one_exam_fails_the_row_count(suite: Any) -> None:
    failed = validate_frame(good_manifest().iloc[:3], suite)
    assert [f["expectation"] for f in failed] == ["expect_table_row_count_to_be_between"]


def test_every_contract_file_is_named_name_dot_v_n_and_loads() -> None:
    files = sorted(p for p in CONTRACTS_DIR.iterdir() if not p.name.startswith("."))
    assert files
    for path in files:
        match = re.fullmatch(r"(?P<name>[a-z0-9_]+)\.v(?P<version>[0-9]+)\.json", path.name)
        assert match, f"{path.name} is not <name>.v<N>.json"
        gx_suite, meta = load_suite(path)
        assert gx_suite.name == path.name.removesuffix(".json")
        assert meta.get("contract") == match["name"]
        assert meta.get("version") == int(match["version"])
        assert len(gx_suite.expectations) == len(json.loads(path.read_text())["expectations"])
        assert latest(match["name"]).name.startswith(f"{match['name']}.v")
