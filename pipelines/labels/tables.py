"""BI-RADS categories stated in a table: one row per breast, or one column per breast.

Reports pasted from a RIS or a spreadsheet lay the assessment out as a table, its cells
split by "|", tabs or runs of spaces:

    | Breast | Findings | BI-RADS |        Side    BI-RADS          |         | Right | Left |
    | Right  | none     | 1       |        Right   1                | BI-RADS | 2     | 4    |
    | Left   | mass     | 4       |        Left    4C

A header row names the category column ("BI-RADS", "Category", "Assessment"); each row
below it that starts with a breast gives that breast the category in that column. Or a
header row names the breasts, and a row that starts with "BI-RADS" gives each column's
breast its category. Text in the cells is not read as prose: only the table's geometry
binds a category to a breast. A column or row headed as an earlier exam ("Previous (2022)",
"Prior BI-RADS") holds no current category; its cells are returned as not current, so
that nothing reads them again as prose.
"""

from __future__ import annotations

import dataclasses
import re

_CELL_SPLIT = re.compile(r"\s*\|\s*|\t+\s*|\s{2,}")
_RULE = re.compile(r"^[\s|:+=\-–—]*$")  # "|---|:---|" or "+=====+"
# A header cell names the column and holds no value: "BI-RADS", "Final assessment (BI-RADS)".
_CATEGORY_HEAD = re.compile(
    r"^(?:ACR\s+)?(?:(?:current|today'?s?)\s+)?(?:BI-?RADS?®?|(?:final\s+|overall\s+)?(?:assessment|category)"
    r"|current|today)(?:\s+(?:category|assessment|score))?"
    r"(?:\s*\((?:[^)0-9]*|[^)]*\b(?:19|20)?\d\d)\))?\s*:?$",  # "(per breast)", "(03/2025)"
    re.I,
)
_PRIOR_HEAD = re.compile(r"^(?:prior|previous|earlier|old|last|\(?(?:19|20)\d\d\)?)\b", re.I)
_SIDE_CELL = re.compile(r"^(?:the\s+)?(?P<side>right|left|rt|lt|R|L)\b\.?(?:\s+(?:breast|side))?\b", re.I)
_VALUE_CELL = re.compile(
    r"^(?:BI-?RADS?\s*[:\-]?\s*)?(?:(?:category|cat\.?)\s*[:\-]?\s*)?"
    r"(?:(?P<num>[0-6])(?![0-9])(?:[a-c]\b)?|(?-i:(?P<roman>VI|IV|V|III|II|I))\b)",
    re.I,
)
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}


@dataclasses.dataclass(frozen=True)
class TableCategory:
    """A category read from a table cell: [start, end) of the cell, the breast ("R"/"L")."""

    start: int
    end: int
    category: int
    side: str
    current: bool = True


def _cells(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """(start, end, content) of each non-empty cell of the line text[start:end]."""
    out, pos = [], start
    for sep in [*_CELL_SPLIT.finditer(text, start, end), None]:
        stop = sep.start() if sep else end
        if text[pos:stop].strip():
            out.append((pos, stop, text[pos:stop].strip()))
        pos = sep.end() if sep else end
    return out


def _value(cell: str) -> int | None:
    hit = _VALUE_CELL.match(cell)
    if hit is None:
        return None
    return int(hit.group("num")) if hit.group("num") else _ROMAN[hit.group("roman")]


def _side(cell: str) -> str | None:
    hit = _SIDE_CELL.match(cell)
    return hit.group("side")[0].upper() if hit and len(cell) <= 30 else None


@dataclasses.dataclass(frozen=True)
class _Row:
    start: int  # of the line, so that a cell's column is its start minus this
    cells: list[tuple[int, int, str]]

    def under(self, head: _Row, index: int) -> tuple[int, int, str] | None:
        """The cell in the column of the header's cell `index`.

        Rows with as many cells as the header align by position; otherwise (an empty
        cell in a space-aligned table) by the cell that overlaps the header cell's columns.
        """
        if len(self.cells) == len(head.cells):
            return self.cells[index]
        a, b = (x - head.start for x in head.cells[index][:2])
        return next((c for c in self.cells if c[0] - self.start < b and c[1] - self.start > a), None)


def _rows(text: str) -> list[_Row | None]:
    """The lines of the text as rows; None for a line that is not one (it ends a table)."""
    rows: list[_Row | None] = []
    pos = 0
    for line in text.split("\n"):
        if not (line.strip() and _RULE.match(line)):  # a rule inside a table is skipped
            cells = _cells(text, pos, pos + len(line))
            rows.append(_Row(pos, cells) if len(cells) >= 2 else None)
        pos += len(line) + 1
    return rows


def _per_row(head: _Row, body: list[_Row]) -> list[TableCategory]:
    """Category columns (current or prior), a breast at the start of each row.

    A header whose corner cell is empty ("| | Prior | Current |") has one cell fewer than
    its rows: its first cell then heads the rows' second column.
    """
    corner = bool(body) and all(len(row.cells) == len(head.cells) + 1 for row in body)
    columns = [(i, not _PRIOR_HEAD.match(c[2])) for i, c in enumerate(head.cells)
               if (i or corner) and (_CATEGORY_HEAD.match(c[2]) or _PRIOR_HEAD.match(c[2]))]
    found = []
    for row in body:
        side = _side(row.cells[0][2])
        for column, current in columns if side else []:
            cell = row.cells[column + 1] if corner else row.under(head, column)
            value = _value(cell[2]) if cell else None
            if side and cell and value is not None:
                found.append(TableCategory(cell[0], cell[1], value, side, current))
    return found


def _per_column(head: _Row, body: list[_Row]) -> list[TableCategory]:
    """A breast at the head of each column, a "BI-RADS" row."""
    found = []
    for row in body:
        label = row.cells[0][2]
        if not (_CATEGORY_HEAD.match(label) or _PRIOR_HEAD.match(label)):
            continue
        # The header's corner cell is empty, so a row one cell longer aligns shifted by one.
        shifted = len(row.cells) == len(head.cells) + 1
        for i, head_cell in enumerate(head.cells):
            side, cell = _side(head_cell[2]), row.cells[i + 1] if shifted else row.under(head, i)
            value = _value(cell[2]) if cell and cell is not row.cells[0] else None
            if side and cell and value is not None:
                found.append(TableCategory(cell[0], cell[1], value, side, not _PRIOR_HEAD.match(label)))
    return found


def table_categories(text: str) -> list[TableCategory]:
    """Every category a table in `text` binds to a breast, in reading order."""
    rows = _rows(text)
    found: list[TableCategory] = []
    for i, head in enumerate(rows):
        if head is None or (i and rows[i - 1] is not None):
            continue  # a table starts after a line that is not a row
        body = []
        for row in rows[i + 1 :]:
            if row is None:
                break
            body.append(row)
        found += _per_row(head, body) + _per_column(head, body)
    return sorted(found, key=lambda t: t.start)
