"""Pathology outcomes joined to exams by pseudonym, and the label of every view with its source.

The outcome file is a CSV with `exam_id` (the exam pseudonym, never a hospital
identifier), `laterality` (R, L, right, left, B, bilateral), `outcome` (malignant or
benign) and `date` (ISO). Pathology is the reference standard: where it exists for a
breast, it decides the label of that breast's views whatever the report said. An exam
without pathology keeps its BI-RADS label. Provenance per view is one of "pathology",
"birads-addendum", "birads-report" or "none" (no label).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import LabelFileInvalid
from pipelines.labels.birads import PROVENANCE_REPORT, BiradsReading, label_of

COLUMNS = ("exam_id", "laterality", "outcome", "date")
_SIDES = {"r": ("R",), "right": ("R",), "l": ("L",), "left": ("L",),
          "b": ("R", "L"), "bilateral": ("R", "L"), "both": ("R", "L")}
_OUTCOMES = {"malignant": True, "benign": False}
PROVENANCE_PATHOLOGY, PROVENANCE_NONE = "pathology", "none"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The pathology result of one breast of one exam."""

    exam_id: str
    side: str
    malignant: bool
    date: dt.date


@dataclasses.dataclass(frozen=True)
class ViewLabel:
    """The training label of one view and where it came from."""

    exam_id: str
    view: str
    birads: int | None
    label: int | None
    provenance: str


def _problem(values: Mapping[str, str]) -> tuple[str, str] | None:
    """(column, why) of the row's first value outside its domain, else None; `why` never
    quotes the value (a shifted column may hold an identifier)."""
    if not values["exam_id"]:
        return "exam_id", "is empty"
    if values["laterality"].lower() not in _SIDES:
        return "laterality", f"is not one of {', '.join(sorted(_SIDES))}"
    if values["outcome"].lower() not in _OUTCOMES:
        return "outcome", "is not malignant or benign"
    try:
        dt.date.fromisoformat(values["date"])
    except ValueError:
        return "date", "is not ISO (YYYY-MM-DD)"
    return None


def _parse(number: int, raw: Mapping[str, str | None]) -> list[Outcome]:
    values = {c: (raw.get(c) or "").strip() for c in COLUMNS}
    problem = _problem(values)
    if problem is not None:
        column, why = problem
        if column == "exam_id":
            raise LabelFileInvalid(f"pathology row {number}: empty exam_id")
        raise LabelFileInvalid(f"pathology row {number}: {column} {values[column]!r} {why}")
    date = dt.date.fromisoformat(values["date"])
    malignant, sides = _OUTCOMES[values["outcome"].lower()], _SIDES[values["laterality"].lower()]
    return [Outcome(values["exam_id"], side, malignant, date) for side in sides]


def _reader(fh: Iterable[str]) -> csv.DictReader[str]:
    reader = csv.DictReader(fh)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise LabelFileInvalid(f"pathology file lacks column(s) {', '.join(missing)}")
    return reader


def read_pathology(path: Path | str) -> dict[tuple[str, str], Outcome]:
    """Outcomes by (exam pseudonym, side); a malignant result outranks a benign one.

    Raises:
        LabelFileInvalid: a missing column or a row with a value outside its domain.
    """
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        reader = _reader(fh)
        outcomes: dict[tuple[str, str], Outcome] = {}
        for number, raw in enumerate(reader, start=2):
            for outcome in _parse(number, raw):
                key = (outcome.exam_id, outcome.side)
                known = outcomes.get(key)
                if known is None or (outcome.malignant and not known.malignant):
                    outcomes[key] = outcome
    return outcomes


@dataclasses.dataclass(frozen=True)
class PathologyRows:
    """A pathology file read leniently: `outcomes` of the valid rows as (row number,
    outcome), and `rejected` rows as (row number, column, why), none quoting a value."""

    outcomes: list[tuple[int, Outcome]]
    rejected: list[tuple[int, str, str]]


def read_pathology_rows(path: Path | str) -> PathologyRows:
    """Every row of a pathology file: a bad row is set aside with its reason, the rest kept
    (row 1 is the header; a bilateral row gives one outcome per breast).

    Raises:
        LabelFileInvalid: a missing column (nothing in the file can be read then).
    """
    outcomes: list[tuple[int, Outcome]] = []
    rejected: list[tuple[int, str, str]] = []
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        for number, raw in enumerate(_reader(fh), start=2):
            problem = _problem({c: (raw.get(c) or "").strip() for c in COLUMNS})
            if problem is not None:
                rejected.append((number, *problem))
            else:
                outcomes += [(number, o) for o in _parse(number, raw)]
    return PathologyRows(outcomes, rejected)


def _applies(outcome: Outcome, exam_date: dt.date | None, window_days: int) -> bool:
    """Pathology counts for an exam when dated from the exam up to `window_days` after it."""
    if exam_date is None:
        return True
    return 0 <= (outcome.date - exam_date).days <= window_days


def label_views(
    exam_id: str,
    reading: BiradsReading,
    outcomes: Mapping[tuple[str, str], Outcome],
    exam_date: dt.date | None = None,
    window_days: int = 365,
    views: tuple[str, ...] = SCREENING_VIEWS,
) -> dict[str, ViewLabel]:
    """The label of each view of one exam: pathology first, then the report's BI-RADS.

    Args:
        exam_id: the exam pseudonym, the join key of `outcomes`.
        reading: the report's per-breast categories and their provenance.
        outcomes: from `read_pathology`.
        exam_date: when given, only pathology dated within `window_days` after it counts
            (a cancer found years later was not visible on this exam).
        window_days: the follow-up window, 365 days as in screening audits.
        views: view names whose first letter is the breast ("R-CC").

    Returns:
        {view: ViewLabel}, provenance "none" where there is no label.
    """
    out = {}
    for view in views:
        side = view[0]
        category = reading.categories.get(side)
        outcome = outcomes.get((exam_id, side))
        label: int | None
        if outcome is not None and _applies(outcome, exam_date, window_days):
            label, source = int(outcome.malignant), PROVENANCE_PATHOLOGY
        else:
            label = label_of(category)
            source = reading.sources.get(side, PROVENANCE_NONE) if label is not None else PROVENANCE_NONE
        out[view] = ViewLabel(exam_id, view, category, label, source)
    return out


def merge_labels(
    readings: Mapping[str, BiradsReading],
    outcomes: Mapping[tuple[str, str], Outcome],
    exam_dates: Mapping[str, dt.date] | None = None,
    window_days: int = 365,
) -> list[ViewLabel]:
    """`label_views` over every exam (keyed by pseudonym), in exam then view order."""
    dates = exam_dates or {}
    return [
        label
        for exam_id in sorted(readings)
        for label in label_views(exam_id, readings[exam_id], outcomes, dates.get(exam_id),
                                 window_days).values()
    ]


def relabel_rows(
    rows: Iterable[Mapping[str, Any]],
    outcomes: Mapping[tuple[str, str], Outcome],
    window_days: int = 365,
) -> list[dict[str, Any]]:
    """Manifest rows (exam_id, laterality, study_date, label, ...) with pathology applied.

    A row whose breast has pathology within the window after its study date gets its
    label from it and `label_source` "pathology"; other rows keep label and source (rows
    without a source get "birads-report" if labelled, else "none").
    """
    out = []
    for row in rows:
        new = dict(row)
        outcome = outcomes.get((str(row["exam_id"]), str(row["laterality"])))
        date = dt.date.fromisoformat(str(row["study_date"])) if row.get("study_date") else None
        if outcome is not None and _applies(outcome, date, window_days):
            new["label"], new["label_source"] = int(outcome.malignant), PROVENANCE_PATHOLOGY
        elif not new.get("label_source"):  # rows ingested before label_source existed
            new["label_source"] = PROVENANCE_NONE if new.get("label") is None else PROVENANCE_REPORT
        out.append(new)
    return out
