"""Telling the ML team and hospital IT: sustained drift (retraining starts) or a model
file that is not the approved one. Sent like the reading room's notice (pipelines/notify.py's
webhook and Airflow's SMTP connection); the `id` is stable per night, so receivers drop a retry's
copy. Webhook JSON: {"id", "kind": "drift"|"integrity"|"outcomes", "task", "date", "model_version",
"summary", "details": [...], "report"}. "outcomes": the champion's realised sensitivity is below
the policy's minimum (pipelines/monitoring/realised.py).
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any


@dataclasses.dataclass(frozen=True)
class MonitoringNotice:
    id: str
    kind: str  # "drift", "integrity" or "outcomes"
    task: str
    date: str
    model_version: str
    summary: str
    details: tuple[str, ...]
    report: str

    def payload(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "details": list(self.details)}

    def subject(self) -> str:
        return f"radflow monitoring {self.task} {self.date}: {self.summary}"

    def html(self) -> str:
        e = html.escape
        items = "".join(f"<li>{e(d)}</li>" for d in self.details)
        return (f"<p>{e(self.summary)} (task {e(self.task)}, {e(self.date)}, model version "
                f"{e(self.model_version)}).</p><ul>{items}</ul><p>Report: {e(self.report)}</p>")


def drift_notice(task: str, date: str, model_version: str, reason: str, report: str,
                 details: tuple[str, ...] = ()) -> MonitoringNotice:
    """The notice of a sustained-drift alert (the same id for the webhook and the e-mail)."""
    return MonitoringNotice(id=f"drift/{task}/{date}/{model_version}", kind="drift", task=task, date=date,
                            model_version=model_version, summary=f"sustained drift, retraining: {reason}",
                            details=details, report=report)
