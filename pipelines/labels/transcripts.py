"""Report text as dictated, recognised or scanned, rewritten to what the radiologist meant.

Three kinds of transcript slip are undone before a report is read:
- dictation transcribed word for word: "period", "comma", "colon", "new paragraph",
  "new line" spoken as words ("impression colon left breast BI-RADS 1 period"). Only in a
  report that reads as dictated (it says "new line"/"new paragraph"/"end of dictation",
  or speaks "period" at least twice and prints fewer full stops than it speaks);
- speech recognition or spacing that splits the acronym: "by rads 2", "B I RADS 1",
  "B I-RADS 3" are "BI-RADS";
- OCR and typing slips in the breast words: "Ieft"/"1eft" (l read as I or 1, as in
  "Bl-RADS") and the transposed "Rigth" are "left" and "Right".
"""

from __future__ import annotations

import re

_DICTATED = re.compile(r"\b(?:new\s+(?:paragraph|line)|end\s+of\s+dictation)\b", re.IGNORECASE)
_SPOKEN_PERIOD = re.compile(r"\bperiod\b", re.IGNORECASE)
# Spoken punctuation, each with what it stands for; the spaces before it go with it.
_SPOKEN = (
    (re.compile(r"[ \t]*\bend\s+of\s+dictation\b[ \t]*", re.IGNORECASE), ""),
    (re.compile(r"[ \t]*\bnew\s+paragraph\b[ \t]*", re.IGNORECASE), "\n\n"),
    (re.compile(r"[ \t]*\bnew\s+line\b[ \t]*", re.IGNORECASE), "\n"),
    (re.compile(r"[ \t]*\bfull\s+stop\b|[ \t]*\bperiod\b", re.IGNORECASE), "."),
    (re.compile(r"[ \t]*\bsemicolon\b", re.IGNORECASE), ";"),
    (re.compile(r"[ \t]*\bcolon\b", re.IGNORECASE), ":"),
    (re.compile(r"[ \t]*\bcomma\b", re.IGNORECASE), ","),
)
_SPLIT_ACRONYM = re.compile(r"\b(?:by|bye|b[ \t]+i)(?:[ \t]*-[ \t]*|[ \t]+)rads\b", re.IGNORECASE)
_OCR_LEFT = re.compile(r"\b[I1](?=eft\b|EFT\b)")  # "Ieft", "1EFT"; never "I eft"
_TYPED_RIGHT = re.compile(r"\b(?P<r>r)igth\b", re.IGNORECASE)


def is_dictated(text: str) -> bool:
    """True when the text spells out its punctuation as words."""
    if _DICTATED.search(text):
        return True
    spoken = len(_SPOKEN_PERIOD.findall(text))
    return spoken >= 2 and text.count(".") < spoken


def undictate(text: str) -> str:
    """The dictated text with its spoken punctuation written as punctuation."""
    for pattern, mark in _SPOKEN:
        text = pattern.sub(mark, text)
    return text


def clean_transcript(text: str) -> str:
    """The report with dictation, speech-recognition and OCR slips undone (module docstring).

    Args:
        text: one report, as stored.

    Returns:
        The text to read categories from; unchanged when it shows none of these slips.
    """
    if is_dictated(text):
        text = undictate(text)
    text = _SPLIT_ACRONYM.sub("BI-RADS", text)
    text = _OCR_LEFT.sub(lambda m: "l" if m.group(0) == "1" and m.string[m.end()] == "e" else "L", text)
    return _TYPED_RIGHT.sub(lambda m: f"{m.group('r')}ight", text)
