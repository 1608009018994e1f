"""Calling a stage from a task: its JSON result becomes the XCom (references and scalars),
PermanentError becomes AirflowFailException (no retry), TransientError is retried."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from pipelines.errors import PermanentError


def call_stage(fn: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """Run one stage function and return its PHI-free result as a dict."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        result = fn(**kwargs)
    except PermanentError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    return dict(result.as_json()) if hasattr(result, "as_json") else dict(result)


def hospital_timezone() -> str:
    """The IANA time zone nightly schedules run in (RADFLOW_HOSPITAL_TIMEZONE, default UTC)."""
    from pipelines.config import get_settings

    return get_settings().hospital_timezone


def screening_schedule() -> tuple[str, str]:
    """(cron, first night YYYY-MM-DD) of the nightly screening, from the settings."""
    from pipelines.config import get_settings

    s = get_settings()
    return s.screening_schedule, s.screening_start_date


def previous_day(logical_date: dt.datetime, override: str | None) -> str:
    """The study date a nightly run screens: the day before its logical date, in the
    hospital's time zone, unless a study_date param overrides it."""
    if override:
        return str(dt.date.fromisoformat(override))
    from zoneinfo import ZoneInfo

    from pipelines.config import get_settings

    local = logical_date.astimezone(ZoneInfo(get_settings().hospital_timezone))
    return (local.date() - dt.timedelta(days=1)).isoformat()
