"""Which breast a stated BI-RADS category belongs to, and which breasts a report describes.

First rule that applies to a mention:
1. the mention names its side itself ("BI-RADS: R2 L4", "BI-RADS: 1 (right), 4 (left)",
   a table row or column);
2. a breast is written right before it, or right after it when none precedes it in the
   sentence ("R BI-RADS 2", "BI-RADS 4a right breast", "BI-RADS 4 (left)"), even inside
   the other breast's section;
3. it stands in a hard per-breast section ("LEFT BREAST: ... BI-RADS 4", "R: BI-RADS 2");
4. it is bracketed after a breast's description ("left breast, irregular mass at 2
   o'clock with spiculated margins (BI-RADS 5)"): the bracket binds backwards;
5. a breast is named next to it in the same clause ("BI-RADS 4, left breast",
   "Left BI-RADS 4, right BI-RADS 1", "benign calcifications bilaterally, BI-RADS 2");
6. it stands in a soft section, a sentence that starts with a breast ("The left breast ...");
7. exactly one breast is named in its sentence ("Suspicious left breast mass, BI-RADS 4");
8. otherwise it is the exam's overall assessment.
A breast described as negative takes no category but 1: "right breast negative, BI-RADS 4"
and "BI-RADS 2, left breast negative" state the other breast's category. What a sentence
says about a breast is the sentence cut between the breasts it names (`_clause`).
"""

from __future__ import annotations

import re

from pipelines.labels.mentions import Mention
from pipelines.labels.sections import HARD_KINDS, Region, region_at, sides_of

_TOKEN = re.compile(
    r"\b(?P<side>right|left|rt|lt|rgt|lft|(?-i:R|L)(?![-/](?:CC|MLO))|bilateral(?:ly)?|both\s+(?:breasts|sides))\b"
    r"(?!\s+(?:screening|diagnostic|digital|mammogra\w*|exam\w*|study|views?|2D|3D|tomo\w*|ultrasound))",
    re.IGNORECASE,
)
_HEADER_LIKE = re.compile(r"\s*(?:breast|side)?\s*[:\-–—]")
_NEGATION = re.compile(
    r"\b(?:no|not|without|negative|unremarkable|normal|clear|free\s+of|absent)\b", re.IGNORECASE
)
# A breast described only like this is negative ("The left breast is unremarkable.",
# "Right breast without suspicious abnormality", "Left: nothing suspicious").
_NEGATIVE_BREAST = re.compile(
    r"\b(?:negative|neg\b|unremarkable|normal|clear|within\s+normal\s+limits|free\s+of"
    r"|(?:no|without|nothing)\s+(?:\w+\s+){0,2}(?:suspicious|evidence|abnormal\w*|findings?|masses?"
    r"|malignan\w*|calcifications?|changes|patholog\w*|lesions?|significant))\b",
    re.IGNORECASE,
)
# ... unless a finding comes first: "mass without suspicious features" describes a finding.
_FINDING = re.compile(
    r"\b(?:mass\w*|calcification\w*|asymmetr\w*|distortion|lesions?|nodul\w*|cysts?|carcinoma"
    r"|cancer|tumou?r|malignancy|densit(?:y|ies))\b",
    re.IGNORECASE,
)
_EXAM_WORDS = re.compile(r"\b(?:mammogra\w*|screening|exam\w*|views?|study|procedure|technique)\b", re.I)
_DIRECT_GAP = re.compile(r"[ \t]*(?:breast|side)?[ \t]*[:\-–—]?[ \t]*", re.IGNORECASE)
_DIRECT_AFTER = re.compile(r"[ \t]*(?:\(|(?:for|in|on|of)[ \t]+the[ \t]+)?[ \t]*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.;!?](?=\s|$)|\n")
_BREAK = re.compile(r"[,;](?=\s)|\b(?:and|but|while|whereas)\b", re.IGNORECASE)
_COORDINATED = re.compile(r"\s*(?:breasts?|sides?)?\s*(?:,|/|&|and|or)\s*(?:the\s+)?", re.IGNORECASE)


def _tokens(text: str, a: int, b: int) -> list[re.Match[str]]:
    return list(_TOKEN.finditer(text, a, b))


def _groups(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """Spans of the breasts named in text[a:b], coordinated ones ("right and left") as one."""
    groups: list[tuple[int, int]] = []
    for tok in _tokens(text, a, b):
        if groups and _COORDINATED.fullmatch(text, groups[-1][1], tok.start()):
            groups[-1] = (groups[-1][0], tok.end())
        else:
            groups.append((tok.start(), tok.end()))
    return groups


def _clause(text: str, token: re.Match[str]) -> str:
    """What its sentence says about the breast `token` names.

    A sentence that names several breasts is cut between them, at the last comma or "and"
    before a breast ("Irregular mass in the right breast, no suspicious findings in the left
    breast"); one that names one breast is read whole, commas and all ("No suspicious mass,
    calcification or distortion in the left breast").
    """
    a, b = _sentence(text, token.start())
    groups = _groups(text, a, b)
    i = next(i for i, g in enumerate(groups) if g[0] <= token.start() < g[1])
    start, end = a, b
    if i > 0:
        breaks = [m.end() for m in _BREAK.finditer(text, groups[i - 1][1], groups[i][0])]
        start = breaks[-1] if breaks else groups[i - 1][1]
    if i + 1 < len(groups):
        brk = _BREAK.search(text, groups[i][1], groups[i + 1][0])
        end = brk.start() if brk else groups[i + 1][0]
    return text[start:end]


def negative_clause(clause: str) -> bool:
    """True when the clause calls its breast negative, naming no finding before saying so."""
    hit = _NEGATIVE_BREAST.search(clause)
    return hit is not None and not _FINDING.search(clause, 0, hit.start())


def _refuses(category: int, clause: str) -> bool:
    """A breast named in a negative clause takes no suspicious (0, 3-6) or benign (2) category.

    "right breast negative, BI-RADS 4" and "BI-RADS 2, left breast negative" state another
    breast's category; only a 1 fits a breast called negative.
    """
    if category == 1:
        return False
    if category == 2:
        return negative_clause(clause)
    return bool(_NEGATION.search(clause))


def named_breasts(text: str, cut: list[Region]) -> tuple[frozenset[str], frozenset[str]]:
    """(breasts named with a finding, breasts named only as negative), history left out."""
    positive: set[str] = set()
    negative: set[str] = set()
    for tok in _TOKEN.finditer(text):
        if region_at(cut, tok.start()).kind == "history":
            continue
        clause = _clause(text, tok)
        sides = sides_of(tok.group("side"))
        # "MG screening bilateral", "Exam type: Diagnostic, both breasts": the exam's extent.
        if len(sides) == 2 and _EXAM_WORDS.search(text, *_sentence(text, tok.start())):
            continue
        (negative if negative_clause(clause) else positive).update(sides)
    return frozenset(positive), frozenset(negative - positive)


def _sentence(text: str, pos: int) -> tuple[int, int]:
    starts = [m.end() for m in _SENTENCE_END.finditer(text, 0, pos)]
    end = _SENTENCE_END.search(text, pos)
    return (starts[-1] if starts else 0), (end.start() if end else len(text))


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def _adjacent(
    text: str, m: Mention, lo: int, hi: int, claimed: set[int]
) -> tuple[frozenset[str], int | None]:
    """Sides named right before (or, failing that, right after) the mention."""
    before = _tokens(text, lo, m.start)
    if before:
        tok = before[-1]
        gap = text[tok.end() : m.start]
        if tok.start() not in claimed and _words(gap) <= 5:
            if not (m.category not in (1, 2) and _NEGATION.search(gap)):
                return sides_of(tok.group("side")), None
    after = _tokens(text, m.end, hi)
    if after:
        tok = after[0]
        gap = text[m.end : tok.start()]
        if _words(gap) <= 4 and not _HEADER_LIKE.match(text, tok.end()):
            if not _refuses(m.category, text[tok.start() : hi]):
                return sides_of(tok.group("side")), tok.start()
    return frozenset(), None


def _named_directly(text: str, m: Mention, lo: int, hi: int, claimed: set[int]) -> frozenset[str]:
    """The breast written right before or after the category ("R BI-RADS 2", "left breast:
    BI-RADS 4", "BI-RADS 4a right breast", "BI-RADS 4 (left)").

    It names the category's breast even inside the other breast's section (an "IMP: R
    BI-RADS 2; L BI-RADS 5" line after a "L breast -" section that nothing closed).
    """
    before = [t for t in _tokens(text, lo, m.start) if t.start() not in claimed]
    if before and _DIRECT_GAP.fullmatch(text, before[-1].end(), m.start):
        return sides_of(before[-1].group("side"))
    # A breast after the category counts only when none precedes it in the sentence:
    # "RIGHT BENIGN CYST BIRADS 2 LEFT NEGATIVE BIRADS 1" is the right breast's 2.
    after = None if before else _TOKEN.search(text, m.end, hi)
    if after and _DIRECT_AFTER.fullmatch(text, m.end, after.start()):
        if _HEADER_LIKE.match(text, after.end()):
            return frozenset()  # "BI-RADS 1\nRight breast: ..." heads the next section
        claimed.add(after.start())
        return sides_of(after.group("side"))
    return frozenset()


def _parenthesised(text: str, m: Mention, lo: int, hi: int, claimed: set[int]) -> frozenset[str]:
    """The breast a bracketed category annotates: "left breast, irregular mass ... (BI-RADS 4)".

    A bracket closes the description before it, so the category binds backwards to the
    last breast named, however long the description, and never to a breast named after it.
    """
    if not text[lo : m.start].rstrip().endswith(("(", "[")):
        return frozenset()
    close = re.search(r"[)\]]", text[m.end : hi])
    if close is None or _tokens(text, m.end, m.end + close.start()):
        return frozenset()  # "(BI-RADS 4, left)" names its breast inside the bracket
    before = [t for t in _tokens(text, lo, m.start) if t.start() not in claimed]
    if not before or _refuses(m.category, _clause(text, before[-1])):
        return frozenset()
    return sides_of(before[-1].group("side"))


def _in_sentence(text: str, m: Mention) -> frozenset[str]:
    a, b = _sentence(text, m.start)
    named: set[str] = set()
    for tok in _tokens(text, a, b):
        if not _refuses(m.category, _clause(text, tok)):
            named |= sides_of(tok.group("side"))
    return frozenset(named) if len(named) == 1 else frozenset()


def _soft(text: str, m: Mention, region: Region) -> frozenset[str]:
    """The breast of a soft section ("The left breast ..."), when it can carry the category."""
    a, b = _sentence(text, region.start)
    opening = text[a:b]
    # "Left breast is negative.\nBI-RADS 5": not the negative breast's; and a sentence that
    # names both breasts ("The left breast is dense and the right ...") is not one breast's.
    if m.category != 1 and negative_clause(opening):
        return frozenset()
    named = {s for tok in _tokens(text, a, b) for s in sides_of(tok.group("side"))}
    return region.sides if len(named) <= 1 else frozenset()


def sides_of_mention(
    text: str, m: Mention, region: Region, prev_end: int, next_start: int, claimed: set[int]
) -> frozenset[str]:
    """The breast(s) a mention assesses (rules in the module docstring); empty: overall."""
    if m.side:
        return frozenset({m.side})
    a, b = _sentence(text, m.start)
    lo, hi = max(a, prev_end), min(b, next_start)
    named = _named_directly(text, m, lo, hi, claimed)
    if named:
        return named
    if region.kind in HARD_KINDS:
        return region.sides
    sides = _parenthesised(text, m, lo, hi, claimed)
    if sides:
        return sides
    sides, claim = _adjacent(text, m, lo, hi, claimed)
    if claim is not None:
        claimed.add(claim)
    if sides:
        return sides
    if region.kind == "soft":
        sides = _soft(text, m, region)
        if sides:
            return sides
    return _in_sentence(text, m)
