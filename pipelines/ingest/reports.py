"""BI-RADS categories per breast from a radiology report (DICOM SR text or RIS export)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom import Dataset

BIRADS = re.compile(r"BI-?\s?RADS\s*(?:®|\(R\))?[\s:]*(?:category\s*:?\s*)?([0-6])", re.IGNORECASE)
# A section header ends with a colon and starts the text, a line or a sentence ("RIGHT BREAST:",
# "... BI-RADS 1. Left breast: ..." in a RIS export flattened to one line), so "in the right
# breast: ..." inside a sentence does not open a section.
SECTION = re.compile(
    r"(?:^|[.;:]\s+)\s*(RIGHT BREAST|LEFT BREAST|IMPRESSION)\s*:", re.IGNORECASE | re.MULTILINE
)
POSITIVE, NEGATIVE = {4, 5, 6}, {1, 2}


def report_text(ds: Dataset) -> str:
    """All TEXT content items of an SR, depth first, joined by newlines."""
    parts: list[str] = []

    def walk(items: object) -> None:
        for item in items or []:  # type: ignore[attr-defined]
            if str(item.get("ValueType", "")) == "TEXT" and "TextValue" in item:
                parts.append(str(item.TextValue))
            walk(item.get("ContentSequence"))

    walk(ds.get("ContentSequence"))
    return "\n".join(parts)


def birads_by_side(text: str) -> dict[str, int]:
    """{"R": category, "L": category} from the report's per-breast sections.

    A report without recognisable per-breast sections gives its highest category to both
    sides: a suspicious finding must never become a negative label.
    """
    found: dict[str, int] = {}
    marks = list(SECTION.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        hit = BIRADS.search(text, mark.end(), end)
        name = mark.group(1).upper()
        if hit and name != "IMPRESSION":
            found["R" if name.startswith("RIGHT") else "L"] = int(hit.group(1))
    if not found:
        categories = [int(m.group(1)) for m in BIRADS.finditer(text)]
        if categories:
            found = {"R": max(categories), "L": max(categories)}
    return found


def label_of(category: int | None) -> int | None:
    """1 for suspicious (BI-RADS 4-6), 0 for negative/benign (1-2), None otherwise."""
    if category in POSITIVE:
        return 1
    if category in NEGATIVE:
        return 0
    return None
