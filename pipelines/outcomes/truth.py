"""The ground truth of a screened exam, from the outcomes the hospital reports later.

Outcomes are stored per exam pseudonym and breast (table `outcomes`), each from one source:

- pathology (`radflow labels import --pathology FILE`): malignant or benign, dated;
- a follow-up BI-RADS (`radflow labels import --ris FILE`): the category of a later report
  about the exam, read from a RIS export.

One outcome per breast is kept. Pathology outranks a follow-up BI-RADS whatever their
dates. Between two pathology results a malignant one outranks a benign one (a benign core
followed by a malignant excision is a cancer), then the later date wins. Between two
follow-up reports the later one wins (a BI-RADS 3 at six months, then a 2 at two years, is
benign); on the same date the more severe in ACR order (1 < 2 < 3 < 6 < 0 < 4 < 5).

Ground truth of a breast:

| outcome | truth |
|---|---|
| malignant pathology | positive |
| benign pathology | negative |
| follow-up BI-RADS 1 or 2 | negative |
| follow-up BI-RADS 6 (known cancer) | positive |
| follow-up BI-RADS 0 or 3 | no outcome yet (work-up or short-interval follow-up pending) |
| follow-up BI-RADS 4 or 5 without pathology | no outcome yet (biopsy pending) |

Ground truth of an exam (the model scores exams): positive when any breast is positive;
otherwise no outcome yet when any breast is still pending; otherwise negative when a breast
is negative; an exam with no stored outcome has none. A breast without any record says
nothing about the exam (a benign biopsy of one breast makes the exam negative).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from pipelines.labels.birads import most_severe

PATHOLOGY, FOLLOW_UP = "pathology", "follow-up"
POSITIVE, NEGATIVE, PENDING = "positive", "negative", "pending"
SIDES = ("R", "L")
_SOURCE_RANK = {FOLLOW_UP: 1, PATHOLOGY: 2}


@dataclasses.dataclass(frozen=True)
class BreastOutcome:
    """One breast's outcome: pathology (`malignant` set) or a follow-up (`birads` set).

    Attributes:
        exam_id: the exam pseudonym (never a hospital identifier).
        side: "R" or "L".
        source: PATHOLOGY or FOLLOW_UP.
        malignant: the pathology result; None for a follow-up.
        birads: the follow-up category 0-6; None for pathology.
        outcome_date: ISO date of the result or report; None when the export gives none.
    """

    exam_id: str
    side: str
    source: str
    malignant: bool | None = None
    birads: int | None = None
    outcome_date: str | None = None

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"side must be R or L, got {self.side!r}")
        if self.source == PATHOLOGY and (self.malignant is None or self.birads is not None):
            raise ValueError("a pathology outcome has `malignant` and no `birads`")
        if self.source == FOLLOW_UP and (self.birads not in range(7) or self.malignant is not None):
            raise ValueError(f"a follow-up outcome has a BI-RADS 0-6 and no `malignant`, got {self.birads!r}")
        if self.source not in _SOURCE_RANK:
            raise ValueError(f"source must be {PATHOLOGY} or {FOLLOW_UP}, got {self.source!r}")
        if self.outcome_date is not None:
            dt.date.fromisoformat(self.outcome_date)

    @property
    def key(self) -> tuple[str, str]:
        return self.exam_id, self.side

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> BreastOutcome:
        """The outcome of a row of table `outcomes` (SQLite returns booleans as 0/1)."""
        malignant = None if row["malignant"] is None else bool(row["malignant"])
        return cls(str(row["exam_id"]), str(row["side"]), str(row["source"]), malignant,
                   None if row["birads"] is None else int(row["birads"]), row["outcome_date"])


def breast_truth(outcome: BreastOutcome) -> str:
    """POSITIVE, NEGATIVE or PENDING, by the module's table."""
    if outcome.source == PATHOLOGY:
        return POSITIVE if outcome.malignant else NEGATIVE
    if outcome.birads == 6:
        return POSITIVE
    return NEGATIVE if outcome.birads in (1, 2) else PENDING


def exam_truth(breasts: Iterable[str]) -> str | None:
    """The exam's truth from its breasts' truths; None when it has none."""
    found = set(breasts)
    for truth in (POSITIVE, PENDING, NEGATIVE):
        if truth in found:
            return truth
    return None


def outranks(new: BreastOutcome, old: BreastOutcome) -> bool:
    """Whether `new` replaces `old` for the same breast (the module's order); equal
    outcomes do not, so a re-import changes nothing."""
    if new.source != old.source:
        return _SOURCE_RANK[new.source] > _SOURCE_RANK[old.source]
    if new.source == PATHOLOGY and new.malignant != old.malignant:
        return bool(new.malignant)
    new_date, old_date = new.outcome_date or "", old.outcome_date or ""
    if new_date != old_date:
        return new_date > old_date
    if new.birads is not None and old.birads is not None and new.birads != old.birads:
        return most_severe([new.birads, old.birads]) == new.birads
    return False
