"""Which breast a stated BI-RADS category belongs to, and which breasts a report describes.

First rule that applies to a mention:
1. the mention names its side itself ("BI-RADS: R2 L4", "BI-RADS: 1 (right), 4 (left)");
2. it stands in a hard per-breast section ("LEFT BREAST: ... BI-RADS 4", "R: BI-RADS 2");
3. a breast is named next to it in the same clause ("BI-RADS 4, left breast",
   "Left BI-RADS 4, right BI-RADS 1", "benign calcifications bilaterally, BI-RADS 2");
4. it stands in a soft section, a sentence that starts with a breast ("The left breast ...");
5. exactly one breast is named in its sentence ("Suspicious left breast mass, BI-RADS 4");
6. otherwise it is the exam's overall assessment.
A suspicious or incomplete category (0, 3-6) is never linked to a breast named in a
negative phrase ("right breast negative, BI-RADS 4" is not the right breast's).
"""

from __future__ import annotations

import re

from pipelines.labels.mentions import Mention
from pipelines.labels.sections import HARD_KINDS, Region, region_at, sides_of

_TOKEN = re.compile(
    r"\b(?P<side>right|left|rt|lt|(?-i:R|L)(?![-/](?:CC|MLO))|bilateral(?:ly)?|both\s+(?:breasts|sides))\b"
    r"(?!\s+(?:screening|diagnostic|digital|mammogra\w*|exam\w*|study|views?|2D|3D|tomo\w*|ultrasound))",
    re.IGNORECASE,
)
_HEADER_LIKE = re.compile(r"\s*(?:breast|side)?\s*[:\-–—]")
_NEGATION = re.compile(
    r"\b(?:no|not|without|negative|unremarkable|normal|clear|free\s+of|absent)\b", re.IGNORECASE
)
# A breast described only like this is negative ("The left breast is unremarkable.").
_NEGATIVE_BREAST = re.compile(
    r"\b(?:negative|unremarkable|normal|clear|no\s+(?:\w+\s+){0,2}(?:suspicious|evidence|abnormalit\w*"
    r"|findings?|masses?|malignan\w*|calcifications?))\b",
    re.IGNORECASE,
)
_EXAM_WORDS = re.compile(r"\b(?:mammogra\w*|screening|exam\w*|views?|study|procedure|technique)\b", re.I)
_SENTENCE_END = re.compile(r"[.;!?](?=\s|$)|\n")
_CLAUSE_BREAK = re.compile(r"[,;.!?](?=\s|$)|\n")


def _tokens(text: str, a: int, b: int) -> list[re.Match[str]]:
    return list(_TOKEN.finditer(text, a, b))


def _clause(text: str, token: re.Match[str]) -> str:
    """The comma clause that names the breast."""
    starts = [m.end() for m in _CLAUSE_BREAK.finditer(text, 0, token.start())]
    end = _CLAUSE_BREAK.search(text, token.end())
    return text[starts[-1] if starts else 0 : end.start() if end else len(text)]


def _negated(text: str, token: re.Match[str]) -> bool:
    return bool(_NEGATION.search(_clause(text, token)))


def named_breasts(text: str, cut: list[Region]) -> tuple[frozenset[str], frozenset[str]]:
    """(breasts named with a finding, breasts named only as negative), history left out."""
    positive: set[str] = set()
    negative: set[str] = set()
    for tok in _TOKEN.finditer(text):
        if region_at(cut, tok.start()).kind == "history":
            continue
        clause = _clause(text, tok)
        sides = sides_of(tok.group("side"))
        if len(sides) == 2 and _EXAM_WORDS.search(clause):  # "MG screening bilateral"
            continue
        (negative if _NEGATIVE_BREAST.search(clause) else positive).update(sides)
    return frozenset(positive), frozenset(negative - positive)


def _sentence(text: str, pos: int) -> tuple[int, int]:
    starts = [m.end() for m in _SENTENCE_END.finditer(text, 0, pos)]
    end = _SENTENCE_END.search(text, pos)
    return (starts[-1] if starts else 0), (end.start() if end else len(text))


def _adjacent(
    text: str, m: Mention, lo: int, hi: int, claimed: set[int], suspicious: bool
) -> tuple[frozenset[str], int | None]:
    """Sides named right before (or, failing that, right after) the mention."""
    before = _tokens(text, lo, m.start)
    if before:
        tok = before[-1]
        gap = text[tok.end() : m.start]
        if tok.start() not in claimed and len(re.findall(r"\w+", gap)) <= 5:
            if not (suspicious and _NEGATION.search(gap)):
                return sides_of(tok.group("side")), None
    after = _tokens(text, m.end, hi)
    if after:
        tok = after[0]
        gap = text[m.end : tok.start()]
        if len(re.findall(r"\w+", gap)) <= 4 and not _HEADER_LIKE.match(text, tok.end()):
            if not (suspicious and _NEGATION.search(text[tok.start() : hi])):
                return sides_of(tok.group("side")), tok.start()
    return frozenset(), None


def _in_sentence(text: str, m: Mention, suspicious: bool) -> frozenset[str]:
    a, b = _sentence(text, m.start)
    named: set[str] = set()
    for tok in _tokens(text, a, b):
        if not (suspicious and _negated(text, tok)):
            named |= sides_of(tok.group("side"))
    return frozenset(named) if len(named) == 1 else frozenset()


def sides_of_mention(
    text: str, m: Mention, region: Region, prev_end: int, next_start: int, claimed: set[int]
) -> frozenset[str]:
    if m.side:
        return frozenset({m.side})
    if region.kind in HARD_KINDS:
        return region.sides
    suspicious = m.category not in (1, 2)
    a, b = _sentence(text, m.start)
    sides, claim = _adjacent(text, m, max(a, prev_end), min(b, next_start), claimed, suspicious)
    if claim is not None:
        claimed.add(claim)
    if sides:
        return sides
    if region.kind == "soft":
        a, b = _sentence(text, region.start)
        # "Left breast is negative.\nBI-RADS 5": a suspicious category is not the negative breast's.
        if not (suspicious and _NEGATIVE_BREAST.search(text[a:b])):
            return region.sides
    return _in_sentence(text, m, suspicious)


