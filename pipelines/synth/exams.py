"""What each synthetic exam contains: patient, findings, BI-RADS per side, identifiers.

Every decision is drawn from a generator seeded by (seed, site, study date, exam index),
so an exam's plan does not depend on how many other exams are generated with it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from pipelines.synth.artifacts import plan_artifacts
from pipelines.synth.patients import Patient, patient_for
from pipelines.synth.seeding import rng_for
from pipelines.synth.sites import mass_radius_for_site

SIDES: tuple[str, str] = ("R", "L")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One lesion in one breast, placed in breast coordinates shared by both views.

    Attributes:
        side: "R" or "L".
        kind: "mass" (suspicious) or "benign" (small circumscribed round blob).
        depth: 0 at the chest wall to 1 at the nipple.
        sup_inf: -1 superior to +1 inferior (the vertical position in the MLO view).
        lat_med: -1 lateral to +1 medial (the vertical position in the CC view).
        radius: radius as a fraction of the image width.
        contrast: attenuation added at the centre (tissue is about 0.3-0.75).
        spiculated: whether the margin has spicules.
        calcifications: whether a cluster of tiny very bright dots goes with it.
    """

    side: str
    kind: str
    depth: float
    sup_inf: float
    lat_med: float
    radius: float
    contrast: float
    spiculated: bool = False
    calcifications: bool = False

    @property
    def quadrant(self) -> str:
        """The quadrant name used in the report ("upper outer", ...)."""
        if abs(self.sup_inf) < 0.15 and abs(self.lat_med) < 0.15:
            return "retroareolar region"
        vertical = "upper" if self.sup_inf < 0 else "lower"
        horizontal = "outer" if self.lat_med < 0 else "inner"
        return f"{vertical} {horizontal} quadrant"

    @property
    def clock(self) -> int:
        """The clock-face position as seen facing the patient (1-12)."""
        horizontal = self.lat_med if self.side == "R" else -self.lat_med
        angle = math.degrees(math.atan2(horizontal, -self.sup_inf)) % 360
        hour = int(round(angle / 30)) % 12
        return 12 if hour == 0 else hour


@dataclasses.dataclass(frozen=True)
class ExamPlan:
    """Everything random about one exam, decided before any pixel is drawn.

    Attributes:
        seed: the run's seed.
        site: the site name.
        study_date: ISO date "YYYY-MM-DD".
        index: exam index within the (seed, site, date) batch.
        patient: the woman examined.
        positive: whether the exam holds a suspicious mass (the truth label).
        findings: lesions to draw, each visible in both views of its side.
        birads: BI-RADS category per side, keys "R" and "L".
        density_level: fibroglandular amount 0-1 for this exam.
        accession: AccessionNumber.
        study_id: StudyID.
        study_time: StudyTime "HHMMSS".
    """

    seed: int
    site: str
    study_date: str
    index: int
    patient: Patient
    positive: bool
    findings: tuple[Finding, ...]
    birads: dict[str, int]
    density_level: float
    accession: str
    study_id: str
    study_time: str
    burned_in_text: tuple[str, ...] = ()  # views with the patient's name and id burned in
    artifacts: tuple[tuple[str, str], ...] = ()  # (view, QC code) of each planted artifact

    def artifact(self, view: str) -> str:
        """The QC code of the artifact planted in `view` ("R-MLO", ...), or ""."""
        return next((code for v, code in self.artifacts if v == view), "")

    @property
    def key(self) -> tuple[object, ...]:
        """The parts that identify this exam's random streams and UIDs."""
        return (self.seed, self.site, self.study_date, self.index)

    @property
    def lesion_side(self) -> str:
        """Side of the suspicious mass, or "" for a negative exam."""
        return next((f.side for f in self.findings if f.kind == "mass"), "")


_DENSITY_LEVEL = {"a": 0.15, "b": 0.35, "c": 0.6, "d": 0.85}


def plan_exam(
    seed: int, site: str, study_date: str, index: int, patients: int, positive_rate: float,
    burned_in_text_rate: float = 0.0,
    artifact_rate: float = 0.0,
) -> ExamPlan:
    """Decide exam `index` of the batch (seed, site, study_date).

    Args:
        seed: the run's seed.
        site: the site name.
        study_date: ISO date "YYYY-MM-DD".
        index: exam index; the patient is `index % patients` of the site's pool.
        patients: size of the patient pool.
        positive_rate: probability that the exam holds a suspicious mass.
        burned_in_text_rate: probability that one view has the patient's name, id and birth
            date burned into its pixels (drawn from its own stream: other choices do not move).

    Returns:
        The exam's plan.
    """
    rng = rng_for("exam", seed, site, study_date, index)
    patient = patient_for(seed, site, index % patients)
    positive = bool(rng.random() < positive_rate)
    findings: list[Finding] = []
    if positive:
        findings.append(_mass(str(rng.choice(SIDES)), rng, mass_radius_for_site(site)))
    if rng.random() < 0.25:
        findings.append(_benign(str(rng.choice(SIDES)), rng))
    seconds = 7 * 3600 + 1800 + (index * 173 + int(rng.integers(120))) % (11 * 3600)
    level = _DENSITY_LEVEL[patient.density] + float(rng.normal(0, 0.04))
    return ExamPlan(
        seed=seed,
        site=site,
        study_date=study_date,
        index=index,
        patient=patient,
        positive=positive,
        findings=tuple(findings),
        birads=_birads(findings, rng),
        density_level=min(max(level, 0.05), 0.95),
        accession=f"ACC{int(rng.integers(10**8, 10**9))}",
        study_id=f"{int(rng.integers(10**5, 10**6))}",
        study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
        burned_in_text=_burned_in_views(seed, site, study_date, index, burned_in_text_rate),
        artifacts=plan_artifacts(seed, site, study_date, index, artifact_rate),
    )


def _burned_in_views(seed: int, site: str, study_date: str, index: int, rate: float) -> tuple[str, ...]:
    from pipelines.domain import SCREENING_VIEWS

    if rate <= 0.0:
        return ()
    rng = rng_for("burned-in-text", seed, site, study_date, index)
    return (str(rng.choice(SCREENING_VIEWS)),) if rng.random() < rate else ()


def _position(rng: np.random.Generator, margin: float) -> tuple[float, float, float]:
    depth = float(rng.uniform(0.3, 0.75))
    return (
        depth,
        float(rng.uniform(-1 + margin, 1 - margin)),
        float(rng.uniform(-1 + margin, 1 - margin)),
    )


def _mass(side: str, rng: np.random.Generator, radius: tuple[float, float]) -> Finding:
    depth, sup_inf, lat_med = _position(rng, 0.2)
    return Finding(
        side=side,
        kind="mass",
        depth=depth,
        sup_inf=sup_inf,
        lat_med=lat_med,
        radius=float(rng.uniform(*radius)),
        contrast=float(rng.uniform(0.2, 0.38)),
        spiculated=bool(rng.random() < 0.6),
        calcifications=bool(rng.random() < 0.35),
    )


def _benign(side: str, rng: np.random.Generator) -> Finding:
    depth, sup_inf, lat_med = _position(rng, 0.3)
    return Finding(
        side=side,
        kind="benign",
        depth=depth,
        sup_inf=sup_inf,
        lat_med=lat_med,
        radius=float(rng.uniform(0.022, 0.035)),
        contrast=float(rng.uniform(0.08, 0.14)),
    )


def _birads(findings: list[Finding], rng: np.random.Generator) -> dict[str, int]:
    """BI-RADS per side: 4/5 for a mass, 2 for a benign finding, else mostly 1."""
    categories: dict[str, int] = {}
    for side in SIDES:
        kinds = {f.kind for f in findings if f.side == side}
        mass = next((f for f in findings if f.side == side and f.kind == "mass"), None)
        if mass is not None:
            strong = mass.spiculated and (mass.calcifications or rng.random() < 0.5)
            categories[side] = 5 if strong else 4
        elif "benign" in kinds or rng.random() < 0.12:
            categories[side] = 2
        else:
            categories[side] = 1
    return categories
