"""The radiologists' worklist: one static HTML page per night, sorted by suspicion."""

from __future__ import annotations

import html
import os
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorklistRow:
    exam_id: str
    score: float
    flagged: bool
    view_scores: dict[str, float]
    study_link: str


def suspicion(score: float) -> int:
    """A 1-10 suspicion level from the exam probability (calibration comes with issue 6)."""
    return max(1, min(10, int(score * 10) + 1))


def render(study_date: str, model_version: str, rows: list[WorklistRow]) -> str:
    ordered = sorted(rows, key=lambda r: (-r.score, r.exam_id))
    body = []
    for rank, row in enumerate(ordered, 1):
        views = " ".join(f"{v} {p:.2f}" for v, p in sorted(row.view_scores.items()))
        body.append(
            f"<tr class=\"{'flagged' if row.flagged else ''}\"><td>{rank}</td>"
            f"<td>{html.escape(row.exam_id)}</td><td>{row.score:.3f}</td>"
            f"<td>{suspicion(row.score)}</td><td>{'FLAG' if row.flagged else ''}</td>"
            f"<td>{html.escape(views)}</td>"
            f"<td><a href=\"{html.escape(row.study_link)}\">open in PACS</a></td></tr>"
        )
    flagged = sum(r.flagged for r in rows)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>radflow worklist {html.escape(study_date)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}tr.flagged{{background:#fde2e2}}</style></head>
<body><h1>Screening worklist, study date {html.escape(study_date)}</h1>
<p>{len(rows)} exams, {flagged} flagged; model version {html.escape(model_version)}.
Sorted by suspicion, highest first.</p>
<table id="worklist"><thead><tr><th>#</th><th>exam</th><th>score</th><th>suspicion (1-10)</th>
<th>flag</th><th>views</th><th>study</th></tr></thead><tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""


def publish(folder: Path, study_date: str, model_version: str, rows: list[WorklistRow]) -> Path:
    """Write `<folder>/<date>/worklist.html` atomically and return its path."""
    path = folder / study_date / "worklist.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".worklist-{uuid.uuid4().hex[:8]}.html")
    tmp.write_text(render(study_date, model_version, rows))
    os.replace(tmp, path)
    return path
