"""An exam's result as a FHIR R4 DiagnosticReport, PUT to the RIS's FHIR server by identifier.

The shape follows IHE AI Results (AIR) as far as R4 allows: the report is based on the
order (ServiceRequest by accession number), points at the study (ImagingStudy by Study
Instance UID) and the patient by identifier (logical references: radflow knows no server
ids), and its results are contained Observations produced by a contained Device (the
model). Validated with fhir.resources' R4B models (fhir.resources 8 has no R4 package; the
elements used here are the same in R4 and R4B).

The resource carries PHI (patient id, accession number, study UID): never logged; logs and
errors name its business identifier "<exam_id>/<task>" only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from pipelines.errors import MisusedApi, PermanentError, TransientError
from pipelines.ris.fhir_observations import RADFLOW_CODES, observations
from pipelines.ris.report import SCREENING_SERVICE, ExamReport, conclusion, message_urn, redact

if TYPE_CHECKING:
    from pydantic import SecretStr

log = logging.getLogger(__name__)

RESULT_IDENTIFIER_SYSTEM = "urn:radflow:screening-result"  # value "<exam_id>/<task>": one report each
MESSAGE_IDENTIFIER_SYSTEM = "urn:ietf:rfc:3986"  # value message_urn(report): this version of the result
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
REPORT_STATUSES = frozenset({"registered", "partial", "preliminary", "final", "amended", "corrected",
                             "appended", "cancelled", "entered-in-error", "unknown"})
OBSERVATION_STATUSES = REPORT_STATUSES - {"partial", "appended"}


@dataclasses.dataclass(frozen=True)
class FhirResponse:
    """The FHIR server's answer to a stored report: HTTP status and Location (server id)."""

    status: int
    location: str | None


def result_identifier(report: ExamReport) -> str:
    """The report's business identifier value, "<exam_id>/<task>" (system RESULT_IDENTIFIER_SYSTEM)."""
    return f"{report.exam_id}/{report.task}"


def _identifier(type_code: str, value: str, system: str | None) -> dict[str, Any]:
    identifier: dict[str, Any] = {"type": {"coding": [{"system": V2_0203, "code": type_code}]},
                                  "value": value}
    if system:
        identifier["system"] = system
    return identifier


def _references(report: ExamReport, patient_id_system: str | None,
                accession_system: str | None) -> dict[str, Any]:
    """subject, basedOn and imagingStudy as logical references (by identifier)."""
    return {
        "subject": {"type": "Patient",
                    "identifier": _identifier("MR", report.patient_id, patient_id_system)},
        "basedOn": [{"type": "ServiceRequest",
                     "identifier": _identifier("ACSN", report.accession_number, accession_system)}],
        "imagingStudy": [{"type": "ImagingStudy",
                          "identifier": {"system": "urn:dicom:uid",
                                         "value": f"urn:oid:{report.study_instance_uid}"}}],
    }


def build_diagnostic_report(report: ExamReport, corrects: bool = False, *,
                            issued: dt.datetime | None = None, patient_id_system: str | None = None,
                            accession_system: str | None = None) -> dict[str, Any]:
    """The exam's result as a validated FHIR R4 DiagnosticReport (JSON dict).

    Args:
        report: the exam's result and identifiers (PHI: the resource must not be logged).
        corrects: True when it replaces a result the RIS already has (status "corrected").
        issued: when the result was released; now (UTC) by default.
        patient_id_system, accession_system: the hospital's identifier systems (URIs) for
            patient ids and accession numbers, when it has them; else the identifiers
            carry their v2-0203 type (MR, ACSN) only.

    Returns:
        The resource as JSON-ready dict, as fhir.resources serialises it.

    Raises:
        PermanentError: the resource does not validate (names the failing elements).
    """
    status = "corrected" if corrects else "final"
    issued_at = (issued or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    code, display, _ = SCREENING_SERVICE
    references = _references(report, patient_id_system, accession_system)
    contained, results = observations(report, status, references["subject"], issued_at)
    flag = "flagged" if report.flagged else "not-flagged"
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "contained": contained,
        "identifier": [{"system": MESSAGE_IDENTIFIER_SYSTEM, "value": message_urn(report)},
                       {"system": RESULT_IDENTIFIER_SYSTEM, "value": result_identifier(report)}],
        "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": "RAD", "display": "Radiology"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}],
                 "text": f"radflow AI screening: {report.task}"},
        **references,
        "effectiveDateTime": report.study_date,
        "issued": issued_at,
        "result": results,
        "conclusion": conclusion(report),
        "conclusionCode": [{"coding": [{"system": RADFLOW_CODES, "code": flag,
                                        "display": flag.replace("-", " ")}]}],
    }
    return validate_diagnostic_report(resource, report.exam_id)


def validate_diagnostic_report(resource: dict[str, Any], exam_id: str) -> dict[str, Any]:
    """The resource validated by fhir.resources (R4B) plus the status codes it leaves unchecked.

    fhir.resources checks structure, cardinality and primitive formats but not required
    code bindings: a status "bogus" passes it, so the statuses are checked here.

    Returns:
        The resource as fhir.resources serialises it (JSON types, no empty elements).

    Raises:
        PermanentError: an element is missing, unknown or malformed, or a status is not an
            R4 status code; the message names the elements (never their values: PHI).
    """
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport
    from pydantic import ValidationError

    try:
        model = DiagnosticReport.model_validate(resource)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                             for error in exc.errors()[:5])
        raise PermanentError(f"DiagnosticReport of exam {exam_id} is not valid FHIR: {problems}") from exc
    validated: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    statuses = [("status", validated.get("status"), REPORT_STATUSES)]
    statuses += [(f"contained.{i}.status", item.get("status"), OBSERVATION_STATUSES)
                 for i, item in enumerate(validated.get("contained", []))
                 if item.get("resourceType") == "Observation"]
    for where, status, allowed in statuses:
        if status not in allowed:
            raise PermanentError(f"DiagnosticReport of exam {exam_id}: {where} {status!r} is not one "
                                 f"of {sorted(allowed)}")
    return validated


def _where(url: str) -> str:
    """A URL's scheme, host and port, for messages: its path or query may hold a token."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _search_value(resource: dict[str, Any]) -> tuple[str, str]:
    """(conditional-update query value "system|value" with FHIR search escaping, plain value)."""
    values = [i.get("value", "") for i in resource.get("identifier", [])
              if i.get("system") == RESULT_IDENTIFIER_SYSTEM]
    if not values or not values[0]:
        raise MisusedApi(f"send_fhir needs a DiagnosticReport with a {RESULT_IDENTIFIER_SYSTEM} "
                         "identifier (build_diagnostic_report)")
    escaped = "".join("\\" + ch if ch in "\\|,$" else ch for ch in values[0])
    return f"{RESULT_IDENTIFIER_SYSTEM}|{escaped}", values[0]


def _identifying(resource: dict[str, Any]) -> list[str]:
    """The resource's identifying values (patient, accession, study UID), for `redact`."""
    references = [resource.get("subject", {}), *resource.get("basedOn", []),
                  *resource.get("imagingStudy", [])]
    values = [str(ref.get("identifier", {}).get("value", "")) for ref in references]
    return values + [v.removeprefix("urn:oid:") for v in values]


def _outcome_text(response: Any, resource: dict[str, Any]) -> str:
    """The OperationOutcome's diagnostics (or details), redacted; else the body's start."""
    try:
        body = response.json()
    except ValueError:
        body = None
    texts: list[str] = []
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        for issue in body.get("issue", []):
            text = issue.get("diagnostics") or issue.get("details", {}).get("text") or issue.get("code")
            texts += [str(text)] if text else []
    text = "; ".join(texts) if texts else response.text[:200]
    return redact(text, _identifying(resource))[:500] or "no diagnostics"


def send_fhir(base_url: str, resource: dict[str, Any], token: SecretStr | str | None,
              timeout_s: float) -> FhirResponse:
    """Store the DiagnosticReport by conditional update on its radflow business identifier.

    `PUT {base}/DiagnosticReport?identifier=urn:radflow:screening-result|<exam_id>/<task>`:
    the server creates the report (201) or updates the one it has (200), so a rerun or a
    correction never files a second report.

    Args:
        base_url: the FHIR server's base URL (RADFLOW_RIS_FHIR_URL).
        resource: a DiagnosticReport from `build_diagnostic_report` (PHI, never logged).
        token: bearer token (RADFLOW_RIS_FHIR_TOKEN), or None.
        timeout_s: connect and read timeout.

    Raises:
        TransientError: no connection, no answer within timeout_s, or HTTP 5xx/408/429.
        PermanentError: HTTP 4xx (or a redirect): the message names the status and the
            OperationOutcome's diagnostics, identifying values replaced by ***; or the URL
            is not http(s).
        MisusedApi: the resource has no radflow business identifier.
    """
    import httpx

    where = _where(base_url)
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        raise PermanentError(f"RIS FHIR URL must be http(s), got {where!r}; check RADFLOW_RIS_FHIR_URL")
    query, business_id = _search_value(resource)
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
               "User-Agent": "radflow-ris"}
    secret = token.get_secret_value() if token is not None and not isinstance(token, str) else token
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    try:
        response = httpx.put(f"{base_url.rstrip('/')}/DiagnosticReport", params={"identifier": query},
                             json=resource, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise TransientError(f"RIS FHIR {where} did not answer within {timeout_s} s for report "
                             f"{business_id}") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"RIS FHIR {where} unreachable for report {business_id}: "
                             f"{type(exc).__name__}") from exc
    status = response.status_code
    if status >= 500 or status in (408, 429):
        raise TransientError(f"RIS FHIR {where} answered HTTP {status} to report {business_id}: "
                             f"{_outcome_text(response, resource)}")
    if not 200 <= status < 300:
        raise PermanentError(f"RIS FHIR {where} refused report {business_id}: HTTP {status}: "
                             f"{_outcome_text(response, resource)}")
    log.info("ris: FHIR DiagnosticReport %s stored by %s, HTTP %d", business_id, where, status)
    return FhirResponse(status=status, location=response.headers.get("Location"))
