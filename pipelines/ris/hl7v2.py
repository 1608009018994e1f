"""An exam's result as an HL7 v2.5.1 ORU^R01, delivered to the RIS over MLLP.

The message carries PHI (PID, order numbers): it is built in memory, sent, and never
logged; logs and errors name its control id (`report.message_id`) and host:port only.
Field values are escaped (| ^ ~ \\ & become \\F\\ \\S\\ \\R\\ \\E\\ \\T\\) and the message
declares UTF-8 (MSH-18), so any name travels intact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import socket
from typing import TYPE_CHECKING, Any

from pipelines.errors import MisusedApi, PermanentError, TransientError
from pipelines.ris.report import (
    SCREENING_SERVICE,
    ExamReport,
    conclusion,
    message_id,
    ordered_views,
    redact,
    score_text,
)

if TYPE_CHECKING:
    from pipelines.config import RadflowSettings

log = logging.getLogger(__name__)

SENDING_APPLICATION = "RADFLOW"
LOCAL_CODES = "99RADFLOW"  # HL7 "99zzz": radflow's local observation codes
STUDY_UID_CODE = ("110180", "Study Instance UID", "DCM")  # DICOM's code, OBX-3 of the study's UID
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}
_START, _END = b"\x0b", b"\x1c"
_MAX_ACK_BYTES = 1 << 20
_ACCEPTED = frozenset({"AA", "CA"})


@dataclasses.dataclass(frozen=True)
class Ack:
    """The RIS's acknowledgement: MSA-1 code, MSA-2 control id, MSA-3/ERR text (redacted)."""

    code: str
    control_id: str
    text: str


def escape(value: str) -> str:
    """One component's text with the HL7 delimiters escaped and line breaks made spaces.

    Written here rather than `hl7.escape`, which turns every non-ASCII character into a
    \\Xhh\\ escape of its code point (wrong for UTF-8, which MSH-18 declares).
    """
    return "".join(_ESCAPES.get(ch, " " if ord(ch) < 0x20 else ch) for ch in value)


def _composite(*components: str) -> str:
    """Escaped components joined by ^, trailing empty ones dropped."""
    return "^".join(escape(c) for c in components).rstrip("^")


def _segment(name: str, fields: dict[int, str]) -> str:
    """A segment from {field number: already escaped value}; unset fields stay empty."""
    values = [fields.get(i, "") for i in range(1, max(fields) + 1)]
    return "|".join([name, *values])


def _person_name(pn: str) -> str:
    """DICOM PN ("Family^Given^Middle^Prefix^Suffix") as HL7 XPN (family^given^middle^suffix^prefix)."""
    parts = (pn.split("=")[0].split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = parts
    return _composite(family, given, middle, suffix, prefix)


def _hl7_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S%z")


def _header(report: ExamReport, settings: RadflowSettings, sent_at: dt.datetime) -> list[str]:
    msh = ("MSH|^~\\&|" + "|".join([
        escape(SENDING_APPLICATION), escape(settings.ris_sending_facility),
        escape(settings.ris_receiving_application), escape(settings.ris_receiving_facility),
        _hl7_time(sent_at), "", "ORU^R01^ORU_R01", message_id(report), "P", "2.5.1",
        "", "", "", "", "", "UNICODE UTF-8"]))
    pid = _segment("PID", {1: "1", 3: _composite(report.patient_id, "", "", "", "MR"),
                           5: _person_name(report.patient_name), 7: report.birth_date,
                           8: escape(report.sex)})
    accession = escape(report.accession_number)
    orc = _segment("ORC", {1: "RE", 2: accession, 3: accession, 5: "CM"})
    return [msh, pid, orc]


def _order(report: ExamReport, status: str, sent_at: dt.datetime) -> str:
    accession = escape(report.accession_number)
    service = _composite(*SCREENING_SERVICE, f"RADFLOW-{report.task.upper()}",
                         f"radflow AI screening: {report.task}", LOCAL_CODES)
    return _segment("OBR", {1: "1", 2: accession, 3: accession, 4: service,
                            7: report.study_date.replace("-", ""), 22: _hl7_time(sent_at),
                            24: "RAD", 25: status})


_Row = tuple[str, tuple[str, str, str], str, str, str]


def _observations(report: ExamReport) -> list[_Row]:
    """(value type, (code, text, coding system), sub-id, escaped value, reference range) per OBX."""
    flag = _composite("Y", "Yes", "HL70136") if report.flagged else _composite("N", "No", "HL70136")
    rows: list[_Row] = [
        ("NM", ("EXAM-SCORE", "AI exam score (probability)", LOCAL_CODES), "",
         score_text(report.exam_score), "0-1"),
        ("NM", ("SUSPICION", "AI suspicion level", LOCAL_CODES), "", str(report.suspicion), "1-10"),
        ("CWE", ("FLAGGED", "Flagged for priority reading", LOCAL_CODES), "", flag, "")]
    rows += [("NM", ("VIEW-SCORE", "AI view score (probability)", LOCAL_CODES), view,
              score_text(report.view_scores[view]), "0-1") for view in ordered_views(report.view_scores)]
    rows += [("ST", ("QC-DISCOUNTED", "View left out by quality control", LOCAL_CODES), view,
              escape(report.discounted[view]), "") for view in ordered_views(report.discounted)]
    rows += [("ST", ("MODEL-NAME", "AI model name", LOCAL_CODES), "", escape(report.model_name), ""),
             ("ST", ("MODEL-VERSION", "AI model version", LOCAL_CODES), "", escape(report.model_version), ""),
             ("ST", STUDY_UID_CODE, "", escape(report.study_instance_uid), ""),
             ("TX", ("CONCLUSION", "AI result summary", LOCAL_CODES), "", escape(conclusion(report)), "")]
    return rows


def build_oru(report: ExamReport, settings: RadflowSettings, corrects: bool = False,
              sent_at: dt.datetime | None = None) -> str:
    """The exam's result as an HL7 v2.5.1 ORU^R01 (segments separated by CR).

    MSH-10 is `message_id(report)`: a resend of the same result carries the same control id.

    Args:
        report: the exam's result and identifiers (PHI: the message must not be logged).
        settings: ris_sending_facility, ris_receiving_application, ris_receiving_facility.
        corrects: True when this result replaces one the RIS already has (result status C
            instead of F in OBR-25 and every OBX-11).
        sent_at: MSH-7 and OBR-22; now (UTC) by default.

    Returns:
        The message text, ending with CR.
    """
    sent_at = sent_at or dt.datetime.now(dt.UTC)
    status = "C" if corrects else "F"
    observed = report.study_date.replace("-", "")
    segments = [*_header(report, settings, sent_at), _order(report, status, sent_at)]
    for set_id, (kind, code, sub_id, value, ref_range) in enumerate(_observations(report), 1):
        segments.append(_segment("OBX", {1: str(set_id), 2: kind, 3: _composite(*code), 4: escape(sub_id),
                                         5: value, 7: ref_range, 11: status, 14: observed}))
    return "\r".join(segments) + "\r"


def _read_block(sock: socket.socket) -> bytes:
    """Bytes up to and including the MLLP end block (an ACK may arrive in several reads)."""
    data = b""
    while _END not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the connection closed before an ACK arrived")
        data += chunk
        if len(data) > _MAX_ACK_BYTES:
            raise ConnectionError(f"no MLLP end block in the first {_MAX_ACK_BYTES} bytes of the answer")
    return data


def _mllp_client(host: str, port: int, timeout_s: float) -> Any:
    """`hl7.client.MLLPClient` with a connect/read timeout and a complete-ACK read.

    The library's client connects without a timeout and returns a single recv(); its
    framing (`send_message`) is kept, its socket and `send` are replaced.
    """
    from hl7.client import MLLPClient

    class TimedMLLPClient(MLLPClient):  # type: ignore[misc]
        def __init__(self) -> None:  # replaces the library's blocking connect
            self.socket = socket.create_connection((host, port), timeout=timeout_s)
            self.encoding = "utf-8"

        def send(self, data: bytes) -> bytes:
            self.socket.sendall(data)
            return _read_block(self.socket)

    return TimedMLLPClient()


def _atoms(field: Any) -> list[str]:
    """Every repetition's, component's and subcomponent's text of a parsed field (still escaped)."""
    return [part for part in re.split(r"[~^&]", str(field)) if part]


def _identifying(message: Any) -> list[str]:
    """The identifying values of a sent ORU (PID, order numbers, study UID), for `redact`."""
    values: list[str] = []
    for segment in message:
        name = str(segment[0])
        if name == "PID":
            values += [atom for field in segment[2:] for atom in _atoms(field)]
        elif name in ("ORC", "OBR"):
            values += [atom for field in segment[2:4] for atom in _atoms(field)]
        elif name == "OBX" and len(segment) > 5 and str(segment[3]).startswith(STUDY_UID_CODE[0]):
            values += _atoms(segment[5])
    return [message.unescape(v) for v in values]


def _ack_text(ack: Any) -> str:
    """MSA-3 and each ERR's user message, diagnostic, error code text or v2.3 location."""
    texts = []
    for segment in ack:
        name = str(segment[0])
        if name == "MSA" and len(segment) > 3:
            texts.append(str(segment[3]))
        elif name == "ERR":
            fields = [str(segment[i]) for i in (8, 7, 3, 1) if len(segment) > i and str(segment[i])]
            texts += fields[:1]
    return "; ".join(ack.unescape(t) for t in texts if t)[:500]


def parse_ack(raw: bytes, sent: str, where: str) -> Ack:
    """The RIS's answer to `sent` as an Ack, its text redacted of the message's identifiers.

    Raises:
        PermanentError: the answer is not an HL7 ACK (no MSA segment).
    """
    import hl7

    text = raw.strip(_START + _END + b"\r\n").decode("utf-8", errors="replace")
    try:
        ack = hl7.parse(text)
        msa = ack.segment("MSA")
    except (KeyError, IndexError, ValueError, hl7.HL7Exception) as exc:
        raise PermanentError(f"RIS MLLP {where} answered something that is not an HL7 ACK "
                             f"({len(raw)} bytes); is it an MLLP listener?") from exc
    sent_message = hl7.parse(sent)
    return Ack(code=str(msa[1]).strip().upper(), control_id=str(msa[2]).strip(),
               text=redact(_ack_text(ack), _identifying(sent_message)))


def _control_id(message: str) -> str:
    """MSH-10 of an HL7 message.

    Raises:
        MisusedApi: `message` is not an HL7 v2 message with a control id.
    """
    import hl7

    try:
        msh = hl7.parse(message).segment("MSH")
        control_id = str(msh[10]) if len(msh) > 10 else ""
    except (KeyError, IndexError, ValueError, hl7.HL7Exception) as exc:
        raise MisusedApi("send_mllp takes an HL7 v2 message (build_oru), got text without an MSH "
                         "segment") from exc
    if not control_id:
        raise MisusedApi("send_mllp: the message has no control id (MSH-10)")
    return control_id


def send_mllp(host: str, port: int, message: str, timeout_s: float) -> Ack:
    """Deliver one HL7 message over MLLP and return the RIS's accepting ACK.

    A timeout after sending may mean the RIS filed the message without answering: a retry
    resends the same control id, which the RIS recognises as a copy.

    Args:
        host, port: the RIS's MLLP listener (RADFLOW_RIS_MLLP_HOST / _PORT).
        message: an HL7 v2 message (`build_oru`); PHI, never logged.
        timeout_s: for the connection and for the ACK.

    Returns:
        The ACK (code AA, or CA in enhanced mode).

    Raises:
        TransientError: connection refused, unreachable, closed, or no ACK within timeout_s;
            or the ACK names another control id.
        PermanentError: the RIS answered AE or AR (or CE/CR): the message names the code and
            the ACK's MSA-3/ERR text, with identifying values replaced by ***; or the answer
            is not an HL7 ACK.
        MisusedApi: `message` is not an HL7 v2 message with a control id.
    """
    where = f"{host}:{port}"
    control_id = _control_id(message)
    try:
        with _mllp_client(host, port, timeout_s) as client:
            raw = client.send_message(message)
    except TimeoutError as exc:
        raise TransientError(f"RIS MLLP {where} did not acknowledge message {control_id} within "
                             f"{timeout_s} s") from exc
    except OSError as exc:
        raise TransientError(f"RIS MLLP {where} unreachable for message {control_id}: "
                             f"{exc.strerror or exc}") from exc
    ack = parse_ack(raw, message, where)
    if ack.code not in _ACCEPTED:
        raise PermanentError(f"RIS MLLP {where} answered {ack.code} to message {control_id}: "
                             f"{ack.text or 'no error text'}")
    if ack.control_id != control_id:
        raise TransientError(f"RIS MLLP {where} acknowledged control id {ack.control_id!r} instead "
                             f"of {control_id}")
    log.info("ris: HL7 message %s acknowledged %s by %s", control_id, ack.code, where)
    return ack
