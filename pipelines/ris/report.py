"""What a RIS needs to file one AI screening result against its order: `ExamReport`.

PHI-BEARING: an ExamReport holds the patient's id, name, birth date and sex, the accession
number and the original Study Instance UID. Build it in memory right before a delivery
and drop it after; never log it, never put it in XCom, the lake, MLflow or an exception
message. Its `repr` shows only the pseudonymous exam id, the task and the result.

`message_id` is the delivery's control id: the same for every resend of the same result
(the RIS drops the copy), a new one when the result changes (a correction).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping

from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import PermanentError

SCORE_DECIMALS = 4  # scores are sent, and digested, at this precision
SCREENING_SERVICE = ("24606-6", "MG Breast Screening", "LN")  # LOINC: HL7 OBR-4, FHIR code
_SEXES = frozenset({"", "F", "M", "O", "U", "A", "N"})  # DICOM PatientSex and HL7 table 0001
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_MESSAGE_NAMESPACE = uuid.UUID("3f0e7c52-9c1b-5b8e-a7f4-2d6b1c0e9a41")  # radflow's, fixed forever


@dataclasses.dataclass(frozen=True, repr=False)
class ExamReport:
    """One exam's AI screening result with the identifiers its RIS order is filed under.

    PHI-bearing: memory only, never logged (`repr` hides every identifying field).

    Attributes:
        patient_id: the hospital's patient id (PID-3, FHIR subject identifier).
        patient_name: DICOM PN form, "Family^Given^Middle^Prefix^Suffix" (components may
            be empty); only the first (alphabetic) "="-group is used.
        birth_date: YYYYMMDD, or "" when unknown.
        sex: DICOM PatientSex or HL7 table 0001 (F, M, O, U, A, N), or "".
        accession_number: the RIS order's accession number (placer/filler order number).
        study_instance_uid: the original (not pseudonymised) Study Instance UID.
        study_date: YYYY-MM-DD.
        task: what was screened for (radflow's task name, e.g. "malignancy").
        model_name, model_version: the registered model that scored the exam.
        exam_score: exam-level probability, 0-1.
        suspicion: 1 (lowest) to 10 (highest).
        flagged: whether the exam goes to the radiologist's priority worklist.
        view_scores: view ("R-CC", ...) -> probability, 0-1.
        discounted: view -> the QC reason it was left out of the exam score.
        exam_id: radflow's pseudonym of the exam (its own key; not PHI).
    """

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    accession_number: str
    study_instance_uid: str
    study_date: str
    task: str
    model_name: str
    model_version: str
    exam_score: float
    suspicion: int
    flagged: bool
    view_scores: Mapping[str, float]
    discounted: Mapping[str, str]
    exam_id: str

    def __post_init__(self) -> None:
        _check_keys(self)
        _check_identifiers(self)
        _check_result(self)

    def __repr__(self) -> str:
        model = f"{self.model_name}@{self.model_version}"
        return (f"ExamReport(exam_id={self.exam_id!r}, task={self.task!r}, model={model!r}, "
                f"exam_score={self.exam_score!r}, suspicion={self.suspicion!r}, "
                f"flagged={self.flagged!r}, views={sorted(self.view_scores)!r}, "
                f"discounted={sorted(self.discounted)!r}, <identifying fields hidden>)")

    __str__ = __repr__


def _check_keys(report: ExamReport) -> None:
    """radflow's own keys: named in messages, since they identify nobody."""
    for name in ("exam_id", "task", "model_name", "model_version"):
        if not str(getattr(report, name)).strip():
            raise PermanentError(f"ExamReport {name} is empty (exam {report.exam_id or '?'})")


def _check_identifiers(report: ExamReport) -> None:
    """The PHI fields: a failure names the field and the exam id, never the value."""
    where = f"exam {report.exam_id}"
    if not report.patient_id.strip():
        raise PermanentError(f"{where}: patient id is empty; the RIS cannot file the result")
    if not report.accession_number.strip():
        raise PermanentError(f"{where}: accession number is empty; the RIS cannot file the result "
                             "against an order")
    if not _UID.match(report.study_instance_uid) or len(report.study_instance_uid) > 64:
        raise PermanentError(f"{where}: study instance UID is not a DICOM UID (digits and dots, "
                             "at most 64 characters)")
    if report.birth_date and not _is_date(report.birth_date, "%Y%m%d"):
        raise PermanentError(f"{where}: birth date is not YYYYMMDD")
    if report.sex not in _SEXES:
        raise PermanentError(f"{where}: sex is not one of {sorted(_SEXES - {''})} or empty")
    if not _is_date(report.study_date, "%Y-%m-%d"):
        raise PermanentError(f"{where}: study date is not YYYY-MM-DD")


def _check_result(report: ExamReport) -> None:
    where = f"exam {report.exam_id}"
    if not _is_probability(report.exam_score):
        raise PermanentError(f"{where}: exam score {report.exam_score!r} is not in [0, 1]")
    if isinstance(report.suspicion, bool) or not isinstance(report.suspicion, int) \
            or not 1 <= report.suspicion <= 10:
        raise PermanentError(f"{where}: suspicion {report.suspicion!r} is not an integer 1-10")
    bad = sorted(view for view, score in report.view_scores.items() if not _is_probability(score))
    if bad:
        raise PermanentError(f"{where}: view scores of {bad} are not in [0, 1]")


def _is_date(value: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(value, fmt)
    except ValueError:
        return False
    return len(value) == len(dt.date(2000, 1, 1).strftime(fmt))


def _is_probability(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) and 0.0 <= value <= 1.0


def score_text(score: float) -> str:
    """A score as sent to the RIS (and digested): fixed SCORE_DECIMALS places, "0.8312"."""
    return f"{score:.{SCORE_DECIMALS}f}"


def result_digest(report: ExamReport) -> str:
    """SHA-256 of the result as sent (scores at SCORE_DECIMALS), without any identifier."""
    result = {
        "model_name": report.model_name,
        "exam_score": score_text(report.exam_score),
        "suspicion": report.suspicion,
        "flagged": report.flagged,
        "view_scores": {view: score_text(s) for view, s in sorted(report.view_scores.items())},
        "discounted": dict(sorted(report.discounted.items())),
    }
    return hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()


def message_id(report: ExamReport) -> str:
    """The control id of this result's delivery: 20 upper-case hex characters.

    Deterministic per (exam_id, task, model_version, digest of the result): a resend of the
    same result carries the same id, so the RIS can drop the copy; a changed result gets a
    new one. 20 characters is MSH-10's length in HL7 v2.5.1.
    """
    key = "\x1f".join((report.exam_id, report.task, report.model_version, result_digest(report)))
    return hashlib.sha256(key.encode()).hexdigest()[:20].upper()


def message_urn(report: ExamReport) -> str:
    """`message_id` as a URI ("urn:uuid:..."), for a FHIR identifier of system urn:ietf:rfc:3986."""
    return f"urn:uuid:{uuid.uuid5(_MESSAGE_NAMESPACE, message_id(report))}"


def redact(text: str, identifying: Iterable[str]) -> str:
    """`text` (e.g. a RIS's error message) with every identifying value replaced by "***".

    Receivers echo what they could not file ("patient 12345 unknown"); their text goes
    into radflow's errors and logs only after this.
    """
    for value in sorted({v for v in identifying if len(v.strip()) >= 2}, key=len, reverse=True):
        text = re.sub(re.escape(value), "***", text, flags=re.IGNORECASE)
    return text


def identifying_values(report: ExamReport) -> list[str]:
    """Every identifying value of the report, for `redact`."""
    names = [part for part in re.split(r"[\^=]", report.patient_name) if part.strip()]
    return [report.patient_id, report.accession_number, report.study_instance_uid,
            report.birth_date, *names]


def ordered_views(views: Iterable[str]) -> list[str]:
    """Views in the screening order (R-CC, L-CC, R-MLO, L-MLO), any others after, by name."""
    rank = {view: i for i, view in enumerate(SCREENING_VIEWS)}
    return sorted(views, key=lambda v: (rank.get(v, len(rank)), v))


def conclusion(report: ExamReport) -> str:
    """The result in one sentence or two, for the RIS's text (OBX TX, FHIR conclusion)."""
    text = (f"radflow AI screening ({report.task}; model {report.model_name} {report.model_version}): "
            f"exam score {score_text(report.exam_score)}, suspicion {report.suspicion}/10, "
            + ("flagged for priority reading." if report.flagged else "not flagged."))
    if report.discounted:
        views = ordered_views(report.discounted)
        left_out = "; ".join(f"{view} ({report.discounted[view]})" for view in views)
        text += f" Views left out by quality control: {left_out}."
    return text
