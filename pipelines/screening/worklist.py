"""The radiologists' worklist: a static page per night and task, CSV and JSON exports of
the same rows, and an index of every night.

Layout under the worklists folder (`RadflowSettings.worklists_dir`):

    index.html                       every night, newest first, with exam and flag counts
    <task>/<date>                    symlink to the published version, `.<date>.<token>/`:
        index.html                   the page, sorted by suspicion, then score
        worklist.csv, worklist.json  the same rows without images
        img/<rank>-<view>.png        the model input, THUMB_HEIGHT px high
        img/<rank>-<view>-heat.png   the same with the heatmap overlaid

A night is written to a fresh hidden folder and published by replacing the symlink in one
rename: a reader sees the previous night or the new one, never a mix. The old version is
removed afterwards. Nothing written carries a time stamp, so a rerun with the same inputs
writes the same bytes. Pages need no network and no JavaScript (they work from file://).

`drafted_night` writes a night in parts, so that its caller holds one batch's images at a
time: every exam's rank is fixed first from the whole night's entries (without images),
the images go in batch by batch (`NightDraft.render`), and the page and exports are
written and the night published when the block ends. `publish_night` does it in one go.

CSV columns, in this order (stable; add at the end only): study_date, task, model_version,
rank, exam_id, suspicion, score, flagged (0/1), flag_reason, discounted_views (";"-joined),
qc_flags ("VIEW:code" ";"-joined), qc_reasons ("VIEW: reason" ";"-joined), study_url, then
`score_<VIEW>` for each view of the night, in the order the entries list them.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import html
import io
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.domain import QcFlag, Quarantined
from pipelines.errors import PermanentError
from pipelines.publish import publish_linked_dir, write_text

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

THUMB_HEIGHT = 128
CSV_COLUMNS = ("study_date", "task", "model_version", "rank", "exam_id", "suspicion", "score",
               "flagged", "flag_reason", "discounted_views", "qc_flags", "qc_reasons", "study_url")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TASK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclasses.dataclass(frozen=True)
class WorklistEntry:
    """One screened exam as the worklist shows it.

    `exam_id` is a pseudonym; `qc` holds the flags of the discounted views; `images` maps a
    view to (model input float [H, W] in [0, 1], heatmap float [h, w] >= 0, any size: it is
    stretched over the image; values above 1 are scaled by the map's maximum).
    """

    exam_id: str
    score: float
    suspicion: int
    flagged: bool
    flag_reason: str
    view_scores: dict[str, float]
    qc: dict[str, list[QcFlag]]
    study_url: str
    images: dict[str, tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Night:
    """What the page says about the whole night (`shadow`: the shadow's agreement, as JSON)."""

    study_date: str
    task: str
    model_version: str
    shadow: dict[str, Any] | None
    quarantined: int
    capacity: int | None
    # studies the PACS listed for the night that the gateway could not retrieve (pull mode)
    not_retrieved: tuple[Quarantined, ...] = ()


@dataclasses.dataclass(frozen=True)
class NightFiles:
    """The published night, through its stable `<task>/<date>` path."""

    folder: Path
    html: Path
    csv: Path
    json: Path


def _rank_key(e: WorklistEntry) -> tuple[int, float, str]:
    """Highest suspicion first, then highest score, then exam id (a stable order)."""
    return -e.suspicion, -e.score, e.exam_id


def _check(night: Night, entries: list[WorklistEntry]) -> None:
    if not _DATE.match(night.study_date):
        raise PermanentError(f"study date {night.study_date!r} is not YYYY-MM-DD")
    if not _TASK.match(night.task):
        raise PermanentError(f"task name {night.task!r} cannot name a folder (letters, digits, _ -)")
    for e in entries:
        if not e.study_url.startswith(("http://", "https://")):
            raise PermanentError(f"exam {e.exam_id}: study link must be http(s), got {e.study_url[:40]!r}")
        if not 1 <= e.suspicion <= 10:
            raise PermanentError(f"exam {e.exam_id}: suspicion must be 1-10, got {e.suspicion}")


def views_of(entries: list[WorklistEntry]) -> list[str]:
    """Every view the entries score, in first-seen order."""
    return list(dict.fromkeys(v for e in entries for v in e.view_scores))


def row_json(rank: int, e: WorklistEntry) -> dict[str, Any]:
    """One exam as the JSON export lists it (no images)."""
    # float()/int()/bool(): the run may hand numpy scalars, which json cannot write
    return {"rank": rank, "exam_id": e.exam_id, "suspicion": int(e.suspicion),
            "score": round(float(e.score), 6), "flagged": bool(e.flagged),
            "flag_reason": e.flag_reason if e.flagged else "",
            "view_scores": {v: round(float(s), 6) for v, s in e.view_scores.items()},
            "discounted_views": sorted(v for v, f in e.qc.items() if f),
            "qc": {v: [{"code": f.code, "reason": f.reason, "value": float(f.value)} for f in flags]
                   for v, flags in sorted(e.qc.items()) if flags},
            "study_url": e.study_url}


def night_json(night: Night, rows: list[WorklistEntry]) -> dict[str, Any]:
    """The JSON export: the night's summary and its rows in page order."""
    return {"study_date": night.study_date, "task": night.task, "model_version": night.model_version,
            "exams": len(rows), "flagged": sum(e.flagged for e in rows), "quarantined": night.quarantined,
            "capacity": night.capacity, "flag_rule": flag_rule(night.capacity),
            "shadow": night.shadow, "rows": [row_json(i, e) for i, e in enumerate(rows, 1)],
            "not_retrieved": [{"exam_id": q.id, "reason": q.reason} for q in night.not_retrieved]}


def night_csv(night: Night, rows: list[WorklistEntry]) -> str:
    """The CSV export (columns in the module docstring)."""
    views = views_of(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"score_{v}" for v in views)])
    for rank, e in enumerate(rows, 1):
        qc = [(v, f) for v, flags in sorted(e.qc.items()) for f in flags]
        writer.writerow([night.study_date, night.task, night.model_version, rank, e.exam_id,
                         e.suspicion, f"{e.score:.6f}", int(e.flagged), e.flag_reason if e.flagged else "",
                         ";".join(sorted(v for v, f in e.qc.items() if f)),
                         ";".join(f"{v}:{f.code}" for v, f in qc),
                         ";".join(f"{v}: {f.reason}" for v, f in qc), e.study_url,
                         *(f"{e.view_scores[v]:.6f}" if v in e.view_scores else "" for v in views)])
    return out.getvalue()


_STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111;background:#fff}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 6px;vertical-align:top}
th{background:#eee;text-align:left}tr.flagged{background:#ffd9d9}.flag{color:#a00000;font-weight:bold}
.level{font-size:1.4em;font-weight:bold}figure.view{display:inline-block;margin:2px;padding:3px;
border:2px solid transparent;vertical-align:top}figure.view.discounted{border:2px dashed #e07b00;
background:#fff3e0}figure img{height:128px;margin-right:2px}figcaption{font-weight:bold}
.discount{color:#8a4b00}ul.qc{color:#8a4b00;font-size:12px;margin:0;padding-left:1.2em;max-width:22em}
"""  # img height = THUMB_HEIGHT


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def flag_rule(capacity: int | None) -> str:
    """How the night's exams were flagged, in the words the page uses."""
    return f"reading capacity (top {capacity})" if capacity else "operating point"


def _doc(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n<title>{_e(title)}</title>'
            f"\n<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def _view_cell(view: str, e: WorklistEntry, pictures: dict[str, tuple[str, str]]) -> str:
    flags = e.qc.get(view) or []
    score = f" {e.view_scores[view]:.2f}" if view in e.view_scores else ""
    parts = [f'<figure class="view{" discounted" if flags else ""}" data-view="{_e(view)}">'
             f"<figcaption>{_e(view)}{score}"
             + (' <span class="discount">discounted, not in the exam score</span>' if flags else "")
             + "</figcaption>"]
    if view in pictures:
        thumb, heat = pictures[view]
        parts.append(f'<img src="{_e(thumb)}" alt="{_e(view)}"><img class="heat" src="{_e(heat)}" '
                     f'alt="{_e(view)} heatmap">')
    else:
        parts.append('<span class="noimage">no image</span>')
    if flags:
        parts.append('<ul class="qc">' + "".join(
            f'<li data-code="{_e(f.code)}">{_e(f.code.replace("_", " "))}: {_e(f.reason)}</li>'
            for f in flags) + "</ul>")
    return "".join(parts) + "</figure>"


def _row(rank: int, e: WorklistEntry, views: list[str], pictures: dict[str, tuple[str, str]]) -> str:
    flag = (f'<span class="flag">FLAGGED</span><br><small>{_e(e.flag_reason)}</small>'
            if e.flagged else "")
    cells = "".join(_view_cell(v, e, pictures) for v in views)
    return (f'<tr class="{"flagged" if e.flagged else "unflagged"}" data-exam="{_e(e.exam_id)}" '
            f'data-suspicion="{e.suspicion}" data-score="{e.score:.6f}">'
            f'<td class="rank">{rank}</td><td class="exam">{_e(e.exam_id)}<br>'
            f'<a class="study" href="{_e(e.study_url)}" target="_blank" rel="noopener">open study in '
            f'Orthanc</a></td><td class="suspicion"><span class="level">{e.suspicion}</span></td>'
            f'<td class="score">{e.score:.3f}</td><td class="flagcell">{flag}</td>'
            f'<td class="views">{cells}</td></tr>')


def night_page(night: Night, rows: list[WorklistEntry], pictures: list[dict[str, tuple[str, str]]]) -> str:
    """The night's HTML page; `rows` in page order, `pictures[i]` the image paths of row i."""
    views = views_of(rows)
    flagged = sum(e.flagged for e in rows)
    studies = "study" if night.quarantined == 1 else "studies"
    shadow = ""
    if night.shadow:
        shadow = ('<p class="shadow">Shadow model, scored beside the champion and not used for '
                  "flags: " + ", ".join(f"{_e(k)} {_e(v)}" for k, v in night.shadow.items()) + ".</p>")
    missing = ""
    if night.not_retrieved:
        missing = (f'<div id="not-retrieved"><h2>Not retrieved from the PACS ({len(night.not_retrieved)})'
                   "</h2><p>The PACS listed these studies for the night, but the gateway could not "
                   "retrieve them: they were not screened.</p><ul>" + "".join(
                       f"<li>{_e(q.id)}: {_e(q.reason)}</li>" for q in night.not_retrieved) + "</ul></div>")
    body = "".join(_row(i, e, views, p) for i, (e, p) in enumerate(zip(rows, pictures, strict=True), 1))
    if not rows:
        body = '<tr><td colspan="6">No exams were screened for this date.</td></tr>'
    return _doc(f"radflow worklist {night.task} {night.study_date}", f"""\
<p><a href="../../index.html">all nights</a></p>
<h1>Screening worklist: {_e(night.task)}, study date {_e(night.study_date)}</h1>
<p class="summary">{len(rows)} exams, {flagged} flagged by {_e(flag_rule(night.capacity))};
{night.quarantined} {studies} quarantined (not listed); model version {_e(night.model_version)}.
Sorted by suspicion (1-10), highest first. Views with a dashed orange frame were discounted from
the exam score for the image-quality reason given. Exports:
<a href="worklist.csv">CSV</a>, <a href="worklist.json">JSON</a>.</p>
{shadow}
{missing}
<table id="worklist"><thead><tr><th>#</th><th>exam</th><th>suspicion</th><th>score</th><th>flag</th>
<th>views (image, heatmap)</th></tr></thead><tbody>
{body}
</tbody></table>""")


def index_page(listed: list[dict[str, Any]]) -> str:
    """The index of nights (`nights()` order) with exam, flag and quarantine counts."""
    rows = "\n".join(
        f'<tr><td><a href="{_e(n["page"])}">{_e(n["study_date"])}</a></td><td>{_e(n["task"])}</td>'
        f'<td>{_e(n["model_version"])}</td><td class="exams">{_e(n["exams"])}</td>'
        f'<td class="flagged">{_e(n["flagged"])}</td><td>{_e(n["quarantined"])}</td></tr>' for n in listed)
    return _doc("radflow worklists", f"""<h1>Screening worklists</h1>
<p>{len(listed)} nights, newest first.</p>
<table id="nights"><thead><tr><th>study date</th><th>task</th><th>model version</th><th>exams</th>
<th>flagged</th><th>quarantined</th></tr></thead><tbody>
{rows}
</tbody></table>""")


def _as_2d(array: np.ndarray, what: str, exam_id: str, view: str) -> np.ndarray:
    a = np.asarray(array, dtype=np.float32)
    if a.ndim != 2 or a.size == 0 or not np.isfinite(a).all():
        raise PermanentError(f"exam {exam_id} view {view}: {what} must be a finite 2-D array, "
                             f"got shape {a.shape}")
    return a


def thumbnails(image: np.ndarray, heatmap: np.ndarray, exam_id: str, view: str) -> tuple[Image, Image]:
    """(grey thumbnail, the same with the heatmap in red-to-yellow), THUMB_HEIGHT px high.

    Raises:
        PermanentError: image or heatmap is not a finite 2-D array (exam and view named).
    """
    from PIL import Image as PilImage

    img = np.clip(_as_2d(image, "image", exam_id, view), 0.0, 1.0)
    heat = np.clip(_as_2d(heatmap, "heatmap", exam_id, view), 0.0, None)
    heat = heat / heat.max() if heat.max() > 1.0 else heat
    width = max(1, round(img.shape[1] * THUMB_HEIGHT / img.shape[0]))
    grey = PilImage.fromarray((img * 255).round().astype(np.uint8)).resize(
        (width, THUMB_HEIGHT), PilImage.Resampling.BILINEAR)
    h = np.clip(np.asarray(PilImage.fromarray(heat).resize((width, THUMB_HEIGHT),
                                                           PilImage.Resampling.BILINEAR)), 0.0, 1.0)
    g = np.asarray(grey, dtype=np.float32)[..., None] / 255.0
    # red where warm, turning yellow where hottest; never white, which would read as tissue
    hot = np.stack([np.ones_like(h), np.clip(2 * h - 1, 0, 1), np.zeros_like(h)], axis=-1)
    alpha = 0.6 * h[..., None]
    overlay = ((g * (1 - alpha) + hot * alpha) * 255).round().astype(np.uint8)
    return grey, PilImage.fromarray(overlay, mode="RGB")


def _write_images(folder: Path, rank: int, e: WorklistEntry) -> dict[str, tuple[str, str]]:
    """Write one exam's PNGs; {view: (thumbnail path, overlay path)} relative to the page."""
    written = {}
    for view, (image, heatmap) in e.images.items():
        grey, overlay = thumbnails(image, heatmap, e.exam_id, view)
        stem = f"{rank:04d}-{re.sub(r'[^A-Za-z0-9_-]', '_', view)}"
        # zlib level 1: a third of the default's time at nearly the same size for these images
        grey.save(folder / "img" / f"{stem}.png", compress_level=1)
        overlay.save(folder / "img" / f"{stem}-heat.png", compress_level=1)
        written[view] = (f"img/{stem}.png", f"img/{stem}-heat.png")
    return written


def _plain(value: object) -> object:
    """numpy scalars (e.g. in the shadow summary) as Python numbers, for json."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to the worklist JSON")


class NightDraft:
    """A night's worklist being written into its unpublished version folder (`drafted_night`)."""

    def __init__(self, folder: Path, live: Path, night: Night, entries: list[WorklistEntry],
                 pool: ThreadPoolExecutor) -> None:
        self.files = NightFiles(live, live / "index.html", live / "worklist.csv", live / "worklist.json")
        self._folder, self._night, self._entries, self._pool = folder, night, entries, pool
        # the page's order, known before any image: rank r shows entries[order[r - 1]]
        self._order = sorted(range(len(entries)), key=lambda i: _rank_key(entries[i]))
        self._rank = {i: r for r, i in enumerate(self._order, 1)}
        self._pictures: dict[int, dict[str, tuple[str, str]]] = {}
        (folder / "img").mkdir()

    def render(self, first: int, entries: Sequence[WorklistEntry]) -> None:
        """Write the PNGs of the night's entries `first`, `first + 1`, ...: `entries` are
        those entries again, now with their images (dropped again by the caller).

        Raises:
            PermanentError: an image or heatmap is not a finite 2-D array (exam and view named).
            ValueError: an entry is not the night's entry at its index.
        """
        for k, e in enumerate(entries):
            if first + k >= len(self._entries) or self._entries[first + k].exam_id != e.exam_id:
                raise ValueError(f"worklist: exam {e.exam_id} is not entry {first + k} of the night")
        indexes = range(first, first + len(entries))
        # PNG encoding releases the GIL: threads use both cores (4,000 views: ~6 s instead of ~12 s)
        pictures = self._pool.map(_write_images, [self._folder] * len(entries),
                                  [self._rank[i] for i in indexes], entries)
        self._pictures.update(zip(indexes, pictures, strict=True))

    def write_pages(self) -> None:
        """The page and the exports; an entry never rendered shows "no image"."""
        rows = [self._entries[i] for i in self._order]
        pictures = [self._pictures.get(i, {}) for i in self._order]
        folder, night = self._folder, self._night
        (folder / "index.html").write_text(night_page(night, rows, pictures), encoding="utf-8")
        (folder / "worklist.csv").write_text(night_csv(night, rows), encoding="utf-8")
        (folder / "worklist.json").write_text(
            json.dumps(night_json(night, rows), indent=1, sort_keys=True, default=_plain) + "\n",
            encoding="utf-8")


@contextlib.contextmanager
def drafted_night(folder: Path, night: Night, entries: list[WorklistEntry]) -> Iterator[NightDraft]:
    """Yield the night's draft to render its images into; when the block ends without an
    exception, write the page and exports and publish the night (a rerun replaces it
    atomically).

    Args:
        folder: the worklists folder; the night goes to `<folder>/<task>/<date>/`.
        night: the night's summary.
        entries: every screened exam of the night, in any order; their images are not used
            (`NightDraft.render` takes them, batch by batch).

    Yields:
        The draft; its `files` are the published files, through the stable `<task>/<date>`
        path, once the block has ended.

    Raises:
        PermanentError: a bad date, task name, study link or suspicion (named), before the
            block; nothing is published then, nor when the block raises, and the previous
            version stays.
    """
    _check(night, entries)
    live = folder / night.task / night.study_date
    with publish_linked_dir(live) as staged, ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        draft = NightDraft(staged, live, night, entries, pool)
        yield draft
        draft.write_pages()
    log.info("worklist: %s %s published, %d exams, %d flagged", night.task, night.study_date,
             len(entries), sum(e.flagged for e in entries))


def publish_night(folder: Path, night: Night, entries: list[WorklistEntry]) -> NightFiles:
    """Write one night's page, images and exports; a rerun replaces the night atomically.

    Args:
        folder: the worklists folder; the night goes to `<folder>/<task>/<date>/`.
        night: the night's summary.
        entries: every screened exam of the night, in any order.

    Returns:
        The published files, through the stable `<task>/<date>` path.

    Raises:
        PermanentError: a bad date, task name, study link, suspicion or image (named);
            nothing is published then and the previous version stays.
    """
    with drafted_night(folder, night, entries) as draft:
        draft.render(0, entries)
    return draft.files


def nights(folder: Path) -> list[dict[str, Any]]:
    """The summary (JSON export without rows) of every published night, newest first."""
    found = []
    for summary in folder.glob("*/*/worklist.json"):
        if not (_DATE.match(summary.parent.name) and _TASK.match(summary.parent.parent.name)):
            continue
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("worklist index: skipping %s: %s", summary, exc)
            continue
        data.pop("rows", None)
        data["page"] = f"{summary.parent.parent.name}/{summary.parent.name}/index.html"
        found.append(data)
    found.sort(key=lambda n: n["task"])
    found.sort(key=lambda n: n["study_date"], reverse=True)  # newest first, tasks A-Z within
    return found


def publish_index(folder: Path) -> Path:
    """(Re)write `<folder>/index.html` listing every published night, newest first."""
    folder.mkdir(parents=True, exist_ok=True)
    listed = nights(folder)
    return write_text(folder / "index.html", index_page(listed), mode=0o644)  # served read-only
