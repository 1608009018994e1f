"""Burned-in text in the pixels: a line of glyph-sized bright marks outside the breast.

Modalities and secondary-capture tools burn names, ids and dates into the background of
an image as bright characters. The detector looks only where the body is not (the largest
region brighter than air, holes filled, grown by a margin), for connected marks as bright
as tissue and of glyph size,
and groups marks that sit on one baseline with character spacing into lines. A line of
at least `min_glyphs` marks is text. Lead laterality markers ("R", "LMLO") are a few
glyphs and pass; a name, an id or a date is longer.

It does not read the text (no OCR): a detected line is a reason to quarantine the image
or to mask the line, whatever it says. Text drawn over the breast itself is not looked
for: screening images carry their annotations in the background.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipelines.errors import InvalidStudy
from pipelines.imaging.crop import otsu_threshold

# Detection runs on at most this many rows (block maxima keep thin strokes).
DETECT_ROWS = 1024
# Glyph height as a share of the image height (about 1.5 to 25 mm on a 24x30 cm detector).
MIN_GLYPH, MAX_GLYPH = 0.005, 0.08
# A glyph is at most this many times as wide as it is tall ("M", "W", a caret); a wider
# mark is letters run together if it is stroke-like (at most WORD_FILL of its box lit).
MAX_GLYPH_ASPECT = 2.0
WORD_FILL = 0.7
# Letters run together count one per this many glyph heights of width.
GLYPH_WIDTH = 0.75
# Marks of one line: baselines within half a glyph, gaps under this many glyph heights.
MAX_GAP = 1.2
# The body is grown by this share of the image height before looking around it.
BODY_MARGIN = 0.01
# More glyph-sized marks than this outside the body cannot be checked: refused.
MAX_MARKS = 5000


@dataclasses.dataclass(frozen=True)
class TextLine:
    """A detected line, as a box in the pixels of the image given (half-open)."""

    top: int
    bottom: int
    left: int
    right: int
    glyphs: int

    def describe(self, rows: int, cols: int) -> str:
        """Where the line is, in words (no content: the text is never read)."""
        vertical = "top" if (self.top + self.bottom) / 2 < rows / 2 else "bottom"
        horizontal = "left" if (self.left + self.right) / 2 < cols / 2 else "right"
        return f"{self.glyphs} characters at the {vertical} {horizontal}"


def _block_max(arr: np.ndarray, step: int) -> np.ndarray:
    """The maximum of each step x step block (strided maxima: faster than a reshaped max)."""
    rows, cols = arr.shape[0] // step * step, arr.shape[1] // step * step
    out = arr[0:rows:step, 0:cols:step].copy()
    for dy in range(step):
        for dx in range(step):
            if dy or dx:
                np.maximum(out, arr[dy:rows:step, dx:cols:step], out=out)
    return out


def body_mask(work: np.ndarray, bright: float) -> np.ndarray:
    """The body: the largest region brighter than air, holes filled (all False if none).

    Air is told from dim tissue (fat at the skin line) by a second Otsu threshold taken
    below the tissue threshold `bright`. Found at half resolution (the outline needs no
    more: it is grown by a margin), returned at `work`'s.
    """
    from scipy import ndimage

    full = work.shape
    work = work[::2, ::2]
    dark = work[work <= bright]
    air = otsu_threshold(dark) if dark.size else bright
    above = ndimage.binary_opening(work > air, structure=np.ones((3, 3), dtype=bool))
    labels, count = ndimage.label(above)
    if count == 0:  # at `work`'s resolution too (a half-size mask failed the caller's `&`)
        return np.zeros(full, dtype=bool)
    biggest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    body = np.asarray(ndimage.binary_fill_holes(labels == biggest))
    return body.repeat(2, axis=0).repeat(2, axis=1)[:full[0], :full[1]]


def _marks(bright: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of the glyph-high connected bright marks: single glyphs,
    or letters run together (a word at low resolution) if stroke-like."""
    from scipy import ndimage

    labels, count = ndimage.label(bright, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    rows = bright.shape[0]
    low, high = max(3, int(MIN_GLYPH * rows)), max(4, int(np.ceil(MAX_GLYPH * rows)))
    areas = np.bincount(labels.ravel())
    out = []
    for number, box in enumerate(ndimage.find_objects(labels), 1):
        if box is None:
            continue
        top, bottom, left, right = box[0].start, box[0].stop, box[1].start, box[1].stop
        height, width = bottom - top, right - left
        if not low <= height <= high:
            continue
        if width <= MAX_GLYPH_ASPECT * height or areas[number] <= WORD_FILL * height * width:
            out.append((top, bottom, left, right))
    return out


def _glyphs(mark: tuple[int, int, int, int]) -> int:
    """How many characters a mark holds: one, or for letters run together, by width."""
    top, bottom, left, right = mark
    height, width = bottom - top, right - left
    if width <= MAX_GLYPH_ASPECT * height:
        return 1
    return max(1, int(round(width / (GLYPH_WIDTH * height))))


def _lines(marks: list[tuple[int, int, int, int]]) -> list[list[tuple[int, int, int, int]]]:
    """Marks grouped into lines: same baseline band, character spacing, similar height."""
    parent = list(range(len(marks)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(marks)), key=lambda i: marks[i][2])
    for n, i in enumerate(order):
        top_i, bottom_i, _, right_i = marks[i]
        height_i = bottom_i - top_i
        for j in order[n + 1:]:
            top_j, bottom_j, left_j, _ = marks[j]
            height_j = bottom_j - top_j
            tall = max(height_i, height_j)
            if left_j - right_i > MAX_GAP * tall:
                break  # sorted by left edge: every later mark is further away
            overlap = min(bottom_i, bottom_j) - max(top_i, top_j)
            if overlap >= 0.5 * min(height_i, height_j) and tall <= 2 * min(height_i, height_j):
                parent[root(j)] = root(i)
    groups: dict[int, list[tuple[int, int, int, int]]] = {}
    for i, mark in enumerate(marks):
        groups.setdefault(root(i), []).append(mark)
    return list(groups.values())


def find_text_lines(display: np.ndarray, min_glyphs: int = 6) -> list[TextLine]:
    """Lines of burned-in text outside the breast in a displayed image (bright = dense).

    Args:
        display: the image as displayed (MONOCHROME1 already inverted), any orientation.
        min_glyphs: the fewest marks on one line that count as text.

    Returns:
        The lines found, as boxes in `display`'s pixels, grown by half a glyph.

    Raises:
        InvalidStudy: the background is so busy that text cannot be ruled out.
    """
    from scipy import ndimage

    if display.ndim != 2 or min(display.shape) < 16:
        return []
    step = max(1, int(np.ceil(display.shape[0] / DETECT_ROWS)))
    work = _block_max(np.asarray(display, dtype=np.float32), step) if step > 1 else display
    if float(work.max()) - float(work.min()) < 1e-6:
        return []
    threshold = otsu_threshold(work[::2, ::2])
    body = body_mask(work, threshold)
    if body.any():
        grow = 2 * max(1, int(BODY_MARGIN * work.shape[0])) + 1
        body = ndimage.maximum_filter(body, size=grow)  # a square dilation, separable
    marks = _marks((work > threshold) & ~body)
    if len(marks) > MAX_MARKS:
        raise InvalidStudy(f"{len(marks)} bright marks outside the body: too busy to rule out "
                           "burned-in text")
    rows, cols = display.shape
    found = []
    for group in _lines(marks):
        glyphs = sum(_glyphs(m) for m in group)
        if glyphs < min_glyphs:
            continue
        top, bottom = min(m[0] for m in group), max(m[1] for m in group)
        left, right = min(m[2] for m in group), max(m[3] for m in group)
        pad = (bottom - top) // 2 + 1
        found.append(TextLine(
            top=max(0, (top - pad) * step), bottom=min(rows, (bottom + pad) * step),
            left=max(0, (left - pad) * step), right=min(cols, (right + pad) * step),
            glyphs=glyphs,
        ))
    return sorted(found, key=lambda line: (line.top, line.left))


def mask_lines(display: np.ndarray, lines: list[TextLine]) -> np.ndarray:
    """A copy of `display` with each line's box set to the darkest value (background)."""
    out = np.array(display, dtype=np.float32, copy=True)
    background = float(out.min())
    for line in lines:
        out[line.top:line.bottom, line.left:line.right] = background
    return out
