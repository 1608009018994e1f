"""BI-RADS categories per breast from a radiology report (DICOM SR text or RIS export).

The reading itself lives in `pipelines.labels.birads`; this module keeps the names ingest
uses: the report text of an SR, the categories per breast, and the training label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipelines.errors import InvalidStudy
from pipelines.labels.birads import NEGATIVE, POSITIVE, birads_by_side, label_of, read_report

if TYPE_CHECKING:
    from pydicom import Dataset

__all__ = ["NEGATIVE", "POSITIVE", "birads_by_side", "label_of", "read_report", "report_text"]


def report_text(ds: Dataset) -> str:
    """All TEXT content items of an SR, depth first, joined by newlines.

    Raises:
        InvalidStudy: a ContentSequence is not a sequence of content items (another VR).
    """
    parts: list[str] = []

    def walk(items: object) -> None:
        if not items:
            return
        if isinstance(items, str | bytes) or not isinstance(items, Sequence) \
                or not all(hasattr(item, "get") for item in items):
            raise InvalidStudy("ContentSequence of the SR report is not a sequence of content items")
        for item in items:
            if str(item.get("ValueType", "")) == "TEXT" and "TextValue" in item:
                parts.append(str(item.TextValue))
            walk(item.get("ContentSequence"))

    walk(ds.get("ContentSequence"))
    return "\n".join(parts)
