"""The contained resources of an exam's DiagnosticReport: one Observation per result value
(exam score, suspicion, flag, each view's score) and the Device (the model) that made them.

Contained resources have local ids ("#exam-score"): the RIS stores them with the report,
so a correction replaces them all at once.
"""

from __future__ import annotations

from typing import Any

from pipelines.ris.report import ExamReport, ordered_views

RADFLOW_CODES = "urn:radflow:codes"  # radflow's local codes (observations, conclusion)
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
BREAST = {"R": ("73056007", "Right breast structure"), "L": ("80248007", "Left breast structure")}
DEVICE_ID = "model"


def _device(report: ExamReport) -> dict[str, Any]:
    """The model as a Device (IHE AIR: the algorithm that produced the observations)."""
    return {"resourceType": "Device", "id": DEVICE_ID,
            "deviceName": [{"name": report.model_name, "type": "model-name"}],
            "version": [{"value": report.model_version}]}


def _observation(report: ExamReport, local_id: str, code: str, text: str,
                 common: dict[str, Any]) -> dict[str, Any]:
    """An Observation's own elements plus `common` (status, subject, issued...); the caller adds its value."""
    return {
        "resourceType": "Observation", "id": local_id, **common,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "imaging"}]}],
        "code": {"coding": [{"system": RADFLOW_CODES, "code": code, "display": text}], "text": text},
        "effectiveDateTime": report.study_date,
        "device": {"reference": f"#{DEVICE_ID}"},
    }


def _probability(score: float) -> dict[str, Any]:
    return {"value": round(score, 4), "unit": "probability", "system": UCUM, "code": "1"}


def _view_observation(report: ExamReport, index: int, view: str, common: dict[str, Any]) -> dict[str, Any]:
    """One view's score; a view left out by QC says why (and has no value if it was not scored)."""
    observation = _observation(report, f"view-{index}", "view-score", f"AI view score {view}", common)
    side = BREAST.get(view.split("-")[0])
    observation["bodySite"] = {"text": view, **({"coding": [{"system": SNOMED, "code": side[0],
                                                              "display": side[1]}]} if side else {})}
    if view in report.view_scores:
        observation["valueQuantity"] = _probability(report.view_scores[view])
    else:
        observation["dataAbsentReason"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "code": "error"}], "text": report.discounted[view]}
    if view in report.discounted:
        observation["note"] = [{"text": f"left out of the exam score by quality control: "
                                        f"{report.discounted[view]}"}]
    return observation


def observations(report: ExamReport, status: str, subject: dict[str, Any],
                 issued: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(contained resources, the report's `result` references to its Observations).

    Args:
        report: the exam's result.
        status: "final" or "corrected", as the report's.
        subject: the report's subject reference (the patient by identifier).
        issued: the report's issued instant (ISO 8601).
    """
    common = {"status": status, "subject": subject, "issued": issued}
    exam = _observation(report, "exam-score", "exam-score", "AI exam score (probability)", common)
    exam["valueQuantity"] = _probability(report.exam_score)
    suspicion = _observation(report, "suspicion", "suspicion", "AI suspicion level (1-10)", common)
    suspicion["valueInteger"] = report.suspicion
    flagged = _observation(report, "flagged", "flagged", "Flagged for priority reading", common)
    flagged["valueBoolean"] = report.flagged
    views = ordered_views(set(report.view_scores) | set(report.discounted))
    items = [exam, suspicion, flagged,
             *(_view_observation(report, i, view, common) for i, view in enumerate(views, 1))]
    return [*items, _device(report)], [{"reference": f"#{item['id']}"} for item in items]
