"""Calling a stage from a task: its JSON result becomes the XCom (references and scalars),
PermanentError becomes AirflowFailException (no retry), TransientError is retried."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from pipelines.errors import PermanentError


def _children_skip_the_airflow_script() -> None:
    """Stages start worker processes with "spawn" (ingest) and "forkserver" (decode), which
    re-import the parent's __main__ by path. In an Airflow worker that is the `airflow`
    script, whose import fails there: the worker blocks the metadata database
    (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=airflow-db-not-allowed:///). Naming __main__ by its
    package's `__main__` spec makes multiprocessing skip re-running it (as it does for
    `python -m pkg`); the stages' children import only what they use."""
    import importlib.util
    import sys
    from pathlib import Path

    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return
    if Path(getattr(main, "__file__", "") or "").name == "airflow":
        main.__spec__ = importlib.util.find_spec("airflow.__main__")


def _task_may_start_processes() -> None:
    """Under the CeleryExecutor a task process is forked (by Airflow's supervisor) from a
    process of Celery's prefork pool, a daemonic billiard process. multiprocessing then sees
    billiard's process object: it refuses children to a daemonic process ("daemonic
    processes are not allowed to have children"), and a "spawn" child cannot take billiard's
    authentication key ("Pickling an AuthenticationString object is disallowed"); ingest and
    decoding start process pools. Both are inherited, not chosen: the task process is
    Airflow's supervised child, and the pools a stage starts are its own to end."""
    import multiprocessing
    from multiprocessing.process import AuthenticationString  # type: ignore[attr-defined]

    config = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    config["daemon"] = False
    if type(config.get("authkey")) is not AuthenticationString:
        config["authkey"] = AuthenticationString(bytes(config["authkey"]))


def call_stage(fn: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """Run one stage function and return its PHI-free result as a dict."""
    from airflow.sdk.exceptions import AirflowFailException

    _children_skip_the_airflow_script()
    _task_may_start_processes()
    try:
        result = fn(**kwargs)
    except PermanentError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    return dict(result.as_json()) if hasattr(result, "as_json") else dict(result)


def run_key(context: Any) -> str:
    """The Airflow run a task belongs to: the key a stage that must not repeat its work when
    the run is cleared or retried (training) records its result under. "<dag_id>/<logical
    date>" when the run has one (unique per DAG, and kept by `airflow dags test` run again
    for the same date, which replaces the run under a new id), else "<dag_id>/<run_id>"."""
    logical = context.get("logical_date")
    return f"{context['dag'].dag_id}/{logical.isoformat() if logical else context['run_id']}"


def hospital_timezone() -> str:
    """The IANA time zone nightly schedules run in (RADFLOW_HOSPITAL_TIMEZONE, default UTC)."""
    from pipelines.config import get_settings

    return get_settings().hospital_timezone


def screening_schedule() -> tuple[str, Any]:
    """(cron, first moment) of the nightly screening, from the settings (controls.schedule_start)."""
    from pipelines.config import get_settings
    from pipelines.orchestration.controls import schedule_start

    s = get_settings()
    return s.screening_schedule, schedule_start(s.hospital_timezone)


def retrain_schedule() -> tuple[str, Any]:
    """(cron, first moment) of the scheduled retraining (drift starts one too)."""
    from pipelines.config import get_settings
    from pipelines.orchestration.controls import schedule_start

    s = get_settings()
    return s.retrain_schedule, schedule_start(s.hospital_timezone)


def study_date_of(context: Any) -> str:
    """The study date a nightly run screens or monitors: its `study_date` param, else the day
    before its logical date (a run triggered without one: the day before it was triggered)."""
    logical = context.get("logical_date") or context["dag_run"].run_after
    return previous_day(logical, context["params"]["study_date"])


def previous_day(logical_date: dt.datetime, override: str | None) -> str:
    """The study date a nightly run screens: the day before its logical date, in the
    hospital's time zone, unless a study_date param overrides it."""
    if override:
        return str(dt.date.fromisoformat(override))
    from zoneinfo import ZoneInfo

    from pipelines.config import get_settings

    local = logical_date.astimezone(ZoneInfo(get_settings().hospital_timezone))
    return (local.date() - dt.timedelta(days=1)).isoformat()


def monitoring_schedule() -> tuple[str, Any]:
    """(cron, first moment) of the daily monitoring, from the settings."""
    from pipelines.config import get_settings
    from pipelines.orchestration.controls import schedule_start

    s = get_settings()
    return s.monitoring_schedule, schedule_start(s.hospital_timezone)


def retrain_if_alerted(monitor: dict[str, Any]) -> dict[str, Any]:
    """The task carrying the `mammo_data_drift` outlet: it succeeds (and so emits the asset
    that starts retraining) only when the night raised a sustained-drift alert, and e-mails
    the alert when recipients are configured; otherwise it is skipped and emits nothing."""
    from airflow.sdk.exceptions import AirflowSkipException

    if not monitor.get("alert"):
        raise AirflowSkipException(f"no sustained drift on {monitor.get('date')}: "
                                   f"{monitor.get('alert_reason', '')}")
    from pipelines.config import get_settings
    from pipelines.monitoring.notices import drift_notice
    from pipelines.orchestration.mail import send_email

    s = get_settings()
    to = [a.strip() for a in s.notify_email_to.split(",") if a.strip()]
    if to:
        notice = drift_notice(monitor["task"], monitor["date"], monitor["model_version"],
                              monitor["alert_reason"], monitor["report"])
        send_email(notice, to, s.notify_smtp_conn_id)
    return {"date": monitor["date"], "sustained_families": monitor["sustained_families"], "emailed": len(to)}


def fail_unless_ok(result: dict[str, Any]) -> dict[str, Any]:
    """Fail the integrity task (red in the UI, after the rows were stored and notified)
    when a model file is not the approved one or an unknown model is served."""
    if result.get("ok"):
        return result
    from airflow.sdk.exceptions import AirflowFailException

    problems = "; ".join(f"{p['triton_model']}/{p['version'] or '-'}: {p['status']}"
                         for p in result.get("problems", []))
    raise AirflowFailException(f"model-file integrity check failed: {problems}")
