"""Frames derived from a manifest so that table-level rules become column expectations.

Each derived frame has one row per unit the rule is about, so a failed expectation counts
offending exams, patients or splits ("2 offending rows" of the `exams` frame = 2 exams).
The rules themselves (bounds, sets) live in the contract files, never here.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from pipelines.errors import DataContractViolation


def rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The table itself."""
    return frame


def exams(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per exam: how many views it has, how many distinct views and patients."""
    _need(frame, "exams", ["exam_id", "view", "patient_id"])
    grouped = frame.groupby("exam_id", dropna=False)
    return pd.DataFrame({
        "view_count": grouped.size(),
        "distinct_view_count": grouped["view"].nunique(),
        "patient_count": grouped["patient_id"].nunique(),
    }).rename_axis("exam_id").reset_index()


def patients(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: the number of splits the patient's views are in."""
    _need(frame, "patients", ["patient_id", "split"])
    grouped = frame.groupby("patient_id", dropna=False)
    return pd.DataFrame({"split_count": grouped["split"].nunique()}).rename_axis(
        "patient_id").reset_index()


def splits(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per split: exams, positive exams (any positive view) and their share."""
    _need(frame, "splits", ["exam_id", "split", "label"])
    per_exam = frame.groupby(["split", "exam_id"]).label.max().reset_index()
    grouped = per_exam.groupby("split")
    out = pd.DataFrame({"exams": grouped.size(), "positive_exams": grouped.label.sum()})
    out["positive_share"] = out.positive_exams / out.exams
    return out.rename_axis("split").reset_index().astype(
        {"exams": "int64", "positive_exams": "int64", "positive_share": "float64"})


# The column naming each row of a frame, quoted in failure messages (pseudonyms only).
KEYS = {"rows": "instance_id", "exams": "exam_id", "patients": "patient_id", "splits": "split"}
DERIVED: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "rows": rows, "exams": exams, "patients": patients, "splits": splits,
}


def derive(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The frame called `name` in a contract's `meta.frame`."""
    if name not in DERIVED:
        raise DataContractViolation(
            f"unknown frame {name!r} in a data contract (known: {', '.join(DERIVED)})")
    return DERIVED[name](frame)


def _need(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataContractViolation(f"frame {name} needs column(s) {', '.join(missing)}")
