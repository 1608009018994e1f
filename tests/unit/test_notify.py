"""Notifying the reading room: the webhook against a local HTTP server, the e-mail through
Airflow's SMTP hook against a local SMTP server (both in threads)."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.config import reset_settings
from pipelines.errors import NotificationFailed, PermanentError
from pipelines.notify import send_webhook
from pipelines.screening.notice import announce, notice_for
from pipelines.screening.worklist import Night, NightFiles, WorklistEntry, publish_night


def _entry(exam: str, score: float, suspicion: int, flagged: bool) -> WorklistEntry:
    image = np.full((32, 16), 0.5, np.float32)
    return WorklistEntry(exam, score, suspicion, flagged, "operating point" if flagged else "",
                         {"R-CC": score}, {}, f"http://127.0.0.1:8042/app/explorer.html#study?uuid={exam}",
                         {"R-CC": (image, np.zeros((2, 1), np.float32))})


@pytest.fixture()
def night(tmp_path: Path) -> NightFiles:
    entries = [_entry("ex-a", 0.2, 2, False), _entry("ex-b", 0.8, 9, True), _entry("ex-c", 0.9, 10, True)]
    return publish_night(tmp_path / "worklists", Night("2026-03-14", "mammo", "7", None, 0, None), entries)


class Receiver:
    """A webhook receiver: records each POST; answers `status`, or stalls until released."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.release = threading.Event()
        self.stall = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "json": json.loads(body)})
                if receiver.stall:
                    receiver.release.wait(10)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/SECRET-TOKEN"


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.release.set()
    r.server.shutdown()
    r.server.server_close()


def test_the_notice_lists_only_flagged_exams_by_suspicion(night: NightFiles) -> None:
    notice = notice_for(night.html)
    assert [(f.exam_id, f.suspicion, f.reason) for f in notice.flagged] == [
        ("ex-c", 10, "operating point"), ("ex-b", 9, "operating point")]
    assert notice.flagged[0].study_url == "http://127.0.0.1:8042/app/explorer.html#study?uuid=ex-c"
    assert (notice.id, notice.exams, notice.worklist) == ("mammo/2026-03-14/7", 3, str(night.html))
    assert notice.subject() == "radflow mammo 2026-03-14: 2 of 3 exams flagged"
    assert "ex-a" not in notice.html() and "ex-c" in notice.html()
    served = notice_for(night.folder, base_url="https://pacs.example.org/worklists/")
    assert served.worklist == "https://pacs.example.org/worklists/mammo/2026-03-14/index.html"


def test_a_missing_worklist_is_a_permanent_error_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=f"no readable worklist.json in {tmp_path}"):
        notice_for(tmp_path / "index.html")


def test_the_webhook_receives_the_flagged_exams_as_json(night: NightFiles, receiver: Receiver) -> None:
    notice = notice_for(night.html)
    assert send_webhook(receiver.url, notice, timeout_s=5) == 200
    [got] = receiver.requests
    assert got["path"] == "/hooks/SECRET-TOKEN"
    assert got["headers"]["Content-Type"] == "application/json"
    assert got["headers"]["Idempotency-Key"] == "mammo/2026-03-14/7"
    body = got["json"]
    assert (body["id"], body["exams"], body["flagged_count"]) == ("mammo/2026-03-14/7", 3, 2)
    assert [(f["exam_id"], f["suspicion"]) for f in body["flagged"]] == [("ex-c", 10), ("ex-b", 9)]
    assert set(body["flagged"][0]) == {"exam_id", "suspicion", "score", "reason", "study_url"}


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_failing_receiver_is_a_transient_error_without_the_token(
        night: NightFiles, receiver: Receiver, status: int) -> None:
    receiver.status = status
    with pytest.raises(NotificationFailed, match=f"HTTP {status}") as raised:
        send_webhook(receiver.url, notice_for(night.html), timeout_s=5)
    assert "SECRET" not in str(raised.value) and "127.0.0.1" in str(raised.value)


def test_a_refusing_receiver_is_a_permanent_error(night: NightFiles, receiver: Receiver) -> None:
    receiver.status = 404
    with pytest.raises(PermanentError, match="refused the notice mammo/2026-03-14/7: HTTP 404") as raised:
        send_webhook(receiver.url, notice_for(night.html), timeout_s=5)
    assert not isinstance(raised.value, NotificationFailed)


def test_a_receiver_that_does_not_answer_in_time_is_a_transient_error(
        night: NightFiles, receiver: Receiver) -> None:
    receiver.stall = True
    with pytest.raises(NotificationFailed, match="did not take notice mammo/2026-03-14/7 within 0.3 s"):
        send_webhook(receiver.url, notice_for(night.html), timeout_s=0.3)
    assert len(receiver.requests) == 1  # it did arrive; the answer did not


def test_no_receiver_at_all_is_a_transient_error(night: NightFiles) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(NotificationFailed, match=f"webhook http://127.0.0.1:{port} did not take"):
        send_webhook(f"http://127.0.0.1:{port}/hook", notice_for(night.html), timeout_s=5)


def test_only_http_urls_are_accepted(night: NightFiles) -> None:
    with pytest.raises(PermanentError, match="got scheme 'file'"):
        send_webhook("file:///etc/passwd", notice_for(night.html))


def test_announce_posts_only_when_a_webhook_is_configured(
        night: NightFiles, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    announce(night.html)
    assert receiver.requests == []
    monkeypatch.setenv("RADFLOW_NOTIFY_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("RADFLOW_NOTIFY_WORKLIST_BASE_URL", "http://wl.example.org")
    reset_settings()
    notice = announce(night.html)
    assert [r["json"]["worklist"] for r in receiver.requests] == [notice.worklist]
    assert notice.worklist == "http://wl.example.org/mammo/2026-03-14/index.html"


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: every command accepted, each message recorded."""

    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        data: list[bytes] | None = None
        while line := self.rfile.readline():
            if data is not None:
                if line == b".\r\n":
                    self.server.messages.append(b"".join(data).decode())  # type: ignore[attr-defined]
                    data = None
                    self.wfile.write(b"250 queued\r\n")
                else:
                    data.append(line)
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                data = []
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def _smtp_connection(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_RADFLOW_TEST", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"from_email": "radflow@hospital.example", "disable_ssl": True, "disable_tls": True}}))
    monkeypatch.setenv("RADFLOW_NOTIFY_SMTP_CONN_ID", "smtp_radflow_test")
    monkeypatch.setenv("RADFLOW_NOTIFY_EMAIL_TO", "reading-room@hospital.example, lead@hospital.example")
    reset_settings()


def test_the_night_is_emailed_through_the_airflow_smtp_connection(
        night: NightFiles, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.orchestration.mail import notify_night

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.messages = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("RADFLOW_NOTIFY_WEBHOOK_URL", receiver.url)
        _smtp_connection(monkeypatch, server.server_address[1])
        sent = notify_night(str(night.html))
    finally:
        server.shutdown()
        server.server_close()
    assert sent == {"id": "mammo/2026-03-14/7", "flagged": 2, "webhook": True, "emailed": 2}
    assert len(receiver.requests) == 1
    [message] = server.messages  # type: ignore[attr-defined]
    assert "Subject: radflow mammo 2026-03-14: 2 of 3 exams flagged" in message
    assert "X-Radflow-Notice: mammo/2026-03-14/7" in message
    assert "reading-room@hospital.example" in message


def test_a_mail_server_that_is_down_is_a_transient_error(
        night: NightFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.orchestration.mail import notify_night

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _smtp_connection(monkeypatch, port)
    with pytest.raises(NotificationFailed, match="SMTP connection 'smtp_radflow_test' did not take notice"):
        notify_night(str(night.html))
