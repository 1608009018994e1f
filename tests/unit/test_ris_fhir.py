"""The DiagnosticReport a FHIR RIS receives: valid R4(B) by fhir.resources, referencing the
patient, order and study by identifier, with its results as contained Observations; and
its conditional-update PUT to a real local HTTP server."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydantic import SecretStr, ValidationError

from pipelines.errors import PermanentError, TransientError
from pipelines.ris.fhir import (
    RESULT_IDENTIFIER_SYSTEM,
    build_diagnostic_report,
    send_fhir,
    validate_diagnostic_report,
)
from pipelines.ris.report import ExamReport, message_urn

ISSUED = dt.datetime(2026, 3, 2, 6, 30, tzinfo=dt.UTC)
PHI = ("P-483920", "ACC-2026-0077", "1.2.826.0.1.3680043.8.498.1")
BUSINESS_ID = "ex-0a1b2c3d4e5f6a7b/malignancy"


def _report(**changes: Any) -> ExamReport:
    fields: dict[str, Any] = dict(
        patient_id="P-483920", patient_name="O'Brien^Anne", birth_date="19650304", sex="F",
        accession_number="ACC-2026-0077", study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        study_date="2026-03-01", task="malignancy", model_name="mammo-screening", model_version="7",
        exam_score=0.83121, suspicion=8, flagged=True,
        view_scores={"L-MLO": 0.91, "R-CC": 0.1, "L-CC": 0.8},
        discounted={"R-MLO": "motion blur"}, exam_id="ex-0a1b2c3d4e5f6a7b")
    fields.update(changes)
    return ExamReport(**fields)


def _resource(corrects: bool = False, **changes: Any) -> dict[str, Any]:
    return build_diagnostic_report(_report(**changes), corrects, issued=ISSUED,
                                   patient_id_system="urn:oid:1.2.3.4.5.6")


def _contained(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in resource["contained"]}


def test_the_report_round_trips_through_fhir_resources() -> None:
    resource = _resource()
    assert DiagnosticReport.model_validate(resource).model_dump(mode="json", exclude_none=True) == resource
    assert json.loads(DiagnosticReport.model_validate(resource).model_dump_json()) == resource


def test_the_report_references_patient_order_and_study_by_identifier() -> None:
    resource = _resource()
    assert resource["resourceType"] == "DiagnosticReport" and resource["status"] == "final"
    assert resource["category"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}
    assert resource["code"]["coding"][0]["system"] == "http://loinc.org"
    assert resource["code"]["coding"][0]["code"] == "24606-6"
    subject = resource["subject"]
    assert subject["type"] == "Patient" and "reference" not in subject
    assert subject["identifier"]["value"] == "P-483920"
    assert subject["identifier"]["system"] == "urn:oid:1.2.3.4.5.6"
    assert subject["identifier"]["type"]["coding"][0]["code"] == "MR"
    order = resource["basedOn"][0]
    assert order["type"] == "ServiceRequest" and order["identifier"]["value"] == "ACC-2026-0077"
    assert order["identifier"]["type"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}
    assert resource["imagingStudy"][0] == {"type": "ImagingStudy", "identifier": {
        "system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.3680043.8.498.1"}}
    assert resource["identifier"] == [
        {"system": "urn:ietf:rfc:3986", "value": message_urn(_report())},
        {"system": RESULT_IDENTIFIER_SYSTEM, "value": BUSINESS_ID}]
    assert resource["effectiveDateTime"] == "2026-03-01"
    assert resource["issued"].startswith("2026-03-02T06:30:00")
    assert "suspicion 8/10" in resource["conclusion"] and "R-MLO (motion blur)" in resource["conclusion"]
    assert resource["conclusionCode"][0]["coding"][0]["code"] == "flagged"


def test_the_results_are_contained_observations_made_by_the_model_device() -> None:
    resource = _resource()
    contained = _contained(resource)
    results = [ref["reference"] for ref in resource["result"]]
    assert results == ["#exam-score", "#suspicion", "#flagged", "#view-1", "#view-2", "#view-3", "#view-4"]
    assert all(contained[ref[1:]]["resourceType"] == "Observation" for ref in results)
    assert contained["exam-score"]["valueQuantity"]["value"] == 0.8312
    assert contained["suspicion"]["valueInteger"] == 8
    assert contained["flagged"]["valueBoolean"] is True
    views = {contained[f"view-{i}"]["bodySite"]["text"]: contained[f"view-{i}"] for i in range(1, 5)}
    assert {v: o["valueQuantity"]["value"] for v, o in views.items() if "valueQuantity" in o} == {
        "R-CC": 0.1, "L-CC": 0.8, "L-MLO": 0.91}
    assert views["R-MLO"]["dataAbsentReason"]["text"] == "motion blur"
    assert views["L-CC"]["bodySite"]["coding"][0]["code"] == "80248007"  # left breast
    device = contained["model"]
    assert device["resourceType"] == "Device" and device["version"] == [{"value": "7"}]
    assert device["deviceName"] == [{"name": "mammo-screening", "type": "model-name"}]
    for ref in results:
        assert contained[ref[1:]]["device"] == {"reference": "#model"}
        assert contained[ref[1:]]["subject"] == resource["subject"]
        assert contained[ref[1:]]["status"] == "final"


def test_a_correction_keeps_the_business_identifier_and_changes_the_message_id() -> None:
    first, corrected = _resource(), _resource(corrects=True, exam_score=0.2, flagged=False)
    assert corrected["status"] == "corrected"
    assert {item["status"] for item in corrected["contained"] if item["resourceType"] == "Observation"} \
        == {"corrected"}
    assert corrected["identifier"][1] == first["identifier"][1]
    assert corrected["identifier"][0] != first["identifier"][0]
    assert _resource()["identifier"] == first["identifier"]


def test_fhir_resources_rejects_a_malformed_report() -> None:
    resource = _resource()
    with pytest.raises(ValidationError, match="issued"):
        DiagnosticReport.model_validate({**resource, "issued": "yesterday"})
    with pytest.raises(ValidationError, match="status"):
        DiagnosticReport.model_validate({k: v for k, v in resource.items() if k != "status"})
    with pytest.raises(ValidationError, match="bogusElement"):
        DiagnosticReport.model_validate({**resource, "bogusElement": 1})


def test_a_bogus_status_is_refused_although_fhir_resources_leaves_codes_unchecked() -> None:
    resource = _resource()
    with pytest.raises(PermanentError, match="status 'bogus' is not one of"):
        validate_diagnostic_report({**resource, "status": "bogus"}, "ex-0a1b2c3d4e5f6a7b")
    observation = {**resource["contained"][0], "status": "bogus"}
    with pytest.raises(PermanentError, match="contained.0.status 'bogus'"):
        validate_diagnostic_report({**resource, "contained": [observation, *resource["contained"][1:]]},
                                   "ex-0a1b2c3d4e5f6a7b")


def test_an_invalid_report_names_the_element_but_not_its_value() -> None:
    bad = {**_resource(), "effectiveDateTime": "P-483920"}
    with pytest.raises(PermanentError, match="effectiveDateTime") as caught:
        validate_diagnostic_report(bad, "ex-0a1b2c3d4e5f6a7b")
    assert "P-483920" not in str(caught.value) and "ex-0a1b2c3d4e5f6a7b" in str(caught.value)


class _FhirServer:
    """A FHIR server stand-in: records each request, answers the next configured response."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status, self.body, self.delay_s = 201, b"", 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                server.requests.append({"method": "PUT", "path": self.path, "headers": dict(self.headers),
                                        "body": json.loads(self.rfile.read(length))})
                time.sleep(server.delay_s)
                self.send_response(server.status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Location", "DiagnosticReport/42/_history/1")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"


@pytest.fixture
def fhir_server() -> Iterator[_FhirServer]:
    server = _FhirServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    thread.join(timeout=10)


def _outcome(text: str) -> bytes:
    return json.dumps({"resourceType": "OperationOutcome",
                       "issue": [{"severity": "error", "code": "processing", "diagnostics": text}]}).encode()


def test_send_fhir_puts_by_identifier_with_the_bearer_token(fhir_server: _FhirServer) -> None:
    resource = _resource()
    answer = send_fhir(fhir_server.url + "/", resource, SecretStr("s3cret-token"), timeout_s=10)
    assert (answer.status, answer.location) == (201, "DiagnosticReport/42/_history/1")
    request = fhir_server.requests[0]
    path, _, query = request["path"].partition("?")
    assert request["method"] == "PUT" and path == "/fhir/DiagnosticReport"
    assert urllib.parse.parse_qs(query) == {"identifier": [f"{RESULT_IDENTIFIER_SYSTEM}|{BUSINESS_ID}"]}
    assert request["headers"]["Authorization"] == "Bearer s3cret-token"
    assert request["headers"]["Content-Type"] == "application/fhir+json"
    assert request["body"] == resource


def test_a_rerun_updates_the_same_report_and_needs_no_token(fhir_server: _FhirServer) -> None:
    fhir_server.status = 200
    for _ in range(2):
        assert send_fhir(fhir_server.url, _resource(), None, timeout_s=10).status == 200
    first, second = fhir_server.requests
    assert first["path"] == second["path"] and "Authorization" not in second["headers"]


def test_a_4xx_is_permanent_with_the_outcome_diagnostics_redacted(fhir_server: _FhirServer) -> None:
    fhir_server.status, fhir_server.body = 422, _outcome("no ServiceRequest with accession ACC-2026-0077")
    expected = "HTTP 422: no ServiceRequest with accession \\*\\*\\*"
    with pytest.raises(PermanentError, match=expected) as caught:
        send_fhir(fhir_server.url, _resource(), "t", timeout_s=10)
    assert BUSINESS_ID in str(caught.value)
    assert not [value for value in (*PHI, "s3cret") if value in str(caught.value)]


def test_a_5xx_is_transient(fhir_server: _FhirServer) -> None:
    fhir_server.status, fhir_server.body = 503, _outcome("database busy")
    with pytest.raises(TransientError, match="HTTP 503.*database busy"):
        send_fhir(fhir_server.url, _resource(), "t", timeout_s=10)


def test_no_answer_in_time_is_transient(fhir_server: _FhirServer) -> None:
    fhir_server.delay_s = 2.0
    with pytest.raises(TransientError, match="did not answer within 0.3 s"):
        send_fhir(fhir_server.url, _resource(), "t", timeout_s=0.3)


def test_nothing_listening_is_transient_and_a_non_http_url_permanent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientError, match=f"127.0.0.1:{port} unreachable"):
        send_fhir(f"http://127.0.0.1:{port}/fhir", _resource(), None, timeout_s=5)
    with pytest.raises(PermanentError, match="must be http"):
        send_fhir("ftp://ris.example/fhir", _resource(), None, timeout_s=5)
