"""ACR BI-RADS breast density (A-D) as a mammography report states it.

A statement is a code behind a density label ("ACR density C", "ACR C", "breast density: c",
"Breast composition: b", "BI-RADS density B", "Tissue composition: category C") or an Atlas
descriptor ("almost entirely fatty" A, "scattered (areas of) fibroglandular density/tissue"
B, "heterogeneously dense" C, "extremely dense" D), in any case. The pre-2013 numbering
("density category 3", "ACR density category 2", "ACR 3", roman "ACR II") maps 1-4 to A-D.
"ACR category N" is a BI-RADS assessment (see `mentions`), never a density; "dense breasts"
alone names no category.

Left out, as BI-RADS mentions are: statements in a COMPARISON/HISTORY/INDICATION section,
statements of an earlier exam ("previously scattered fibroglandular", "when the breasts were
heterogeneously dense", "ACR C in 2022, now ACR B", "on the prior study"), and negated ones
("not extremely dense", "no longer heterogeneously dense").

When the statements left disagree, the first of these groups that holds any decides:
1. an ADDENDUM (it corrects the report);
2. the FINDINGS section, or a DENSITY/COMPOSITION field;
3. the rest of the report.
Within the group, one value is the answer; different values of different breasts give the
denser one (the Atlas rule when the breasts are not equally dense); any other disagreement
is undecidable and gives None, as does a report that states no density.
"""

from __future__ import annotations

import dataclasses
import re

from pipelines.labels.mentions import HISTORICAL
from pipelines.labels.sections import HARD_KINDS, NEUTRAL, region_at, regions, sides_of

CODES = ("A", "B", "C", "D")  # from the least to the most dense
_SEP = r"[\s:=\-–—(]*"
_CATWORD = r"(?:category|cat\.?|type|grade|class|pattern)\b"
_LABEL = (
    rf"\bACR(?:[\s-]+(?:breast\s+)?(?:density|composition)(?:{_SEP}{_CATWORD})?|[\s-]+type)?"
    rf"|\bBI-?RADS\s*®?[\s-]+(?:breast\s+)?(?:density|composition)(?:{_SEP}{_CATWORD})?"
    rf"|\b(?:(?:breast|mammographic|parenchymal|tissue)\s+)?(?:density|composition)"
    rf"(?=\s*[:=]|\s+{_CATWORD})(?:{_SEP}(?:ACR\b)?{_SEP}{_CATWORD})?"
)
_VALUE = (
    r"(?P<letter>[A-D])(?![\w\-/])"
    r"|(?P<num>[1-4])(?![\d.,]\d|\d|\s*(?:%|mm|cm|th|st|nd|rd)\b)"
    r"|(?-i:(?P<roman>IV|III|II|I))\b"
)
CODED = re.compile(rf"(?:{_LABEL}){_SEP}(?:ACR\b{_SEP})?(?:{_VALUE})", re.IGNORECASE)
DESCRIBED = re.compile(
    r"(?P<A>\b(?:almost\s+|predominantly\s+)?entirely\s+fat(?:ty)?\b|\bpredominantly\s+fatty\b"
    r"|\bfatty(?:[\s-]+replaced)?\s+breasts?\b|\bbreasts?\s+(?:are|is)\s+fatty\b)"
    r"|(?P<B>\bscattered\s+(?:areas\s+of\s+)?fibro-?glandular\b)"
    r"|(?P<C>\bheterogeneous(?:ly)?\s+dense\b)"
    r"|(?P<D>\bextremely\s+dense\b)",
    re.IGNORECASE,
)
_NUMBERED = {"1": "A", "2": "B", "3": "C", "4": "D", "I": "A", "II": "B", "III": "C", "IV": "D"}
_CLAUSE_END = re.compile(r"[.;,!?](?=\s|$)|\n")
_SENTENCE_END = re.compile(r"[.;!?](?=\s|$)|\n")
_NEGATED = re.compile(r"\b(?:no|not|without|rather\s+than|instead\s+of|no\s+longer)\s+(?:\w+\s+)?$",
                      re.IGNORECASE)
# "ACR C in 2022", "density B on the prior study"; not "as on the prior" (unchanged, current)
_EARLIER_AFTER = re.compile(
    r"[^.;,\n]{0,25}?(?<!\bas\s)(?<!\bthan\s)\b(?:(?:on|in|at)\s+(?:the\s+)?(?:prior|previous|earlier"
    r"|last)|in\s+(?:19|20)\d\d)\b",
    re.IGNORECASE)
_SIDE_WORD = re.compile(r"\b(?:right|left|rt|lt)\b", re.IGNORECASE)
_ADDENDUM = re.compile(r"(?:^|(?<=[.!?])\s)[ \t*=#\-]*ADDENDUM\b", re.IGNORECASE | re.MULTILINE)
_ORIGINAL = re.compile(r"^[ \t*=#\-]*ORIGINAL\s+REPORT\b", re.IGNORECASE | re.MULTILINE)
_FIELD = re.compile(r"(?:BREAST\s+|TISSUE\s+)?(?:DENSITY|COMPOSITION)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class DensityStatement:
    """One current statement: [start, end), its code, the breast it is about if any, its group."""

    start: int
    end: int
    code: str
    side: str | None
    group: int  # 0 addendum, 1 findings or a density field, 2 elsewhere


def _statements(text: str) -> list[tuple[int, int, str]]:
    """(start, end, code) of every statement, coded ones first where they overlap a descriptor."""
    found: list[tuple[int, int, str]] = []
    for m in CODED.finditer(text):
        if m["letter"] == "a" and re.match(r"\s+[a-z]", text[m.end():]):
            continue  # "breast density: a scattered pattern": the article, not code A
        code = m["letter"].upper() if m["letter"] else _NUMBERED[m["num"] or m["roman"]]
        found.append((m.start(), m.end(), code))
    for m in DESCRIBED.finditer(text):
        if all(m.end() <= s or m.start() >= e for s, e, _ in found):
            found.append((m.start(), m.end(), str(m.lastgroup)))
    return sorted(found)


def _is_current(text: str, start: int, end: int, lower_bound: int) -> bool:
    """False for a negated statement or one about an earlier exam."""
    clauses = [m.end() for m in _CLAUSE_END.finditer(text, 0, start)]
    window = text[max(clauses[-1] if clauses else 0, lower_bound) : start]
    if HISTORICAL.search(" ".join(window.split()[-6:])) or _NEGATED.search(window):
        return False
    return not _EARLIER_AFTER.match(text, end)


def _groups(text: str) -> list[tuple[int, int, int]]:
    """(start, end, group) spans of the addendum and of the findings and density fields."""
    spans = []
    for head in _ADDENDUM.finditer(text):
        original = _ORIGINAL.search(text, head.end())
        spans.append((head.start(), original.start() if original else len(text), 0))
    heads = list(NEUTRAL.finditer(text))
    for i, head in enumerate(heads):
        name = head["name"].upper()
        if _FIELD.fullmatch(name):
            newline = text.find("\n", head.end())
            spans.append((head.start("name"), newline if newline >= 0 else len(text), 1))
        elif name == "FINDINGS":
            later = (h.start() for h in heads[i + 1 :] if not _FIELD.fullmatch(h["name"]))
            spans.append((head.end(), next(later, len(text)), 1))
    return spans


def density_statements(text: str) -> list[DensityStatement]:
    """Every current density statement of `text`, in reading order."""
    cut, spans = regions(text), _groups(text)
    out: list[DensityStatement] = []
    previous_end = 0
    for start, end, code in _statements(text):
        region = region_at(cut, start)
        if region.kind != "history" and _is_current(text, start, end, previous_end):
            side: str | None = None
            if region.kind in HARD_KINDS and len(region.sides) == 1:
                side = next(iter(region.sides))
            else:
                sentence = [m.end() for m in _SENTENCE_END.finditer(text, previous_end, start)]
                before = text[sentence[-1] if sentence else previous_end : start]
                named = {next(iter(sides_of(w))) for w in _SIDE_WORD.findall(before)}
                side = named.pop() if len(named) == 1 else None
            group = min((g for a, b, g in spans if a <= start < b), default=2)
            out.append(DensityStatement(start, end, code, side, group))
        previous_end = end
    return out


def _decide(statements: list[DensityStatement]) -> str | None:
    """The one code of a group; the denser breast's when breasts differ; else None."""
    codes = {s.code for s in statements}
    if len(codes) == 1:
        return codes.pop()
    by_side: dict[str, set[str]] = {}
    for s in statements:
        if s.side is None:
            return None
        by_side.setdefault(s.side, set()).add(s.code)
    if any(len(c) > 1 for c in by_side.values()):
        return None
    return max((c for side_codes in by_side.values() for c in side_codes), key=CODES.index)


def read_density(text: str) -> str | None:
    """The report's ACR breast density "A".."D"; None when it states none or is undecidable."""
    statements = density_statements(text)
    if not statements:
        return None
    first = min(s.group for s in statements)
    return _decide([s for s in statements if s.group == first])
