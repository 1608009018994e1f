"""BI-RADS category per breast from a mammography report, with where each one came from.

The text is first cleaned of dictation, speech-recognition and OCR slips (`transcripts`)
and its checkbox forms read as statements (`checkboxes`). Mentions are found by
`mentions`, given a breast by `laterality`. Then:
- several categories of one breast combine to the most severe in ACR order
  (1 < 2 < 3 < 6 < 0 < 4 < 5): an unresolved finding (0) outranks a benign one, and a
  new suspicious finding (4, 5) in a breast with a known cancer (6) makes that breast 4/5;
- the overall assessment (a category linked to no breast) goes to the breasts the report
  describes findings in, else to those it does not call negative ("... BI-RADS 0 ...
  Left breast negative" is the right breast's 0), else to both (to the examined breast
  in a unilateral exam); a benign overall (1, 2) bounds both breasts but one called only
  negative. When some breast has its own category, the overall one fills the other only
  if it is more severe than all of them (otherwise the assessed breast already explains
  it); when no other breast can take it, it raises a known cancer's 6 (ACR order);
- a breast the report describes only in negative terms ("the left breast is
  unremarkable"), beside an assessed one, is BI-RADS 1;
- a report that states no category gives nothing: no category is guessed from prose;
- an ADDENDUM (wherever it is printed) that states a category supersedes the original for
  the breasts it names; a category without a breast replaces the breast(s) that carried
  the overall assessment. Provenance is "birads-report" or "birads-addendum".
"""

from __future__ import annotations

import dataclasses
import re

from pipelines.labels.checkboxes import untick
from pipelines.labels.laterality import named_breasts, sides_of_mention
from pipelines.labels.mentions import RANK, find_mentions
from pipelines.labels.sections import region_at, regions
from pipelines.labels.transcripts import clean_transcript

SIDES = ("R", "L")
_UNILATERAL = re.compile(
    r"\b(?:unilateral\s+)?(?P<side>right|left)\s+(?:breast\s+)?(?:diagnostic\s+|screening\s+)?"
    r"(?:digital\s+)?(?:mammogra(?:m|phy)|tomosynthesis)"
    r"|^[^\n]*\b(?:additional|diagnostic|spot|magnification)\b[^\n.;]{0,30}?\b(?P<side2>right|left)\s+breast\b",
    re.IGNORECASE,
)
_ADDENDUM = re.compile(
    r"(?:^|(?<=[.!?])[ \t]+)[ \t*=#\-]*(?:ADDENDUM|Addendum)\b[^\n:]{0,60}:?", re.MULTILINE
)
_ORIGINAL = re.compile(r"^[ \t*=#\-]*ORIGINAL\s+REPORT\b", re.MULTILINE | re.IGNORECASE)
_REGISTERED = re.compile(r"(RADS)\s*\((?:R|TM)\)", re.IGNORECASE)
PROVENANCE_REPORT, PROVENANCE_ADDENDUM = "birads-report", "birads-addendum"
POSITIVE, NEGATIVE = frozenset({4, 5, 6}), frozenset({1, 2})


@dataclasses.dataclass(frozen=True)
class BiradsReading:
    """Per-breast categories ("R", "L") and each one's provenance."""

    categories: dict[str, int]
    sources: dict[str, str]


@dataclasses.dataclass(frozen=True)
class _Assessments:
    per_side: dict[str, int]
    overall: int | None
    named: frozenset[str] = frozenset()  # breasts named with a finding (not only negatively)
    negative_only: frozenset[str] = frozenset()  # breasts named only as negative


def most_severe(categories: list[int]) -> int:
    """The category that decides a breast's assessment, in ACR order."""
    return max(categories, key=RANK.__getitem__)


def assessments(text: str) -> _Assessments:
    """Per-breast categories stated for each breast, and the overall one, of one text."""
    mentions = find_mentions(text)
    cut = regions(text)
    per_side: dict[str, list[int]] = {}
    overall: list[int] = []
    claimed: set[int] = set()
    for i, m in enumerate(mentions):
        region = region_at(cut, m.start)
        if region.kind == "history":
            continue
        prev_end = mentions[i - 1].end if i else 0
        next_start = mentions[i + 1].start if i + 1 < len(mentions) else len(text)
        sides = sides_of_mention(text, m, region, prev_end, next_start, claimed)
        for side in sides:
            per_side.setdefault(side, []).append(m.category)
        if not sides:
            overall.append(m.category)
    named, negative_only = named_breasts(text, cut)
    return _Assessments(
        {s: most_severe(c) for s, c in per_side.items()},
        most_severe(overall) if overall else None,
        named,
        negative_only,
    )


def _examined(text: str) -> tuple[str, ...]:
    """The breasts a report covers: one in a unilateral exam, else both."""
    head = text[:300]
    if re.search(r"\bbilateral\b|\bboth\s+breasts\b", head, re.IGNORECASE):
        return SIDES
    hit = _UNILATERAL.search(head)
    if hit is None:
        return SIDES
    return ((hit.group("side") or hit.group("side2"))[0].upper(),)


def _targets(found: _Assessments, examined: tuple[str, ...]) -> list[str]:
    """The breasts an overall category (one linked to no breast) belongs to.

    The breasts described with findings, else the examined breasts the report does not
    call negative ("... BI-RADS 0 ... Left breast negative": the right breast's), else all.
    A benign overall (1, 2) bounds every breast but one called only negative (that one is 1).
    """
    others = [s for s in examined if s not in found.negative_only]
    if found.overall in NEGATIVE:
        return others or list(examined)
    return [s for s in examined if s in found.named] or others or list(examined)


def _resolve(found: _Assessments, examined: tuple[str, ...]) -> dict[str, int]:
    """Per-breast categories of the original report (see the module docstring)."""
    out = dict(found.per_side)
    if found.overall is not None:
        targets = _targets(found, examined)
        if not out:
            out = {s: found.overall for s in targets}
        elif RANK[found.overall] > max(RANK[c] for c in out.values()):
            free = [s for s in targets if s not in out]
            # ACR order puts 0, 4 and 5 above 6: a new suspicious finding in a breast with
            # a known cancer is assessed 4/5, not 6. So an overall 0/4/5 that no unassessed
            # breast can take raises the breast that only carried the known cancer.
            raised = [s for s in targets if out.get(s) == 6]
            out.update({s: found.overall for s in free or raised})
    if out:
        # A breast the report only calls negative, beside an assessed one, is BI-RADS 1.
        out.update({s: 1 for s in examined if s not in out and s in found.negative_only})
    return out


def _revise(
    base: dict[str, int], sources: dict[str, str], found: _Assessments, examined: tuple[str, ...]
) -> None:
    """Apply one addendum's assessments to `base` in place."""
    for side, category in found.per_side.items():
        base[side], sources[side] = category, PROVENANCE_ADDENDUM
    if found.overall is None:
        return
    rest = [s for s in examined if s not in found.per_side]
    top = max((RANK[base[s]] for s in rest if s in base), default=None)
    for side in rest:
        old = base.get(side)
        if old is None or top is None or RANK[old] == top or RANK[old] > RANK[found.overall]:
            base[side], sources[side] = found.overall, PROVENANCE_ADDENDUM


def _parts(text: str) -> tuple[str, list[str]]:
    """(the original report, its addenda in order); some RIS print the addendum first."""
    cuts = sorted([(m.start(), True) for m in _ADDENDUM.finditer(text)]
                  + [(m.start(), False) for m in _ORIGINAL.finditer(text)])
    if not cuts or cuts[0][0] > 0:
        cuts.insert(0, (0, False))
    spans = zip(cuts, [*(c[0] for c in cuts[1:]), len(text)], strict=True)
    pieces = [(text[start:end], is_addendum) for (start, is_addendum), end in spans]
    original = "\n".join(p for p, is_addendum in pieces if not is_addendum)
    return original, [p for p, is_addendum in pieces if is_addendum]


def read_report(text: str) -> BiradsReading:
    """Per-breast BI-RADS of a report, addenda applied in order; {} when none is stated."""
    text = untick(clean_transcript(text))  # dictation, OCR slips and checkbox forms as plain text
    text = _REGISTERED.sub(r"\1®", text)  # "BI-RADS(R)" is the registered mark, not the right breast
    original, addenda = _parts(text)
    examined = _examined(text)
    categories = _resolve(assessments(original), examined)
    sources = dict.fromkeys(categories, PROVENANCE_REPORT)
    for addendum in addenda:
        _revise(categories, sources, assessments(addendum), examined)
    return BiradsReading(categories, sources)


def label_of(category: int | None) -> int | None:
    """1 for suspicious (BI-RADS 4-6), 0 for negative/benign (1-2), None otherwise.

    0 (incomplete, recalled) and 3 (probably benign, short follow-up) are unknown: the
    report does not decide the outcome, only the work-up, follow-up or pathology does.
    """
    if category in POSITIVE:
        return 1
    if category in NEGATIVE:
        return 0
    return None


def birads_by_side(text: str) -> dict[str, int]:
    """{"R": category, "L": category}, either side absent when the report gives it none."""
    return read_report(text).categories
