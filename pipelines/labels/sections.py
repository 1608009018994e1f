"""A report cut into regions: per-breast sections, neutral sections, history sections.

Hard side headers end with a colon or a dash ("RIGHT BREAST:", "Left -", "R:", "Bilateral:")
and start a line, a sentence or follow a category ("... BI-RADS 2 L: BI-RADS 4"), or stand
alone on their line ("RIGHT BREAST"); they run until the next header, and one followed by
text on its line ("Right breast: no findings.") also ends with its paragraph (a blank line)
so that it does not swallow an assessment paragraph below it. Soft side headers
are sentences that start with a breast ("The left breast shows ..."); they run until the
next header or blank line and are ignored inside a hard side section of the same breast
(one about the other breast ends it). Mentions in history sections (COMPARISON, HISTORY,
INDICATION) describe earlier exams and are never the current assessment.
"""

from __future__ import annotations

import dataclasses
import re

_BOUND = r"(?:^[ \t]*|(?<=[.;:!?,)\]])[ \t]+|(?<=\d)[ \t]+)(?:[-*•][ \t]*|\d[.)][ \t]*)?"
_SIDE_WORD = r"(?P<side>right|left|rt\.?|lt\.?|rgt\.?|lft\.?|(?-i:R|L)|bilateral(?:ly)?|both\s+breasts)"
HARD = re.compile(
    rf"{_BOUND}{_SIDE_WORD}(?:[ \t]+(?:breast|side|mammogram))?(?:[ \t]+(?:findings?|assessment|impression))?"
    r"[ \t]*(?::|[-–—](?=[ \t])|$)",
    re.IGNORECASE | re.MULTILINE,
)
SOFT = re.compile(
    r"(?:^[ \t]*|(?<=[.;!?])[ \t]+)(?:(?:the|in\s+the|on\s+the)\s+)?(?P<side>right|left)\b(?![-\s]*sided)",
    re.IGNORECASE | re.MULTILINE,
)
# Sub-headers of a breast's block ("RIGHT BREAST" on its own line, then "Findings:",
# "Assessment:") stay inside that block; they close an inline "RIGHT BREAST: ..." section.
_SUB_NAMES = r"FINDINGS|(?:FINAL\s+)?AS{1,2}ES{1,2}MENT|(?:BREAST\s+)?(?:DENSITY|COMPOSITION)|RESULTS?"
_NEUTRAL_NAMES = (
    r"IMP(?:RES{1,2}IONS?)?|CONCLUSIONS?|SUMMARY|OVERALL(?:\s+(?:ASSESSMENT|IMPRESSION))?|RECOMMENDATIONS?"
    r"|CLASSIFICATION|OPINION|DIAGNOSIS|FINAL"
    rf"|TECHNIQUE|EXAM(?:INATION)?|PROCEDURE|{_SUB_NAMES}"
)
_HISTORY_NAMES = r"COMPARISONS?|(?:CLINICAL\s+)?HISTORY|INDICATIONS?|REASON\s+FOR\s+EXAM(?:INATION)?|PRIORS?"
NEUTRAL = re.compile(
    rf"(?:^[ \t]*|(?<=[.;!?])[ \t]+)(?P<name>{_NEUTRAL_NAMES}|{_HISTORY_NAMES})"
    r"(?:[ \t]*\([^)\n]{0,30}\))?[ \t]*:",  # "Final assessment (per breast):"
    re.IGNORECASE | re.MULTILINE,
)
_HISTORY = re.compile(_HISTORY_NAMES, re.IGNORECASE)
_SUB = re.compile(_SUB_NAMES, re.IGNORECASE)
HARD_KINDS = ("side", "block")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_LINE_START = re.compile(r"(?:^|\n)[ \t]*(?:[-*•][ \t]*|\d[.)][ \t]*)?\Z")


@dataclasses.dataclass(frozen=True)
class Region:
    """[start, end) of the text; `sides` is empty outside per-breast sections."""

    start: int
    end: int
    kind: str  # "side", "block" (a side header on its own line), "soft", "neutral" or "history"
    sides: frozenset[str] = frozenset()


def sides_of(word: str) -> frozenset[str]:
    """{"R"}, {"L"} or both for a side word ("Rt.", "LEFT", "bilaterally")."""
    w = word.strip(" .").lower()
    if w.startswith(("bilateral", "both")):
        return frozenset({"R", "L"})
    return frozenset({"R"}) if w.startswith("r") else frozenset({"L"})


def _headers(text: str) -> list[tuple[int, int, str, frozenset[str]]]:
    heads = []
    for m in HARD.finditer(text):
        block = not text[m.end() : text.find("\n", m.end()) % (len(text) + 1)].strip()
        bare = m.group(0).rstrip()[-1:] not in ":-–—"
        if block and bare and not _LINE_START.search(text, 0, m.start("side")):
            continue  # "Exam type: Diagnostic, both breasts" ends a line but heads nothing
        heads.append((m.start("side"), m.end(), "block" if block else "side", sides_of(m.group("side"))))
    for m in NEUTRAL.finditer(text):
        name = m.group("name")
        kind = "history" if _HISTORY.fullmatch(name) else "sub" if _SUB.fullmatch(name) else "neutral"
        heads.append((m.start("name"), m.end(), kind, frozenset()))
    taken = {h[0] for h in heads}
    for m in SOFT.finditer(text):
        if not any(abs(m.start("side") - t) < 12 for t in taken):
            heads.append((m.start("side"), m.start("side"), "soft", sides_of(m.group("side"))))
    return sorted(heads)


def regions(text: str) -> list[Region]:
    """The report's regions in order, covering the text from its first header on."""
    out = [Region(0, len(text), "neutral")]
    for start, body, kind, sides in _headers(text):
        current = out[-1].kind
        # A sentence about the same breast stays in its hard section; one that starts with
        # the other breast ("LEFT BREAST: mass, BI-RADS 6.\nRight breast BI-RADS 1.") ends it.
        inside = kind == "soft" and current in HARD_KINDS and sides <= out[-1].sides
        if inside or (kind == "sub" and current == "block"):
            continue
        kind = "neutral" if kind == "sub" else kind
        out[-1] = dataclasses.replace(out[-1], end=min(out[-1].end, start))
        end = len(text)
        if kind == "history":
            newline = text.find("\n", body)
            end = newline if newline >= 0 else end
        elif kind in ("soft", "side"):
            blank = _BLANK_LINE.search(text, body)
            end = blank.start() if blank else end
        out.append(Region(body, end, kind, sides))
    return out


def region_at(regions_: list[Region], pos: int) -> Region:
    """The last region that starts at or before `pos` and still contains it."""
    for region in reversed(regions_):
        if region.start <= pos < region.end:
            return region
    return Region(pos, pos + 1, "neutral")
