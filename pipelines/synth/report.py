"""The radiology report of a synthetic screening exam, in free text with BI-RADS.

A section per breast with its own BI-RADS category, then an impression with the overall
category and a recommendation. Phrasing varies between a few templates. The text holds
no patient identifiers: it goes into the SR's TextValue, where de-identification of free
text would be hard.
"""

from __future__ import annotations

import re

import numpy as np

from pipelines.synth.exams import ExamPlan, Finding
from pipelines.synth.seeding import rng_for
from pipelines.synth.sites import Geometry

BIRADS_MEANING = {
    0: "Incomplete",
    1: "Negative",
    2: "Benign",
    3: "Probably benign",
    4: "Suspicious",
    5: "Highly suggestive of malignancy",
}
DENSITY_TEXT = {
    "a": "The breasts are almost entirely fatty (ACR density A).",
    "b": "There are scattered areas of fibroglandular density (ACR density B).",
    "c": "The breasts are heterogeneously dense, which may obscure small masses (ACR density C).",
    "d": "The breasts are extremely dense, which lowers the sensitivity of mammography "
    "(ACR density D).",
}
_HEADERS = (
    "EXAM: Bilateral screening digital mammography, CC and MLO views.",
    "PROCEDURE: Screening mammogram, bilateral, 2D full-field digital.",
    "EXAMINATION: Digital screening mammography of both breasts (4 views).",
)
_HISTORY = (
    "CLINICAL HISTORY: Routine screening. No current breast complaints.",
    "INDICATION: Asymptomatic screening.",
    "HISTORY: Annual screening examination.",
)
_NEGATIVE = (
    "No suspicious mass, calcification or architectural distortion.",
    "No dominant mass, suspicious microcalcifications or architectural distortion.",
    "Unremarkable. No mammographic evidence of malignancy.",
)
_BENIGN_NO_FINDING = (
    "Scattered benign-appearing vascular calcifications. No suspicious findings.",
    "Stable benign-appearing calcifications. No suspicious mass or distortion.",
)
_RECOMMENDATION = {
    1: "Routine annual screening mammography.",
    2: "Routine annual screening mammography.",
    4: "Ultrasound-guided or stereotactic core needle biopsy is recommended.",
    5: "Tissue sampling is recommended; appropriate action should be taken.",
}
SIDE_NAMES = {"R": "RIGHT", "L": "LEFT"}


def report_text(plan: ExamPlan, geometry: Geometry) -> str:
    """The full report of an exam: header, density, one section per side, impression.

    Args:
        plan: the exam (its findings and BI-RADS per side decide the content).
        geometry: the image matrix, used to state lesion sizes in millimetres.

    Returns:
        Lines separated by newlines; each side's section ends with "BI-RADS <n>.".
    """
    rng = rng_for("report", *plan.key)
    lines = [_pick(rng, _HEADERS), _pick(rng, _HISTORY), "COMPARISON: None available.", ""]
    lines += ["FINDINGS:", DENSITY_TEXT[plan.patient.density]]
    for side in ("R", "L"):
        findings = [f for f in plan.findings if f.side == side]
        body = _side_text(findings, plan.birads[side], geometry, rng)
        lines.append(f"{SIDE_NAMES[side]} BREAST: {body} BI-RADS {plan.birads[side]}.")
    overall = max(plan.birads.values())
    lines += ["", f"IMPRESSION: {_impression(plan, rng)}"]
    lines.append(f"BI-RADS {overall}: {BIRADS_MEANING[overall]}.")
    lines.append(f"RECOMMENDATION: {_RECOMMENDATION[overall]}")
    return "\n".join(lines) + "\n"


def parse_birads(text: str) -> dict[str, int]:
    """BI-RADS per side ("R", "L") and overall ("overall") read back from a report.

    Raises:
        ValueError: a side's section or the impression category is missing.
    """
    found: dict[str, int] = {}
    for side, name in SIDE_NAMES.items():
        match = re.search(rf"^{name} BREAST:.*BI-RADS (\d)\.$", text, re.MULTILINE)
        if match is None:
            raise ValueError(f"report has no {name} BREAST section with a BI-RADS category")
        found[side] = int(match.group(1))
    overall = re.search(r"^BI-RADS (\d): ", text, re.MULTILINE)
    if overall is None:
        raise ValueError("report has no overall BI-RADS category")
    found["overall"] = int(overall.group(1))
    return found


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _side_text(
    findings: list[Finding], category: int, geometry: Geometry, rng: np.random.Generator
) -> str:
    """The findings sentence(s) of one breast."""
    mass = next((f for f in findings if f.kind == "mass"), None)
    if mass is not None:
        return _mass_text(mass, geometry, rng)
    benign = next((f for f in findings if f.kind == "benign"), None)
    if benign is not None:
        size = _size_mm(benign, geometry)
        return (
            f"Circumscribed oval {size} mm mass in the {benign.quadrant}, "
            f"{benign.clock} o'clock, with benign features, likely a cyst or fibroadenoma."
        )
    if category == 2:
        return _pick(rng, _BENIGN_NO_FINDING)
    return _pick(rng, _NEGATIVE)


def _mass_text(mass: Finding, geometry: Geometry, rng: np.random.Generator) -> str:
    """Description of a suspicious mass: margin, size, location, calcifications."""
    margin = (
        "spiculated"
        if mass.spiculated
        else str(rng.choice(["indistinct", "microlobulated", "angular"]))
    )
    depth = "anterior" if mass.depth > 0.66 else "middle" if mass.depth > 0.4 else "posterior"
    size = _size_mm(mass, geometry)
    sentence = str(
        rng.choice(
            [
                f"Irregular {margin} mass in the {mass.quadrant} at {mass.clock} o'clock, "
                f"{depth} depth, measuring approximately {size} mm, seen on both CC and MLO views.",
                f"There is an irregular high-density mass with {margin} margins in the "
                f"{mass.quadrant}, {depth} depth, about {size} mm, visible in both projections.",
                f"A {size} mm irregular mass with {margin} margins is present at {mass.clock} "
                f"o'clock in the {mass.quadrant}, {depth} third.",
            ]
        )
    )
    if mass.calcifications:
        sentence += " Associated fine pleomorphic calcifications in a grouped distribution."
    return sentence


def _impression(plan: ExamPlan, rng: np.random.Generator) -> str:
    mass = next((f for f in plan.findings if f.kind == "mass"), None)
    if mass is not None:
        return f"Suspicious mass in the {SIDE_NAMES[mass.side].lower()} breast, {mass.quadrant}."
    if max(plan.birads.values()) == 2:
        return "Benign findings. No mammographic evidence of malignancy."
    return str(
        rng.choice(
            [
                "Negative bilateral screening mammogram.",
                "No mammographic evidence of malignancy.",
            ]
        )
    )


def _size_mm(finding: Finding, geometry: Geometry) -> int:
    return int(round(2 * finding.radius * geometry.cols * geometry.spacing_mm))
