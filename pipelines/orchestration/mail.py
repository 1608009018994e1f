"""The notification step of a screening night: the webhook (pipelines/notify.py)
and the e-mail, sent with the SMTP provider's SmtpHook through an Airflow connection
(RADFLOW_NOTIFY_SMTP_CONN_ID, default `smtp_default`; host, port, login, TLS and the
`from_email` extra are hospital IT's, kept in Airflow's connections, never in the repo)."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.notify import Message


def send_email(notice: Message, to: Sequence[str], conn_id: str) -> None:
    """E-mail the notice (subject and HTML body) to `to`.

    Raises:
        NotificationFailed: the mail server refused it or did not answer, or the Airflow
            connection is missing or incomplete (the message says which; retry).
    """
    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.sdk.exceptions import AirflowException

    from pipelines.errors import NotificationFailed

    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            hook.send_email_smtp(to=list(to), subject=notice.subject(), html_content=notice.html(),
                                 custom_headers={"X-Radflow-Notice": notice.id})
    except (smtplib.SMTPException, OSError, AirflowException) as exc:
        # AirflowException: connection missing, no from_email, server dropped every attempt
        raise NotificationFailed(f"SMTP connection {conn_id!r} did not take notice {notice.id}: "
                                 f"{type(exc).__name__}: {exc}") from exc


def notify_night(worklist: str) -> dict[str, Any]:
    """Tell the reading room a night is published: webhook and/or e-mail, as configured.

    Args:
        worklist: the night's page, as the screening result's `worklist` gives it.

    Returns:
        {"id", "flagged", "webhook": sent or not, "emailed": recipients} (no addresses).

    Raises:
        NotificationFailed: a receiver did not take the notice (Airflow retries the task).
    """
    from pipelines.config import get_settings
    from pipelines.screening.notice import announce

    s = get_settings()
    notice = announce(Path(worklist))
    to = [address.strip() for address in s.notify_email_to.split(",") if address.strip()]
    if to:
        send_email(notice, to, s.notify_smtp_conn_id)
    return {"id": notice.id, "flagged": len(notice.flagged),
            "webhook": s.notify_webhook_url is not None, "emailed": len(to)}
