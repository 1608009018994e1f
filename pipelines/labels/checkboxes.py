"""Checkbox forms rewritten as the statements they make.

A form lists every option and ticks one: "Right breast: [ ] BI-RADS 0 [x] BI-RADS 1 ...",
"Left breast BI-RADS: ☒ 0 ☐ 1 ...", or one option a line under a heading:

    Final BI-RADS assessment (bilateral):
    ( ) 1 - Negative
    (X) 2 - Benign

An unticked option states nothing, so it is dropped; a ticked one is kept without its box
("Right breast: BI-RADS 1"). A line of unticked options only is dropped whole. A ticked
option that is a bare category ("2 - Benign"), on a line of its own under a heading that
names BI-RADS or the assessment, is written "BI-RADS 2 - Benign": the heading is what
makes the number a category. Text without at least two boxes is returned unchanged.
"""

from __future__ import annotations

import re

_BOX = re.compile(
    r"(?P<ticked>\[[ \t]?[xX✓✔][ \t]?\]|\([ \t]?[xX✓✔][ \t]?\)|[☒☑])"
    r"|(?P<empty>\[[ \t]?\]|\([ \t]?\)|[☐□])"
)
_BARE_CATEGORY = re.compile(
    r"[ \t]*(?:[0-6](?:[a-c])?|(?-i:VI|IV|V|III|II|I))\b(?!\s*(?:cm|mm|o'?\s?clock))", re.IGNORECASE
)
_ASSESSMENT_HEADING = re.compile(r"\bB[Il1]-?\s?RADS?\b|\bassessment\b|\bcategory\b", re.IGNORECASE)


def _options(line: str, boxes: list[re.Match[str]]) -> list[tuple[bool, str]]:
    """(ticked, text) of each option of a line, the text running to the next box."""
    ends = [b.start() for b in boxes[1:]] + [len(line)]
    return [(b.group("ticked") is not None, line[b.end() : end].strip())
            for b, end in zip(boxes, ends, strict=True)]


def _rewrite(line: str, heading: str) -> str | None:
    """The line with unticked options dropped and ticked ones unboxed; None: drop the line."""
    boxes = list(_BOX.finditer(line))
    if not boxes:
        return line
    prefix = line[: boxes[0].start()]
    ticked = [option for is_ticked, option in _options(line, boxes) if is_ticked]
    if not prefix.strip():
        if not ticked:
            return None
        if len(ticked) == 1 and _BARE_CATEGORY.match(ticked[0]) and _ASSESSMENT_HEADING.search(heading):
            ticked = [f"BI-RADS {ticked[0]}"]
    return (prefix + "  ".join(ticked)).rstrip()


def untick(text: str) -> str:
    """The text with its checkbox options read as statements (see the module docstring).

    Args:
        text: one report.

    Returns:
        The report with unticked options dropped and ticked ones written plainly.
    """
    if len(_BOX.findall(text)) < 2:
        return text
    out: list[str] = []
    heading = ""
    for line in text.split("\n"):
        first = _BOX.search(line)
        if first is None or line[: first.start()].strip():
            heading = line  # a line that does not open with a box heads the ones below it
        rewritten = _rewrite(line, heading)
        if rewritten is not None:
            out.append(rewritten)
    return "\n".join(out)
