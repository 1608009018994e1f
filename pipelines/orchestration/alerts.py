"""Telling hospital IT that the night went wrong: a task that failed (after its retries, or
at once for a permanent error), and a screening night not finished by its deadline.

Both go where the night's notice goes (RADFLOW_NOTIFY_WEBHOOK_URL as JSON, and/or e-mail to
RADFLOW_NOTIFY_EMAIL_TO through the Airflow SMTP connection). Webhook JSON: {"id", "kind":
"task_failed"|"deadline_missed", "dag_id", "run_id", "task_id", "try_number", "summary",
"url"}. Nothing in them names a patient: DAG, run and task ids, the error's class and
radflow's own message (which never holds PHI), and a link to the Airflow UI.

A callback never raises: a notification that cannot be delivered is logged instead.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from typing import Any

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class OpsNotice:
    id: str
    kind: str  # task_failed | deadline_missed
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    summary: str
    url: str

    def payload(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def subject(self) -> str:
        return f"radflow {self.dag_id}: {self.summary}"[:200]

    def html(self) -> str:
        e = html.escape
        return (f"<p>{e(self.summary)}</p><p>DAG {e(self.dag_id)}, run {e(self.run_id)}"
                + (f", task {e(self.task_id)} (try {self.try_number})" if self.task_id else "")
                + f".</p><p><a href=\"{e(self.url)}\">{e(self.url)}</a></p>")


def run_url(dag_id: str, run_id: str, task_id: str = "") -> str:
    from urllib.parse import quote

    from pipelines.config import get_settings

    url = f"{get_settings().airflow_base_url}/dags/{quote(dag_id)}/runs/{quote(run_id)}"
    return url + (f"/tasks/{quote(task_id)}" if task_id else "")


def deliver(notice: OpsNotice) -> dict[str, Any]:
    """Send by webhook and e-mail as configured; what was sent (failures logged, not raised)."""
    from pipelines.config import get_settings

    s = get_settings()
    sent: dict[str, Any] = {"id": notice.id, "webhook": False, "emailed": 0}
    if s.notify_webhook_url is not None:
        from pipelines.notify import send_webhook

        try:
            send_webhook(s.notify_webhook_url.get_secret_value(), notice, s.notify_webhook_timeout_s)
            sent["webhook"] = True
        except Exception as exc:  # a callback must not fail: report and go on
            log.error("alert %s not delivered to the webhook: %s", notice.id, exc)
    to = [a.strip() for a in s.notify_email_to.split(",") if a.strip()]
    if to:
        from pipelines.orchestration.mail import send_email

        try:
            send_email(notice, to, s.notify_smtp_conn_id)
            sent["emailed"] = len(to)
        except Exception as exc:
            log.error("alert %s not e-mailed: %s", notice.id, exc)
    if not sent["webhook"] and not sent["emailed"]:
        log.warning("alert %s: %s (no webhook or e-mail configured)", notice.id, notice.summary)
    return sent


def failure_notice(context: dict[str, Any]) -> OpsNotice:
    """The notice of a failed task, from Airflow's task context."""
    ti = context["ti"]
    dag_id, run_id, task_id = str(ti.dag_id), str(ti.run_id), str(ti.task_id)
    error = context.get("exception")
    why = f"{type(error).__name__}: {error}" if error is not None else "see the task's log"
    try_number = int(getattr(ti, "try_number", 0) or 0)
    return OpsNotice(id=f"failed/{dag_id}/{run_id}/{task_id}/{try_number}", kind="task_failed",
                     dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number,
                     summary=f"task {task_id} failed: {why}"[:1000], url=run_url(dag_id, run_id, task_id))


def on_task_failure(context: dict[str, Any]) -> None:
    """Airflow's on_failure_callback of every radflow task (runs on the worker)."""
    try:
        deliver(failure_notice(context))
    except Exception:  # never let the alert hide the failure it reports
        log.exception("the failure notification itself failed")


def deadline_notice(context: dict[str, Any], deadline: str) -> OpsNotice:
    """The notice of a missed deadline, from the context Airflow passes deadline callbacks
    ({"dag_run": {...}, "deadline": {"deadline_time": ...}})."""
    run = context.get("dag_run") or {}
    dag_id, run_id = str(run.get("dag_id", "")), str(run.get("dag_run_id") or run.get("run_id", ""))
    due = (context.get("deadline") or {}).get("deadline_time", "")
    return OpsNotice(id=f"deadline/{dag_id}/{run_id}", kind="deadline_missed", dag_id=dag_id,
                     run_id=run_id, task_id="", try_number=0,
                     summary=(f"the night's screening has not finished by {deadline} "
                              f"(deadline {due}, state {run.get('state', '?')})"),
                     url=run_url(dag_id, run_id))


async def screening_deadline_missed(context: dict[str, Any] | None = None, deadline: str = "",
                                    **_: Any) -> None:
    """Airflow's deadline callback of the nightly screening (runs in the triggerer)."""
    import asyncio

    try:
        await asyncio.to_thread(deliver, deadline_notice(context or {}, deadline))
    except Exception:
        log.exception("the deadline notification itself failed")
