"""Report texts from a RIS CSV export, keyed by accession number (or study instance UID).

The export has a header row with at least `report_text` and one of `accession_number`,
`study_instance_uid`; optional `report_date` and `addendum`. Column names are matched
case-insensitively, the delimiter (comma, semicolon, tab) is sniffed, a UTF-8 BOM is
accepted. Several rows of one study (an amended report exported as a new row) are joined
in report date order, each later row as an ADDENDUM, so the BI-RADS reader applies the
revision. The keys are identifiers (PHI): they stay inside the ingest boundary, where
ingest maps them through the pseudonym table. Errors name rows and columns, never values.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from pipelines.errors import LabelFileInvalid

KEY_COLUMNS = ("accession_number", "study_instance_uid")
TEXT_COLUMN = "report_text"
_ADDENDUM_HEAD = re.compile(r"^\s*[*=#\-]*\s*addend", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class RisReports:
    """`texts` maps accession number (or study UID when it has none) to the report text.

    `skipped` lists (row number, reason) of rows that could not be used; it holds no PHI.
    `dates` gives each key's latest report date as its digits ("20260501"; "" when
    undated) and `rows` the row numbers its text was joined from, so that a reader of
    follow-up reports can date an outcome and name the rows of a key it cannot use.
    """

    texts: dict[str, str]
    skipped: list[tuple[int, str]]
    dates: dict[str, str] = dataclasses.field(default_factory=dict)
    rows: dict[str, list[int]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Row:
    number: int
    key: str
    date: str
    text: str


def _column_map(fieldnames: Sequence[str] | None) -> dict[str, str]:
    """Canonical column name -> name in the file."""
    names = {re.sub(r"[\s\-]+", "_", f.strip().lower()): f for f in fieldnames or []}
    if TEXT_COLUMN not in names or not any(k in names for k in KEY_COLUMNS):
        raise LabelFileInvalid(
            f"RIS export needs columns {TEXT_COLUMN} and one of {', '.join(KEY_COLUMNS)}: "
            f"got {', '.join(sorted(names)) or 'no header'}"
        )
    return names


def _as_addendum(text: str) -> str:
    return text if _ADDENDUM_HEAD.match(text) else f"ADDENDUM:\n{text}"


def _rows(path: Path) -> tuple[list[_Row], list[tuple[int, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(8192)
        fh.seek(0)
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(fh, dialect=dialect)
        cols = _column_map(reader.fieldnames)
        rows, skipped = [], []
        for number, raw in enumerate(reader, start=2):  # row 1 is the header
            def get(name: str, raw: dict[str, str | None] = raw) -> str:
                return (raw.get(cols[name]) or "").strip() if name in cols else ""

            key = next((get(k) for k in KEY_COLUMNS if get(k)), "")
            text = get(TEXT_COLUMN)
            addendum = get("addendum")
            if addendum:
                text = f"{text}\n\n{_as_addendum(addendum)}" if text else _as_addendum(addendum)
            if not key:
                skipped.append((number, "no accession_number or study_instance_uid"))
            elif not text:
                skipped.append((number, "empty report_text"))
            else:
                rows.append(_Row(number, key, re.sub(r"\D", "", get("report_date")), text))
    return rows, skipped


def read_ris_export(path: Path | str) -> RisReports:
    """Every study's report text in a RIS CSV export.

    Raises:
        LabelFileInvalid: the file lacks the report text or every identifier column.
    """
    rows, skipped = _rows(Path(path))
    by_key: dict[str, list[_Row]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    texts, dates, numbers = {}, {}, {}
    for key, versions in by_key.items():
        versions.sort(key=lambda r: (r.date, r.number))  # stable: undated rows in file order
        first, *later = versions
        texts[key] = "\n\n".join([first.text, *(_as_addendum(r.text) for r in later)])
        dates[key], numbers[key] = versions[-1].date, sorted(r.number for r in versions)
    return RisReports(texts=texts, skipped=skipped, dates=dates, rows=numbers)
