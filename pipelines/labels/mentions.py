"""Where a report text states a BI-RADS assessment category, and which category.

A mention is "BI-RADS 4", "BIRADS: 2", "BI-RADS® category 4A", "BI-RADS IV",
"BI-RADS: Negative", "Assessment category: 0" or a per-side pair "BI-RADS: R2 L4".
Mentions that describe a prior exam ("compared to the prior study (BI-RADS 3)",
"revised from BI-RADS 0 to ...") or are negated ("not BI-RADS 4") are left out, and so
are breast density statements ("ACR density category 2" in the pre-2013 numbering).
"""

from __future__ import annotations

import dataclasses
import re

ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}
WORDS = {
    "probably benign": 3,
    "negative": 1,
    "benign": 2,
    "suspicious": 4,
    "highly suggestive": 5,
    "known malignancy": 6,
    "known biopsy-proven malignancy": 6,
    "known biopsy proven malignancy": 6,
    "incomplete": 0,
    "needs additional imaging": 0,
}
# ACR order of severity for combining assessments: 1 < 2 < 3 < 6 < 0 < 4 < 5. An incomplete
# (0) breast is not "more negative" than a benign one, and a new suspicious finding (4)
# outranks a known cancer (6); all of 4, 5, 6 are positive labels either way.
RANK = {1: 0, 2: 1, 3: 2, 6: 3, 0: 4, 4: 5, 5: 6}

_MARK = r"(?:\s*(?:®|\u00ae|\(R\)|™|\(TM\)))?"
_PREFIX = rf"\bBI[-\s]?RADS\b{_MARK}"
_SEP = r"[\s:=\-–—]*"
_CATWORD = r"(?:(?:final\s+)?(?:overall\s+)?(?:assessment\s*)?(?:category|cat\.?|score)?\s*[:=\-–—]?\s*)?"
_NUM = r"(?P<num>[0-6])(?![0-9])(?:\s?[a-cA-C]\b)?(?!\s*(?:th|st|nd|rd)\b|\s*ed(?:ition|\.))"
_ROMAN = r"(?-i:(?P<roman>VI|IV|V|III|II|I(?!\s+(?!right|left|breast|bilat)[a-z])))\b"
_WORD = r"(?P<word>" + "|".join(sorted(WORDS, key=len, reverse=True)).replace(" ", r"\s+") + r")\b"
_VALUE = rf"(?:{_NUM}|{_ROMAN}|{_WORD})"

BIRADS = re.compile(rf"{_PREFIX}{_SEP}{_CATWORD}{_VALUE}", re.IGNORECASE)
# "Assessment category: 4", "Final assessment: Category 0", "ACR category IV": no "BI-RADS".
CATEGORY = re.compile(
    rf"\b(?:(?:final\s+|overall\s+)?assessment\s*(?:category)?\s*[:=\-–—]\s*(?:category\s*[:=\-]?\s*)?"
    rf"|(?:assessment\s+|ACR\s+)?category\s*[:=\-–—]?\s*)(?:{_NUM}|{_ROMAN})",
    re.IGNORECASE,
)
_SIDE = r"(?:right|left|rt|lt|(?-i:R|L))(?:\s+breast)?"
# "BI-RADS: 1 (right), 4 (left)": categories each followed by their breast.
PAIRS_AFTER = re.compile(
    rf"{_PREFIX}{_SEP}{_CATWORD}(?P<pairs>[0-6](?:[a-c]\b)?\s*\(?{_SIDE}\)?"
    rf"(?:\s*[,/;&]?\s*(?:and\s+)?[0-6](?:[a-c]\b)?\s*\(?{_SIDE}\)?)+)",
    re.IGNORECASE,
)
_PAIR_AFTER = re.compile(rf"(?P<num>[0-6])(?:[a-c]\b)?\s*\(?(?P<side>{_SIDE})", re.IGNORECASE)
PAIRS = re.compile(
    rf"{_PREFIX}{_SEP}{_CATWORD}(?P<pairs>{_SIDE}\.?\s*[:=\-]?\s*[0-6](?:[a-c]\b)?"
    rf"(?:\s*[,/;&]?\s*(?:and\s+)?{_SIDE}\.?\s*[:=\-]?\s*[0-6](?:[a-c]\b)?)?)",
    re.IGNORECASE,
)
_PAIR = re.compile(rf"(?P<side>{_SIDE})\.?\s*[:=\-]?\s*(?P<num>[0-6])", re.IGNORECASE)

_CLAUSE_END = re.compile(r"[.;,!?](?=\s|$)|\n")
HISTORICAL = re.compile(
    r"\b(?:prior|previous(?:ly)?|earlier|former(?:ly)?|original(?:ly)?|initial(?:ly)?|from|was|were"
    r"|had\s+been|last\s+(?:year|exam|study)|in\s+(?:19|20)\d\d|dated|outside|compar\w*)\b",
    re.IGNORECASE,
)
_NEGATED = re.compile(r"\b(?:no|not|without|rather\s+than|instead\s+of)\s+(?:\w+\s+)?$", re.IGNORECASE)
_REVISED = re.compile(
    r"\b(?:now|currently|today|revised|changed|upgraded|downgraded|amended)\b", re.IGNORECASE
)
_DENSITY = re.compile(r"\b(?:densit\w*|dense|composition|parenchym\w*)\b", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Mention:
    """One stated category; `side` is "R" or "L" when the mention itself names it."""

    start: int
    end: int
    category: int
    side: str | None = None


def _value(match: re.Match[str]) -> int:
    groups = match.groupdict()
    if groups.get("num"):
        return int(groups["num"])
    if groups.get("roman"):
        return ROMAN[groups["roman"]]
    return WORDS[re.sub(r"\s+", " ", groups["word"].lower())]


def _clause_start(text: str, pos: int) -> int:
    starts = [m.end() for m in _CLAUSE_END.finditer(text, 0, pos)]
    return starts[-1] if starts else 0


def _is_current(text: str, start: int, lower_bound: int) -> bool:
    """False for a mention of a prior exam, a negated or a density mention."""
    window = text[max(_clause_start(text, start), lower_bound) : start]
    words = window.split()
    if HISTORICAL.search(" ".join(words[-6:])):
        return False
    return not (_NEGATED.search(window) or _DENSITY.search(window))


def find_mentions(text: str) -> list[Mention]:
    """Every current BI-RADS category stated in `text`, in reading order."""
    found: list[Mention] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for pattern, pair_pattern in ((PAIRS, _PAIR), (PAIRS_AFTER, _PAIR_AFTER)):
        for match in pattern.finditer(text):
            if not free(*match.span()):
                continue
            taken.append(match.span())
            base = match.start("pairs")
            for pair in pair_pattern.finditer(match.group("pairs")):
                side = pair.group("side")[0].upper()
                found.append(Mention(base + pair.start(), base + pair.end(), int(pair.group("num")), side))
    for pattern in (BIRADS, CATEGORY):
        for match in pattern.finditer(text):
            if free(*match.span()):
                taken.append(match.span())
                found.append(Mention(match.start(), match.end(), _value(match)))
    found.sort(key=lambda m: m.start)
    current: list[Mention] = []
    previous_end = 0
    for mention in found:
        between = text[previous_end : mention.start]
        # "the BI-RADS 3 mass ... is now BI-RADS 2": the earlier one was the old assessment.
        if current and current[-1].end == previous_end and _REVISED.search(between):
            if not _CLAUSE_END.search(between.replace(",", " ")):
                current.pop()
        if _is_current(text, mention.start, previous_end):
            current.append(mention)
        previous_end = mention.end
    return current
