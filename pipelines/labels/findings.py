"""An exam label from a report's mention of a finding, for tasks labelled by `findings`.

A task that is not labelled by BI-RADS (a chest radiograph's nodule, say) names the words
of its positive finding (`finding_terms` in pipelines/tasks.yaml). The exam is positive
when the report affirms one of them, negative when it has a report that affirms none, and
unlabelled without a report. A mention is not affirmed when it is negated in its sentence
("no nodule", "without a focal opacity", "negative for mass", "nodule is not seen") or
sits in the request rather than the reading (INDICATION, HISTORY, CLINICAL, REASON,
COMPARISON, TECHNIQUE sections, and "rule out ..."), after the NegEx idea of cue words in
a window before or after the term (Chapman et al., 2001).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PROVENANCE = "report-findings"

# cues before the term, within its clause; "no evidence of" and the like end in one of these
_BEFORE = re.compile(
    r"\b(?:no|not|without|negative\s+for|free\s+of|absence\s+of|absent|rule\s+out|r/o|"
    r"ruled\s+out|resolution\s+of|resolved|exclude|excluded|nor)\b",
    re.IGNORECASE,
)
# cues after the term, within its clause
_AFTER = re.compile(
    r"^[^.;:]*?\b(?:(?:is|are|was|were)\s+(?:not\s+(?:seen|identified|present|visible|evident)|absent|"
    r"resolved|excluded)|not\s+(?:seen|identified|present|visible|evident)|has\s+resolved|"
    r"have\s+resolved|ruled\s+out)\b",
    re.IGNORECASE,
)
# scope breaks: a cue does not reach across them ("no effusion, but a nodule ..."); a comma
# does not break it, so a negated list stays negated ("no focal opacity, nodule or mass")
_BREAK = re.compile(r"\b(?:but|however|although|except|though|yet|whereas)\b|;", re.IGNORECASE)
_WINDOW = 6  # words between a cue before the term and the term (NegEx's scope)
_REQUEST = re.compile(
    r"^\s*(?:indication|history|clinical(?:\s+(?:history|information|indication))?|reason(?:\s+for"
    r"\s+(?:exam|study|examination))?|comparison|technique)s?\s*:", re.IGNORECASE)
_HEADER = re.compile(r"^\s*[A-Za-z][A-Za-z /]{1,40}:")
_SENTENCE = re.compile(r"[^.!?\n]+")


def _reading_lines(text: str) -> list[str]:
    """The report's lines outside the request sections (a section runs to the next header)."""
    kept, in_request = [], False
    for line in text.splitlines():
        if _HEADER.match(line):
            in_request = bool(_REQUEST.match(line))
            if in_request:
                continue
            line = line.split(":", 1)[1]
        if not in_request:
            kept.append(line)
    return kept


def _negated(sentence: str, start: int, end: int) -> bool:
    before = sentence[:start]
    breaks = list(_BREAK.finditer(before))
    clause = before[breaks[-1].end():] if breaks else before
    for cue in _BEFORE.finditer(clause):
        if len(clause[cue.end():].split()) <= _WINDOW:
            return True
    after = sentence[end:]
    cut = _BREAK.search(after)
    return bool(_AFTER.search(after[:cut.start()] if cut else after))


def affirmed_mentions(text: str, terms: Sequence[str]) -> list[str]:
    """The sentences of the reading that affirm one of `terms` (whole words, any case)."""
    if not terms:
        return []
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in terms) + r")\b", re.IGNORECASE)
    found = []
    for line in _reading_lines(text):
        for sentence in _SENTENCE.findall(line):
            if any(not _negated(sentence, m.start(), m.end()) for m in pattern.finditer(sentence)):
                found.append(sentence.strip())
    return found


def label_from_report(text: str, terms: Sequence[str]) -> int | None:
    """1 when the report affirms a finding, 0 when it affirms none, None without a report."""
    if not text.strip():
        return None
    return 1 if affirmed_mentions(text, terms) else 0
