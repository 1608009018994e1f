"""Synthetic exams as DICOM datasets, one exam at a time (4 MG views + 1 SR report)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import PermanentError
from pipelines.synth.dicom import MG_FOR_PRESENTATION, mg_dataset, patient_study, study_uid
from pipelines.synth.exams import ExamPlan, plan_exam
from pipelines.synth.images import render_view
from pipelines.synth.report import report_text
from pipelines.synth.sites import (
    Geometry,
    VendorProfile,
    degraded,
    geometry_for,
    profile_by_key,
    profile_for_site,
)
from pipelines.synth.sr import sr_dataset

if TYPE_CHECKING:
    from pydicom import Dataset

REPORT = "report"
_SITE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclasses.dataclass(frozen=True)
class SynthInstance:
    """One DICOM instance of an exam; `name` is the view ("R-CC", ...) or "report"."""

    name: str
    dataset: Dataset


@dataclasses.dataclass(frozen=True)
class SynthExam:
    """One exam: its plan (the truth) and its five instances, views first."""

    plan: ExamPlan
    profile: VendorProfile
    study_instance_uid: str
    report: str
    instances: tuple[SynthInstance, ...]


def normalize_date(study_date: str) -> str:
    """The ISO form of a study date: "2025-03-01" or "20250301" -> "2025-03-01".

    Raises:
        PermanentError: the value is not a calendar date in one of those forms.
    """
    text = study_date.strip()
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise PermanentError(f"study date {study_date!r} is not a date as YYYY-MM-DD or YYYYMMDD")


def check_site(site: str) -> str:
    """The site name, if it is safe in file names and DICOM values.

    Raises:
        PermanentError: empty, too long, or characters other than letters, digits, _ and -.
    """
    if not _SITE_PATTERN.fullmatch(site):
        raise PermanentError(
            f"site {site!r} must be 1-32 letters, digits, '_' or '-', starting alphanumeric"
        )
    return site


def build_exam(plan: ExamPlan, profile: VendorProfile, geometry: Geometry) -> SynthExam:
    """Render the four views and the report of a planned exam."""
    instances: list[SynthInstance] = []
    references: list[tuple[str, str, str]] = []
    shared = patient_study(plan, profile)
    for view in SCREENING_VIEWS:
        side, position = view.split("-")
        image = render_view(plan, profile, geometry, side, position)
        dataset = mg_dataset(plan, profile, geometry, view, image, shared)
        instances.append(SynthInstance(view, dataset))
        references.append(
            (MG_FOR_PRESENTATION, str(dataset.SeriesInstanceUID), str(dataset.SOPInstanceUID))
        )
    text = report_text(plan, geometry)
    instances.append(SynthInstance(REPORT, sr_dataset(plan, shared, text, references)))
    return SynthExam(plan, profile, study_uid(plan), text, tuple(instances))


def iter_exams(
    exams: int,
    study_date: str,
    site: str,
    seed: int,
    *,
    positive_rate: float = 0.3,
    scale: float = 0.125,
    patients: int | None = None,
    start: int = 0,
    burned_in_text_rate: float = 0.0,
    artifact_rate: float = 0.0,
    vendor: str | None = None,
    detector_degradation: float = 0.0,
) -> Iterator[SynthExam]:
    """Exams `start .. exams-1` of the batch (seed, site, study_date), generated lazily.

    Args:
        exams: number of exams in the batch.
        study_date: "YYYY-MM-DD" or "YYYYMMDD".
        site: site name; picks the vendor profile.
        seed: the batch seed.
        positive_rate: probability that an exam holds a suspicious mass.
        scale: fraction of the detector matrix (0.125 gives 512x416 for Hologic).
        patients: size of the patient pool (default: one patient per exam); exam i
            belongs to patient i % patients.
        start: first exam index to generate (exam i is the same whatever `start` is).
        burned_in_text_rate: probability that one view of an exam has the patient's name,
            MRN and birth date burned into its pixels (BurnedInAnnotation still says NO).
        artifact_rate: probability that one view of an exam has an image artifact
            (`ExamPlan.artifacts` names the view and the QC code).
        vendor: image with this vendor's unit ("hologic", "ge", "siemens", "fujifilm")
            instead of the site's own: the patients and findings stay the site's, the
            pixels and DICOM headers become the other unit's (a replaced unit).
        detector_degradation: 0 (healthy) to 1: the same unit and headers with an ageing
            detector: noise x (1 + 2 D), contrast x (1 - 0.25 D) and a smooth gain
            non-uniformity of about 0.12 D, fixed per site.

    Returns:
        An iterator of SynthExam, one at a time; nothing is kept between exams.

    Raises:
        PermanentError: an argument is out of range (raised here, before any exam).
    """
    iso_date, site = normalize_date(study_date), check_site(site)
    pool = max(exams, 1) if patients is None else patients
    rates = {"positive_rate": positive_rate, "burned_in_text_rate": burned_in_text_rate,
             "artifact_rate": artifact_rate}
    if exams < 0 or pool < 1 or not all(0.0 <= rate <= 1.0 for rate in rates.values()):
        got = ", ".join(f"{name}={rate}" for name, rate in rates.items())
        raise PermanentError(
            f"need exams >= 0, patients >= 1 and every rate in [0, 1]; got exams={exams}, "
            f"patients={patients}, {got}"
        )
    if not 0.0 < scale <= 1.0:
        raise PermanentError(f"scale must be in (0, 1], got {scale}")
    unit = profile_for_site(site) if vendor is None else profile_by_key(vendor)
    profile = degraded(unit, detector_degradation)
    geometry = geometry_for(profile, scale)
    plans = (
        plan_exam(seed, site, iso_date, index, pool, positive_rate, burned_in_text_rate,
                  artifact_rate)
        for index in range(start, exams)
    )
    return (build_exam(plan, profile, geometry) for plan in plans)
