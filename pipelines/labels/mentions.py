"""Where a report text states a BI-RADS assessment category, and which category.

A mention is "BI-RADS 4", "BIRADS: 2", "BI-RADS® category 4A", "BI-RADS IV",
"BI-RADS: Negative", "Assessment category: 0", a per-side pair "BI-RADS: R2 L4" or
"Final assessment: left 4C; right 1", or one of a list "BI-RADS 6 and 4". Common slips
are read too ("BI-RAD 4", "BIRADS4", "BIRDAS 4", "BI-RADS catagory 4").
Mentions that describe a prior exam ("compared to the prior study (BI-RADS 3)",
"revised from BI-RADS 0 to ...") or are negated ("not BI-RADS 4") are left out, and so
are breast density statements ("ACR density category 2" in the pre-2013 numbering).
"""

from __future__ import annotations

import dataclasses
import re

from pipelines.labels.tables import table_categories

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
    # Dictated reports spell the number out ("BI-RADS category four A").
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
}
# ACR order of severity for combining assessments: 1 < 2 < 3 < 6 < 0 < 4 < 5. An incomplete
# (0) breast is not "more negative" than a benign one, and a new suspicious finding (4)
# outranks a known cancer (6); all of 4, 5, 6 are positive labels either way.
RANK = {1: 0, 2: 1, 3: 2, 6: 3, 0: 4, 4: 5, 5: 6}

_MARK = r"(?:\s*(?:®|\u00ae|\(R\)|™|\(TM\)))?"
# Typed reports misspell the acronym ("BI-RAD", "BIRDAS"), run it into the number, space
# the hyphen ("BI - RADS") or break the line at it; OCR reads the I as l or 1 ("Bl-RADS").
_PREFIX = rf"\bB[Il1](?:\s*-\s*|\s+)?(?:RADS?|RDAS)(?![a-z]){_MARK}"
_SEP = r"[\s:=\-–—|]*"
_CAT = r"(?:cat[ae]gor(?:y|ie)|cat\.?|class|score)"
_CATWORD = rf"(?:(?:final\s+)?(?:overall\s+)?(?:assessment\s*)?(?:{_CAT}\s*,?)?\s*[:=\-–—]?\s*)?"
# A bare number is a category unless a unit or a clock position follows it ("left 2 o'clock").
_NOT_UNIT = r"(?![0-9])(?!\s*(?:o'?\s?clock|[cm]m\b|h\b|%|[:.,]\d))"
_NUM = r"(?P<num>[0-6])(?![0-9])(?:\s?[a-cA-C]\b)?(?!\s*(?:th|st|nd|rd)\b|\s*ed(?:ition|\.))"
_ROMAN = r"(?-i:(?P<roman>VI|IV(?=[abcABC]?\b)|V|III|II|I(?!\s+(?!right|left|breast|bilat)[a-z])))[abcABC]?\b"
_WORD = r"(?P<word>" + "|".join(sorted(WORDS, key=len, reverse=True)).replace(" ", r"\s+") + r")\b"
_VALUE = rf"(?:{_NUM}|{_ROMAN}|{_WORD})"

BIRADS = re.compile(rf"{_PREFIX}{_SEP}{_CATWORD}{_VALUE}", re.IGNORECASE)
# "Assessment category: 4", "Final assessment: Category 0", "ACR category IV": no "BI-RADS".
CATEGORY = re.compile(
    rf"\b(?:(?:final\s+|overall\s+)?assessment\s*(?:category)?\s*[:=\-–—]\s*(?:category\s*[:=\-]?\s*)?"
    rf"|(?:assessment\s+|ACR\s+)?(?:cat[ae]gor(?:y|ie)|\bcat\.)\s*[:=\-–—]?\s*)(?:{_NUM}|{_ROMAN})",
    re.IGNORECASE,
)
# French and other European reports write BI-RADS as "ACR 5" ("ACR 5 lesion (BI-RADS
# classification of the ACR)"); read only in a report that ties ACR to BI-RADS, since
# "ACR 2" has also named a density, and never beside a density word.
ACR_DECLARED = re.compile(
    r"B[Il1]-?\s?RADS?[^.\n]{0,40}\bACR\b|\bACR\b[^.\n]{0,40}B[Il1]-?\s?RADS?", re.IGNORECASE
)
ACR_CATEGORY = re.compile(
    rf"\bACR\s*[:\-]?\s*{_NUM}{_NOT_UNIT}(?!\s*[(\-–]?\s*(?:dens|fatty|scattered|heterogen|extreme))",
    re.IGNORECASE,
)
# "dx"/"sx"/"sin" (dexter, sinister) stand for right/left in reports from across Europe;
# read only inside a BI-RADS pair ("BI-RADS dx 1, sin 4"), where they cannot mean "diagnosis".
_SIDE = r"(?:right|left|rt|lt|rgt|lft|dx|sx|sin|(?-i:R|L))(?:\s+breast)?"
# "BI-RADS: 1 (right), 4 (left)": categories each followed by their breast.
# "BI-RADS 4 for the right breast and 2 for the left breast" too.
_FOR = r"(?:\(|(?:for|in|on|of)\s+the\s+)?"
PAIRS_AFTER = re.compile(
    rf"{_PREFIX}{_SEP}{_CATWORD}(?P<pairs>[0-6](?:[a-c]\b)?\s*{_FOR}{_SIDE}\)?"
    rf"(?:\s*[,/;&]?\s*(?:and\s+)?[0-6](?:[a-c]\b)?\s*{_FOR}{_SIDE}\)?)+)",
    re.IGNORECASE,
)
_PAIR_AFTER = re.compile(rf"(?P<num>[0-6])(?:[a-c]\b)?\s*{_FOR}(?P<side>{_SIDE})", re.IGNORECASE)
# "BI-RADS: R2 L4", "BIRADS: Right 5. Left 1." (a full stop may part the breasts).
PAIRS = re.compile(
    rf"{_PREFIX}{_SEP}{_CATWORD}(?P<pairs>{_SIDE}\.?\s*[:=\-]?\s*[0-6]{_NOT_UNIT}(?:[a-c]\b)?"
    rf"(?:\s*[,/;&|.]?\s*(?:and\s+)?{_SIDE}\.?\s*[:=\-]?\s*[0-6]{_NOT_UNIT}(?:[a-c]\b)?)?)",
    re.IGNORECASE,
)
_PAIR = re.compile(rf"(?P<side>{_SIDE})\.?\s*[:=\-]?\s*(?P<num>[0-6])", re.IGNORECASE)
# "Final assessment: left 4C; right 1", "Impression - Right BI-RADS 2 / Left BI-RADS 0":
# per-breast categories listed after an assessment heading, the number with or without
# "BI-RADS". Both breasts must be listed: one "left 2" alone is too easily a clock position.
_BETWEEN = rf"\.?\s*[:=\-–—]?\s*(?:{_PREFIX}\s*[:=\-]?\s*)?(?:{_CAT}\s*[:=]?\s*)?"
_LISTED = rf"{_SIDE}{_BETWEEN}[0-6]{_NOT_UNIT}(?:[a-c]\b)?"
_HEADING = r"(?:final\s+|overall\s+)?(?:as{1,2}es{1,2}ments?|impressions?|conclusions?|classification)"
# An overall category may come first: "Assessment: BI-RADS 5 (overall). Right: 5. Left: 1."
_OVERALL_FIRST = rf"(?:{_PREFIX}\s*[:=\-]?\s*[0-6](?:[a-c]\b)?\s*(?:\([^)\n]{{0,20}}\)\s*)?[.;,:]\s*)"
ASSESSED_PAIRS = re.compile(
    rf"(?:\b{_HEADING}|{_PREFIX})[^:=\n.;]{{0,30}}?[:=\-–—]\s*(?:{_OVERALL_FIRST}|{_PREFIX}\s*[:=\-]?\s*)?"
    rf"(?P<pairs>{_LISTED}(?:\s*[,/;&|.]?\s*(?:and\s+)?{_LISTED})+)",
    re.IGNORECASE,
)
_LISTED_PAIR = re.compile(rf"(?P<side>{_SIDE}){_BETWEEN}(?P<num>[0-6])", re.IGNORECASE)
# "BI-RADS 6 and 4": two categories of one finding list; each counts.
LISTED_CATEGORIES = re.compile(
    rf"{_PREFIX}{_SEP}{_CATWORD}(?P<pairs>[0-6](?:[a-c]\b)?(?:\s*(?:and|&)\s*[0-6]{_NOT_UNIT}(?:[a-c]\b)?)+)",
    re.IGNORECASE,
)
# "BI-RADS 2 / BI-RADS 4 (R/L)", "BI-RADS 4 and 1 for the right and left breasts,
# respectively": two categories, then their breasts in the same order.
_ONE_OF_TWO = rf"(?:{_PREFIX}{_SEP})?[0-6]{_NOT_UNIT}(?:[a-c]\b)?"
_TWO_SIDES = rf"{_SIDE}\s*(?:[,/&]|and)\s*(?:the\s+)?{_SIDE}"
RESPECTIVE = re.compile(
    rf"{_PREFIX}{_SEP}{_CATWORD}(?P<pairs>[0-6](?:[a-c]\b)?\s*(?:[,/&]|and)\s*{_ONE_OF_TWO})\s*"
    rf"(?:\((?P<sides>{_TWO_SIDES})\)|,?\s*(?:(?:for|in)\s+the\s+)?(?P<listed>{_TWO_SIDES})"
    r"(?:\s+breasts)?,?\s+respectively)",
    re.IGNORECASE,
)
_SIDE_WORD = re.compile(rf"\b{_SIDE}\b", re.IGNORECASE)

_CLAUSE_END = re.compile(r"[.;,!?](?=\s|$)|\n")
HISTORICAL = re.compile(
    r"\b(?:prior|previous(?:ly)?|earlier|former(?:ly)?|original(?:ly)?|initial(?:ly)?|was|were"
    # "revised from BI-RADS 3", not "3 cm from the nipple (BI-RADS 4)" nor "4 cm from the
    # index lesion - BI-RADS 4B": a distance is a place, not an earlier assessment.
    r"|(?<!cm\s)(?<!mm\s)(?<!centimeters\s)(?<!millimeters\s)"
    r"from(?!\s+(?:the\s+)?(?:nipple|skin|chest\s+wall|areola|pectoral\w*)\b)"
    # "(assessment alone would be BI-RADS 0)": a hypothetical, not the assessment made.
    r"|would(?:\s+have)?\s+be(?:en)?"
    r"|had\s+been|last\s+(?:year|exam|study)|in\s+(?:19|20)\d\d|dated|compar\w*"
    r"|outside\s+(?:\w+\s+)?(?:stud\w*|exam\w*|mammogra\w*|reports?|films?|images?|priors?))\b",
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


_ONE_NUMBER = re.compile(r"(?P<num>[0-6])")
_CATEGORY_NUMBER = re.compile(r"(?<![A-Za-z0-9])(?P<num>[0-6])(?![0-9])")  # not the 1 of "B1-RADS"
# Patterns that state several categories at once, each with the pattern of one of them;
# the longest forms first, so that a plain "BI-RADS 4" inside them is not read twice.
_MULTI = (
    (ASSESSED_PAIRS, _LISTED_PAIR),
    (PAIRS, _PAIR),
    (PAIRS_AFTER, _PAIR_AFTER),
    (LISTED_CATEGORIES, _ONE_NUMBER),
)


def _side_letter(word: str) -> str:
    return "R" if word[0].lower() in "rd" else "L"


def _stated(text: str) -> list[Mention]:
    """Every category the text states, current or not, in reading order."""
    found: list[Mention] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for cell in table_categories(text):
        taken.append((cell.start, cell.end))  # a prior exam's cell is read by nothing else
        if cell.current:
            found.append(Mention(cell.start, cell.end, cell.category, cell.side))
    for match in RESPECTIVE.finditer(text):
        sides = _SIDE_WORD.findall(match.group("sides") or match.group("listed"))
        numbers = list(_CATEGORY_NUMBER.finditer(match.group("pairs")))
        if len(sides) != len(numbers):
            continue
        taken.append(match.span())
        base = match.start("pairs")
        for side, number in zip(sides, numbers, strict=True):
            start, end = base + number.start(), base + number.end()
            found.append(Mention(start, end, int(number.group("num")), _side_letter(side)))
    for pattern, part in _MULTI:
        for match in pattern.finditer(text):
            if not free(*match.span()):
                continue
            taken.append(match.span())
            base = match.start("pairs")
            for pair in part.finditer(match.group("pairs")):
                side = _side_letter(pair.group("side")) if "side" in part.groupindex else None
                found.append(Mention(base + pair.start(), base + pair.end(), int(pair.group("num")), side))
    acr = (ACR_CATEGORY,) if ACR_DECLARED.search(text) else ()
    for pattern in (BIRADS, CATEGORY, *acr):
        for match in pattern.finditer(text):
            if free(*match.span()):
                taken.append(match.span())
                found.append(Mention(match.start(), match.end(), _value(match)))
    return sorted(found, key=lambda m: m.start)


def find_mentions(text: str) -> list[Mention]:
    """Every current BI-RADS category stated in `text`, in reading order."""
    current: list[Mention] = []
    previous_end = 0
    for mention in _stated(text):
        between = text[previous_end : mention.start]
        # "the BI-RADS 3 mass ... is now BI-RADS 2": the earlier one was the old assessment.
        if current and current[-1].end == previous_end and _REVISED.search(between):
            if not _CLAUSE_END.search(between.replace(",", " ")):
                current.pop()
        if _is_current(text, mention.start, previous_end):
            current.append(mention)
        previous_end = mention.end
    return current
