"""One exam's result to the hospital RIS: an HL7 v2 ORU^R01 over MLLP, a FHIR R4
DiagnosticReport (pipelines/ris builds and sends both).

The identity the RIS files the result under (patient id and name, birth date, accession
number, study UID) is read from the gateway study at send time and lives only in memory:
the delivery row keeps the message id. A result already sent as is is not sent again; a
changed one is sent as a correction (ORU result status C, DiagnosticReport `corrected`).
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.gateway.sending import Context, Outcome
from pipelines.ris.report import ExamReport, message_id


def report_for(ctx: Context) -> ExamReport:
    """The exam's result with the identity the RIS needs (from the gateway study)."""
    study = ctx.client.study(ctx.study_id)
    tags, patient = study.get("MainDicomTags", {}), study.get("PatientMainDicomTags", {})
    exam = ctx.exam
    return ExamReport(
        patient_id=str(patient.get("PatientID", "")), patient_name=str(patient.get("PatientName", "")),
        birth_date=str(patient.get("PatientBirthDate", "")), sex=str(patient.get("PatientSex", "")),
        accession_number=str(tags.get("AccessionNumber", "")),
        study_instance_uid=str(tags.get("StudyInstanceUID", "")), study_date=exam.study_date,
        task=ctx.task, model_name=exam.model_name, model_version=exam.model_version,
        exam_score=exam.score, suspicion=exam.suspicion, flagged=exam.flagged,
        view_scores=dict(exam.view_scores), discounted=dict(exam.discounted), exam_id=exam.exam_id)


def _superseded(ctx: Context) -> list[str]:
    earlier = ((ctx.previous or {}).get("content") or {}).get("message_id")
    return [str(earlier)] if earlier and ctx.sent_before() else []


def _once(ctx: Context, send: Callable[[ExamReport, bool], None]) -> Outcome:
    """Send the exam's report unless the RIS acknowledged this very result already; a
    changed result goes as a correction of the one sent before."""
    report = report_for(ctx)
    mid = message_id(report)
    if ctx.already_sent("message_id", mid):
        return Outcome({"message_id": mid}, [], sent=False)
    send(report, ctx.sent_before())
    return Outcome({"message_id": mid}, _superseded(ctx), sent=True)


def to_hl7(ctx: Context) -> Outcome:
    """The ORU^R01 over MLLP."""
    from pipelines.ris.hl7v2 import build_oru, send_mllp

    s = ctx.settings

    def send(report: ExamReport, corrects: bool) -> None:
        send_mllp(str(s.ris_mllp_host), s.ris_mllp_port, build_oru(report, s, corrects=corrects),
                  s.ris_mllp_timeout_s)

    return _once(ctx, send)


def to_fhir(ctx: Context) -> Outcome:
    """The DiagnosticReport, PUT by its identifier (a resend updates, never adds)."""
    from pipelines.ris.fhir import build_diagnostic_report, send_fhir

    s = ctx.settings

    def send(report: ExamReport, corrects: bool) -> None:
        resource = build_diagnostic_report(report, corrects=corrects,
                                           patient_id_system=s.ris_patient_id_system,
                                           accession_system=s.ris_accession_system)
        send_fhir(str(s.ris_fhir_url), resource, s.ris_fhir_token, s.ris_mllp_timeout_s)

    return _once(ctx, send)
