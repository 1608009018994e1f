"""Telling the reading room that a night is ready: the flagged exams (pseudonym, suspicion,
link to the study in Orthanc), sent to the webhook (pipelines/notify.py) and by e-mail
(pipelines/orchestration/mail.py).

A notice is built from the night's published worklist.json, so notifying is its own
retryable step that needs only the page's path. Its `id` is the same for the same night and
model version on every retry.

Webhook JSON (stable keys): {"id", "task", "study_date", "model_version", "exams",
"flagged_count", "worklist", "flagged": [{"exam_id", "suspicion", "score", "reason",
"study_url"}]}, flagged exams by suspicion, highest first.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

from pipelines.config import get_settings
from pipelines.errors import PermanentError
from pipelines.notify import send


@dataclasses.dataclass(frozen=True)
class FlaggedExam:
    exam_id: str  # pseudonym
    suspicion: int
    score: float
    reason: str  # "operating point" or "reading capacity (top k)"
    study_url: str


@dataclasses.dataclass(frozen=True)
class Notice:
    """One night's notice; `worklist` is the page's URL, or its path when none is served."""

    id: str
    task: str
    study_date: str
    model_version: str
    exams: int
    flagged: tuple[FlaggedExam, ...]
    worklist: str

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body (keys in the module docstring)."""
        return {"id": self.id, "task": self.task, "study_date": self.study_date,
                "model_version": self.model_version, "exams": self.exams,
                "flagged_count": len(self.flagged), "worklist": self.worklist,
                "flagged": [dataclasses.asdict(f) for f in self.flagged]}

    def subject(self) -> str:
        return (f"radflow {self.task} {self.study_date}: {len(self.flagged)} of {self.exams} "
                "exams flagged")

    def html(self) -> str:
        """The e-mail body: the flagged exams with links, then the worklist's link."""
        e = html.escape
        rows = "".join(f"<tr><td>{e(f.exam_id)}</td><td>{f.suspicion}</td><td>{f.score:.3f}</td>"
                       f"<td>{e(f.reason)}</td><td><a href=\"{e(f.study_url)}\">open study</a></td></tr>"
                       for f in self.flagged)
        table = (f"<table><tr><th>exam</th><th>suspicion</th><th>score</th><th>flagged by</th>"
                 f"<th>study</th></tr>{rows}</table>" if self.flagged else "<p>No exam was flagged.</p>")
        return (f"<p>Screening {e(self.task)}, study date {e(self.study_date)}, model version "
                f"{e(self.model_version)}: {self.exams} exams, {len(self.flagged)} flagged.</p>{table}"
                f"<p>Worklist: <a href=\"{e(self.worklist)}\">{e(self.worklist)}</a></p>")


def notice_for(worklist: Path, base_url: str | None = None) -> Notice:
    """The notice of a published night.

    Args:
        worklist: the night's page (`<worklists>/<task>/<date>/index.html`) or its folder.
        base_url: where the worklists folder is served; None links the page by its path.

    Raises:
        PermanentError: the night's worklist.json is missing or unreadable (path named).
    """
    folder = worklist if worklist.is_dir() else worklist.parent
    try:
        night = json.loads((folder / "worklist.json").read_text(encoding="utf-8"))
        flagged = tuple(FlaggedExam(r["exam_id"], int(r["suspicion"]), float(r["score"]), r["flag_reason"],
                                    r["study_url"]) for r in night["rows"] if r["flagged"])
        task, date, version = str(night["task"]), str(night["study_date"]), str(night["model_version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"no readable worklist.json in {folder}: {exc}") from exc
    page = f"{base_url.rstrip('/')}/{task}/{date}/index.html" if base_url else str(folder / "index.html")
    return Notice(id=f"{task}/{date}/{version}", task=task, study_date=date, model_version=version,
                  exams=int(night["exams"]), flagged=tuple(sorted(flagged, key=lambda f: -f.suspicion)),
                  worklist=page)


def announce(worklist: Path) -> Notice:
    """Build the night's notice and POST it to RADFLOW_NOTIFY_WEBHOOK_URL when one is set.

    Returns:
        The notice (pipelines/orchestration/mail.py e-mails it when recipients are set).

    Raises:
        NotificationFailed: the webhook did not take it (retry); PermanentError as in
            `notice_for` and `send_webhook`.
    """
    notice = notice_for(worklist, get_settings().notify_worklist_base_url)
    send(notice)
    return notice
