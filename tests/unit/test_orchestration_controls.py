"""What hospital IT controls: clinical hours, the screening deadline, the default task
arguments, and the alerts a failed task or a missed deadline sends."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.config import get_settings, reset_settings
from pipelines.errors import PermanentError
from pipelines.orchestration import alerts, controls


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    reset_settings()
    yield monkeypatch
    reset_settings()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(("now", "end"), [
    ("2026-12-07T09:30:00+00:00", "2026-12-07T18:00:00+00:00"),  # Monday morning
    ("2026-12-07T07:00:00+00:00", "2026-12-07T18:00:00+00:00"),  # the first minute
    ("2026-12-07T18:00:00+00:00", None),  # over
    ("2026-12-07T06:59:00+00:00", None),  # not yet
    ("2026-12-06T10:00:00+00:00", None),  # Sunday
])
def test_clinical_hours_default_to_weekdays_seven_to_six(settings: pytest.MonkeyPatch, now: str,
                                                         end: str | None) -> None:
    assert controls.clinical_hours_end(at(now)) == (at(end) if end else None)


def test_clinical_hours_are_read_in_the_hospital_time_zone(settings: pytest.MonkeyPatch) -> None:
    settings.setenv("RADFLOW_HOSPITAL_TIMEZONE", "America/New_York")
    # 13:00 UTC is 08:00 in New York on a Monday in December: inside, until 18:00 local
    end = controls.clinical_hours_end(at("2026-12-07T13:00:00+00:00"))
    assert end is not None and end.astimezone(dt.UTC) == at("2026-12-07T23:00:00+00:00")


def test_hours_that_wrap_midnight_belong_to_the_day_they_start(settings: pytest.MonkeyPatch) -> None:
    settings.setenv("RADFLOW_CLINICAL_HOURS", "22:00-06:00")
    settings.setenv("RADFLOW_CLINICAL_DAYS", "fri")
    assert controls.clinical_hours_end(at("2026-12-05T02:00:00+00:00")) == at("2026-12-05T06:00:00+00:00")
    assert controls.clinical_hours_end(at("2026-12-04T23:00:00+00:00")) == at("2026-12-05T06:00:00+00:00")
    assert controls.clinical_hours_end(at("2026-12-06T02:00:00+00:00")) is None  # Saturday night


def test_no_clinical_hours_means_never_wait(settings: pytest.MonkeyPatch) -> None:
    settings.setenv("RADFLOW_CLINICAL_HOURS", "")
    assert controls.clinical_hours_end(at("2026-12-07T09:30:00+00:00")) is None


@pytest.mark.parametrize(("name", "value"), [("RADFLOW_CLINICAL_HOURS", "7-18"),
                                             ("RADFLOW_CLINICAL_HOURS", "07:00"),
                                             ("RADFLOW_CLINICAL_DAYS", "mon,funday")])
def test_malformed_clinical_hours_are_refused_by_name(settings: pytest.MonkeyPatch, name: str,
                                                      value: str) -> None:
    settings.setenv(name, value)
    with pytest.raises(PermanentError, match=name):
        controls.clinical_hours_end(at("2026-12-07T09:30:00+00:00"))


@pytest.mark.parametrize(("cron", "deadline", "hours"), [
    ("0 2 * * *", "07:00", 5.0), ("30 1 * * 1-5", "06:15", 4.75), ("0 23 * * *", "07:00", 8.0),
    ("0 2 * * *", "02:00", 24.0)])
def test_the_deadline_is_the_next_deadline_time_after_the_tick(settings: pytest.MonkeyPatch, cron: str,
                                                               deadline: str, hours: float) -> None:
    settings.setenv("RADFLOW_SCREENING_SCHEDULE", cron)
    settings.setenv("RADFLOW_SCREENING_DEADLINE", deadline)
    assert controls.deadline_interval() == dt.timedelta(hours=hours)


def test_default_args_carry_timeout_backoff_and_the_failure_alert(settings: pytest.MonkeyPatch) -> None:
    settings.setenv("RADFLOW_TASK_RETRIES", "3")
    args = controls.default_args("ml-team")
    assert args["retries"] == 3 and args["retry_exponential_backoff"] == 2.0
    assert args["retry_delay"] == dt.timedelta(minutes=5) and args["max_retry_delay"] == dt.timedelta(hours=1)
    assert args["execution_timeout"] == dt.timedelta(hours=2)
    assert args["on_failure_callback"] is alerts.on_task_failure
    assert controls.default_args("x", timeout_minutes=30)["execution_timeout"] == dt.timedelta(minutes=30)


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"body": json.loads(body), "key": self.headers["Idempotency-Key"]})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook(settings: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.setenv("RADFLOW_NOTIFY_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
    settings.setenv("RADFLOW_AIRFLOW_URL", "https://airflow.hospital.example")
    try:
        yield _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


def test_a_failed_task_posts_what_failed_and_where_its_log_is(webhook: list[dict[str, Any]]) -> None:
    ti = SimpleNamespace(dag_id="screen_daily_mammograms", run_id="scheduled__2026-12-07T02:00:00+00:00",
                         task_id="screen_exams", try_number=3)
    alerts.on_task_failure({"ti": ti, "exception": TimeoutError("Triton did not answer")})
    (sent,) = webhook
    body = sent["body"]
    assert body["kind"] == "task_failed" and body["task_id"] == "screen_exams" and body["try_number"] == 3
    assert body["summary"] == "task screen_exams failed: TimeoutError: Triton did not answer"
    assert body["url"].startswith("https://airflow.hospital.example/dags/screen_daily_mammograms/runs/")
    assert sent["key"] == body["id"]


def test_a_missed_deadline_posts_the_run_from_the_triggerer(webhook: list[dict[str, Any]]) -> None:
    import asyncio

    context = {"dag_run": {"dag_id": "screen_daily_mammograms", "dag_run_id": "scheduled__x",
                           "state": "running"},
               "deadline": {"id": "d1", "deadline_time": "2026-12-07T07:00:00+00:00"}}
    asyncio.run(alerts.screening_deadline_missed(context=context, deadline="07:00 UTC"))
    (sent,) = webhook
    assert sent["body"]["kind"] == "deadline_missed" and sent["body"]["run_id"] == "scheduled__x"
    assert "not finished by 07:00 UTC" in sent["body"]["summary"] and "running" in sent["body"]["summary"]


def test_an_alert_that_cannot_be_delivered_never_raises(settings: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    settings.setenv("RADFLOW_NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/closed")
    settings.setenv("RADFLOW_NOTIFY_WEBHOOK_TIMEOUT_S", "1")
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", try_number=1)
    alerts.on_task_failure({"ti": ti, "exception": ValueError("x")})
    assert "not delivered" in caplog.text
    assert get_settings().notify_webhook_url is not None
