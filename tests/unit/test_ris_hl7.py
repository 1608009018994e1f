"""The ORU^R01 a RIS receives: parsed back with `hl7`, escaped, with a stable control id;
and its delivery over MLLP to a real listener process (tests/unit/ris_listener.py)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import select
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hl7
import pytest

from pipelines.config import RadflowSettings
from pipelines.errors import PermanentError, TransientError
from pipelines.ris.hl7v2 import build_oru, escape, send_mllp
from pipelines.ris.report import ExamReport, message_id

LISTENER = Path(__file__).with_name("ris_listener.py")
NAME = "O'Brien^Anne|X&Y~Z\\W"
SENT_AT = dt.datetime(2026, 3, 2, 6, 30, tzinfo=dt.UTC)
PHI = ("P-483920", "O'Brien", "Anne", "ACC-2026-0077", "1.2.826.0.1.3680043.8.498.1", "19650304")

Listener = Callable[..., tuple[int, Path]]


def _report(**changes: Any) -> ExamReport:
    fields: dict[str, Any] = dict(
        patient_id="P-483920", patient_name=NAME, birth_date="19650304", sex="F",
        accession_number="ACC-2026-0077", study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        study_date="2026-03-01", task="malignancy", model_name="mammo-screening", model_version="7",
        exam_score=0.83121, suspicion=8, flagged=True,
        view_scores={"L-MLO": 0.91, "R-CC": 0.1, "L-CC": 0.8, "R-MLO": 0.12},
        discounted={"R-MLO": "motion blur | re-take ^ advised"}, exam_id="ex-0a1b2c3d4e5f6a7b")
    fields.update(changes)
    return ExamReport(**fields)


def _oru(report: ExamReport | None = None, corrects: bool = False) -> str:
    return build_oru(report or _report(), RadflowSettings(ris_sending_facility="BREAST CENTRE"),
                     corrects=corrects, sent_at=SENT_AT)


def _obx(message: hl7.Message, code: str) -> list[Any]:
    return [obx for obx in message.segments("OBX") if str(obx[3][0][0]) == code]


def test_the_oru_parses_back_with_its_segments_and_fields() -> None:
    message = hl7.parse(_oru())
    assert [str(s[0]) for s in message][:4] == ["MSH", "PID", "ORC", "OBR"]
    assert message["MSH.F3"] == "RADFLOW" and message["MSH.F4"] == "BREAST CENTRE"
    assert (message["MSH.F5"], message["MSH.F6"]) == ("RIS", "HOSPITAL")
    assert str(message.segment("MSH")[9]) == "ORU^R01^ORU_R01"
    assert message["MSH.F10"] == message_id(_report())
    assert (message["MSH.F11"], message["MSH.F12"], message["MSH.F18"]) == ("P", "2.5.1", "UNICODE UTF-8")
    assert message["MSH.F7"] == "20260302063000+0000"
    assert message["PID.F3.R1.C1"] == "P-483920" and message["PID.F3.R1.C5"] == "MR"
    assert (message["PID.F7"], message["PID.F8"]) == ("19650304", "F")
    assert message["OBR.F2"] == message["OBR.F3"] == "ACC-2026-0077"
    assert message["OBR.F4.R1.C1"] == "24606-6" and message["OBR.F4.R1.C3"] == "LN"
    assert (message["OBR.F7"], message["OBR.F25"]) == ("20260301", "F")
    assert str(_obx(message, "EXAM-SCORE")[0][5]) == "0.8312"
    assert str(_obx(message, "EXAM-SCORE")[0][2]) == "NM"
    assert str(_obx(message, "SUSPICION")[0][5]) == "8"
    assert str(_obx(message, "FLAGGED")[0][5]) == "Y^Yes^HL70136"
    views = {str(obx[4]): str(obx[5]) for obx in _obx(message, "VIEW-SCORE")}
    assert views == {"R-CC": "0.1000", "L-CC": "0.8000", "R-MLO": "0.1200", "L-MLO": "0.9100"}
    assert [str(obx[4]) for obx in _obx(message, "VIEW-SCORE")] == ["R-CC", "L-CC", "R-MLO", "L-MLO"]
    assert str(_obx(message, "MODEL-NAME")[0][5]) == "mammo-screening"
    assert str(_obx(message, "MODEL-VERSION")[0][5]) == "7"
    assert str(_obx(message, "110180")[0][5]) == "1.2.826.0.1.3680043.8.498.1"
    assert [str(obx[1]) for obx in message.segments("OBX")] == [
        str(i) for i in range(1, len(message.segments("OBX")) + 1)]
    assert {str(obx[11]) for obx in message.segments("OBX")} == {"F"}


def test_a_correction_carries_result_status_c_and_the_flag_n() -> None:
    message = hl7.parse(_oru(_report(flagged=False), corrects=True))
    assert message["OBR.F25"] == "C"
    assert {str(obx[11]) for obx in message.segments("OBX")} == {"C"}
    assert str(_obx(message, "FLAGGED")[0][5]) == "N^No^HL70136"


def test_delimiters_in_values_are_escaped_and_come_back_intact() -> None:
    text = _oru()
    message = hl7.parse(text)
    assert len(text.split("\r")) == len(message) + 1  # no value split a segment
    assert len(message.segment("PID")) == 9  # nor a field
    assert "O'Brien^Anne\\F\\X\\T\\Y\\R\\Z\\E\\W" in text
    assert message["PID.F5.R1.C1"] == "O'Brien"  # DICOM PN: family ^ given
    assert message["PID.F5.R1.C2"] == "Anne|X&Y~Z\\W"
    qc = _obx(message, "QC-DISCOUNTED")[0]
    assert str(qc[4]) == "R-MLO" and message.unescape(str(qc[5])) == "motion blur | re-take ^ advised"
    assert escape("a|b^c~d\\e&f\rg") == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f g"


def test_a_dicom_name_maps_to_hl7_name_components() -> None:
    message = hl7.parse(_oru(_report(patient_name="Müller^Zoë^M^Dr^Jr=ミュラー^ゾエ")))
    assert [message[f"PID.F5.R1.C{i}"] for i in range(1, 6)] == ["Müller", "Zoë", "M", "Jr", "Dr"]


def test_the_control_id_is_the_same_for_a_resend_and_new_for_a_changed_result() -> None:
    first = hl7.parse(_oru())["MSH.F10"]
    resend = hl7.parse(build_oru(_report(), RadflowSettings(), sent_at=SENT_AT + dt.timedelta(days=1)))
    assert resend["MSH.F10"] == first and len(first) == 20
    assert message_id(_report(exam_score=0.5)) != first
    assert message_id(_report(view_scores={"R-CC": 0.2})) != first
    assert message_id(_report(model_version="8")) != first
    assert message_id(_report(exam_id="ex-ffffffffffffffff")) != first
    assert message_id(_report(patient_name="Other^Name")) == first  # the result, not the patient


def test_an_exam_report_never_shows_identifying_fields() -> None:
    shown = repr(_report()) + str(_report()) + f"{_report()}"
    assert "ex-0a1b2c3d4e5f6a7b" in shown
    assert not [value for value in PHI if value in shown]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"exam_score": 1.5}, "exam score 1.5 is not in"), ({"suspicion": 11}, "suspicion 11"),
    ({"birth_date": "1965-03-04"}, "birth date is not YYYYMMDD"),
    ({"study_instance_uid": "1.2.x"}, "not a DICOM UID"), ({"accession_number": ""}, "accession"),
    ({"view_scores": {"L-CC": -0.1}}, r"\['L-CC'\]"), ({"sex": "female"}, "sex is not"),
])
def test_a_report_outside_its_contract_is_refused_without_its_values(changes: dict[str, Any],
                                                                     reason: str) -> None:
    with pytest.raises(PermanentError, match=reason) as caught:
        _report(**changes)
    assert "ex-0a1b2c3d4e5f6a7b" in str(caught.value)
    assert not [value for value in (*PHI, "1965-03-04", "1.2.x", "female") if value in str(caught.value)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    """Starts ris_listener.py processes (ACK code, error text) -> (port, received file); kills them."""
    processes: list[subprocess.Popen[str]] = []

    def start(code: str = "AA", error_text: str = "") -> tuple[int, Path]:
        received = tmp_path / f"received-{len(processes)}.jsonl"
        process = subprocess.Popen([sys.executable, str(LISTENER), str(received), code, error_text],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            process.kill()
            pytest.fail(f"MLLP listener did not start: {process.communicate(timeout=10)[1][-2000:]}")
        return int(line.split()[1]), received

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _received(path: Path) -> list[str]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_send_mllp_delivers_exactly_the_message_and_returns_the_aa(
        listener: Listener, caplog: pytest.LogCaptureFixture) -> None:
    port, received = listener("AA")
    message = _oru(_report(patient_name="Müller^Zoë|X"))
    with caplog.at_level(logging.DEBUG):
        ack = send_mllp("127.0.0.1", port, message, timeout_s=10)
    assert (ack.code, ack.control_id) == ("AA", hl7.parse(message)["MSH.F10"])
    assert _received(received) == [message]
    assert hl7.parse(_received(received)[0])["PID.F5.R1.C2"] == "Zoë|X"
    assert ack.control_id in caplog.text
    assert not [value for value in (*PHI, "Müller") if value in caplog.text]


def test_a_resend_on_one_listener_carries_the_same_control_id(listener: Listener) -> None:
    port, received = listener("AA")
    for _ in range(2):
        send_mllp("127.0.0.1", port, _oru(), timeout_s=10)
    assert [hl7.parse(m)["MSH.F10"] for m in _received(received)] == [message_id(_report())] * 2


def test_an_ae_is_a_permanent_error_naming_the_code_and_text_without_phi(listener: Listener) -> None:
    port, received = listener("AE", "order ACC-2026-0077 of patient P-483920 not found")
    with pytest.raises(PermanentError, match="answered AE") as caught:
        send_mllp("127.0.0.1", port, _oru(), timeout_s=10)
    assert "order *** of patient *** not found" in str(caught.value)
    assert message_id(_report()) in str(caught.value)
    assert not [value for value in PHI if value in str(caught.value)]
    assert len(_received(received)) == 1


def test_an_ar_is_a_permanent_error(listener: Listener) -> None:
    port, _ = listener("AR", "unsupported message type")
    with pytest.raises(PermanentError, match="answered AR .*unsupported message type"):
        send_mllp("127.0.0.1", port, _oru(), timeout_s=10)


def test_nothing_listening_is_a_transient_error_naming_host_and_port() -> None:
    port = _free_port()
    with pytest.raises(TransientError, match=f"127.0.0.1:{port} unreachable"):
        send_mllp("127.0.0.1", port, _oru(), timeout_s=5)


def test_no_ack_within_the_timeout_is_a_transient_error(listener: Listener) -> None:
    port, received = listener("none")
    with pytest.raises(TransientError, match=f"127.0.0.1:{port} did not acknowledge"):
        send_mllp("127.0.0.1", port, _oru(), timeout_s=0.5)
    assert len(_received(received)) == 1
