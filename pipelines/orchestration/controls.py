"""What hospital IT controls, as settings the DAGs read when they are parsed:

- RADFLOW_TASK_TIMEOUT_MINUTES, _TRAINING_TIMEOUT_MINUTES: execution timeout of every task,
  of the training task;
- RADFLOW_TASK_RETRIES, _RETRY_DELAY_MINUTES, _MAX_RETRY_DELAY_MINUTES: retries of a
  transient failure, backing off exponentially from the first delay up to the max;
- RADFLOW_CLINICAL_HOURS, _CLINICAL_DAYS: a retraining started by its cron or by drift waits
  (deferred, holding no worker slot) until clinical hours end;
- RADFLOW_SCREENING_DEADLINE: deadline alert when the night's screening has not finished by
  this local time;
- RADFLOW_PACS_POOL_SLOTS: the Airflow pool `pacs` (pool `training` has one slot), made by
  `radflow stack up`.

A failed task notifies (webhook and/or e-mail, pipelines/orchestration/alerts.py). Only
`screening_deadline` imports airflow (when a DAG file calls it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from pipelines.config import RadflowSettings, get_settings
from pipelines.errors import PermanentError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FAILURE_CALLBACK = "pipelines.orchestration.alerts.on_task_failure"


def _clock(text: str, what: str) -> dt.time:
    try:
        hours, minutes = text.strip().split(":")
        return dt.time(int(hours), int(minutes))
    except ValueError as exc:
        raise PermanentError(f"{what}: expected HH:MM, got {text!r}") from exc


def clinical_hours(s: RadflowSettings) -> tuple[dt.time, dt.time, frozenset[int]] | None:
    """(start, end, weekdays 0=Monday) of clinical hours, or None when there are none.

    Raises:
        PermanentError: RADFLOW_CLINICAL_HOURS or _DAYS is malformed (named).
    """
    if not s.clinical_hours.strip():
        return None
    start_text, sep, end_text = s.clinical_hours.partition("-")
    if not sep:
        raise PermanentError(f"RADFLOW_CLINICAL_HOURS: expected HH:MM-HH:MM, got {s.clinical_hours!r}")
    start = _clock(start_text, "RADFLOW_CLINICAL_HOURS")
    end = _clock(end_text, "RADFLOW_CLINICAL_HOURS")
    names = [d.strip().lower()[:3] for d in s.clinical_days.split(",") if d.strip()]
    unknown = [d for d in names if d not in DAYS]
    if unknown:
        raise PermanentError(f"RADFLOW_CLINICAL_DAYS: unknown day {', '.join(unknown)}; use "
                             f"{','.join(DAYS)}")
    return start, end, frozenset(DAYS.index(d) for d in names)


def clinical_hours_end(now: dt.datetime, s: RadflowSettings | None = None) -> dt.datetime | None:
    """When the clinical hours that `now` falls in end (aware), or None if `now` is outside them.

    Hours may wrap midnight ("22:00-06:00"); the day of a wrapped window is the day it starts.
    """
    s = s or get_settings()
    hours = clinical_hours(s)
    if hours is None:
        return None
    start, end, days = hours
    local = now.astimezone(ZoneInfo(s.hospital_timezone))
    for day in (local.date() - dt.timedelta(days=1), local.date()):
        if day.weekday() not in days:
            continue
        opens = dt.datetime.combine(day, start, local.tzinfo)
        closes = dt.datetime.combine(day if end > start else day + dt.timedelta(days=1), end, local.tzinfo)
        if opens <= local < closes:
            return closes
    return None


def deadline_interval(s: RadflowSettings | None = None) -> dt.timedelta:
    """From a screening run's logical date (its cron tick) to the next RADFLOW_SCREENING_DEADLINE."""
    from croniter import croniter

    s = s or get_settings()
    deadline = _clock(s.screening_deadline, "RADFLOW_SCREENING_DEADLINE")
    tz = ZoneInfo(s.hospital_timezone)
    reference = dt.datetime(2026, 1, 5, tzinfo=tz)  # any ordinary Monday
    tick = croniter(s.screening_schedule, reference).get_next(dt.datetime)
    due = dt.datetime.combine(tick.date(), deadline, tz)
    if due <= tick:
        due += dt.timedelta(days=1)
    return due - tick


def screening_deadline() -> Any:
    """The nightly screening's DeadlineAlert: RADFLOW_SCREENING_DEADLINE after the run's tick;
    the triggerer then sends pipelines.orchestration.alerts.screening_deadline_missed. None
    (no alert) when the setting is empty."""
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    s = get_settings()
    if not s.screening_deadline.strip():
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=deadline_interval(s),
        callback=AsyncCallback("pipelines.orchestration.alerts.screening_deadline_missed",
                               kwargs={"deadline": f"{s.screening_deadline} {s.hospital_timezone}"}))


def default_args(owner: str, *, timeout_minutes: float | None = None) -> dict[str, Any]:
    """Retries with exponential backoff, an execution timeout and the failure notification."""
    s = get_settings()
    return {
        "owner": owner,
        "retries": s.task_retries,
        "retry_delay": dt.timedelta(minutes=s.retry_delay_minutes),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=s.max_retry_delay_minutes),
        "execution_timeout": dt.timedelta(minutes=timeout_minutes or s.task_timeout_minutes),
        "on_failure_callback": _failure_callback(),
    }


def training_timeout() -> dt.timedelta:
    return dt.timedelta(minutes=get_settings().training_timeout_minutes)


def _failure_callback() -> Any:
    from pipelines.orchestration import alerts

    return alerts.on_task_failure


def schedule_start(tz: str) -> Any:
    """The first moment the scheduled DAGs run from (a pendulum datetime in `tz`): the go-live
    moment (RADFLOW_SCREENING_START_DATE, a date or a moment; else the stack's go-live file,
    else today's midnight)."""
    import pendulum

    from pipelines.stack.airflow import go_live

    s = get_settings()
    start = go_live(s) or dt.date.today().isoformat()
    return pendulum.parse(start, tz=tz)
