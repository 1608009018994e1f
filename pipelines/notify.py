"""Notifications: a `Message` (the reading room's night, a monitoring alert, a failed task)
POSTed as JSON to the hospital's webhook; the e-mail goes through Airflow's SMTP connection
(pipelines/orchestration/mail.py).

A message's `id` is the same on every retry (also sent as the `Idempotency-Key` header): a
retry after a lost answer may deliver twice, and receivers drop the copy by that id.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

from pipelines.errors import NotificationFailed, PermanentError

log = logging.getLogger(__name__)


class Message(Protocol):
    """What the webhook and the e-mail send: a night's notice or a monitoring alert."""

    @property
    def id(self) -> str: ...

    def payload(self) -> dict[str, Any]: ...

    def subject(self) -> str: ...

    def html(self) -> str: ...


def _where(url: str) -> str:
    """The webhook's host and port, for messages: the rest of a URL may hold a token."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def send_webhook(url: str, notice: Message, timeout_s: float = 10.0) -> int:
    """POST the notice as JSON; returns the receiver's HTTP status (2xx).

    Raises:
        PermanentError: the URL is not http(s), or the receiver refused the request (4xx
            other than 408 and 429: a retry would be refused again).
        NotificationFailed: no answer within `timeout_s`, connection refused, or 5xx/408/429.
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise PermanentError(f"notification webhook must be an http(s) URL, got scheme "
                             f"{urllib.parse.urlsplit(url).scheme!r}")
    request = urllib.request.Request(
        url, data=json.dumps(notice.payload()).encode(), method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": notice.id,
                 "User-Agent": "radflow-notify"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise PermanentError(f"webhook {_where(url)} refused the notice {notice.id}: HTTP {exc.code}; "
                                 "check RADFLOW_NOTIFY_WEBHOOK_URL") from exc
        raise NotificationFailed(f"webhook {_where(url)} answered HTTP {exc.code} to notice "
                                 f"{notice.id}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotificationFailed(f"webhook {_where(url)} did not take notice {notice.id} within "
                                 f"{timeout_s} s: {reason}") from exc
    log.info("notify: webhook %s took %s, HTTP %d", _where(url), notice.id, status)
    return status


def send(notice: Message) -> bool:
    """POST the notice to RADFLOW_NOTIFY_WEBHOOK_URL when one is set; True if sent.

    Raises:
        NotificationFailed: the webhook did not take it (a retry may); PermanentError as in
            `send_webhook`.
    """
    from pipelines.config import get_settings

    s = get_settings()
    if s.notify_webhook_url is None:
        return False
    send_webhook(s.notify_webhook_url.get_secret_value(), notice, s.notify_webhook_timeout_s)
    return True
