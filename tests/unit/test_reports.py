"""BI-RADS per breast from radiology report text, and the training label derived from it."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipelines.ingest.reports import birads_by_side, label_of, report_text

PER_SIDE = """\
EXAM: Bilateral screening digital mammography, CC and MLO views.
CLINICAL HISTORY: Routine screening. No current breast complaints.
COMPARISON: 2024-03-02.

FINDINGS:
The breasts are heterogeneously dense, which may obscure small masses (ACR density C).
RIGHT BREAST: Scattered benign-appearing vascular calcifications. BI-RADS 2.
LEFT BREAST: Irregular spiculated mass in the upper outer quadrant at 2 o'clock,
middle depth, measuring approximately 14 mm. BI-RADS 4.

IMPRESSION: Suspicious mass.
BI-RADS 4: Suspicious.
RECOMMENDATION: Ultrasound-guided core needle biopsy is recommended.
"""

RIS_EXPORT = """\
Screening mammogram, bilateral.
Right breast: No suspicious mass, calcification or distortion.  BIRADS: 1
Left breast : Stable benign-appearing calcifications.  BIRADS: 2
Impression: benign.
"""

OVERALL_ONLY = """\
PROCEDURE: Screening mammogram, bilateral, 2D full-field digital.
FINDINGS: There is an irregular high-density mass with spiculated margins,
about 22 mm, visible in both projections.
ASSESSMENT: BI-RADS category 5 - highly suggestive of malignancy.
"""


def test_each_breast_gets_the_category_of_its_own_section() -> None:
    assert birads_by_side(PER_SIDE) == {"R": 2, "L": 4}


def test_ris_export_with_colon_style_and_mixed_case_sections() -> None:
    assert birads_by_side(RIS_EXPORT) == {"R": 1, "L": 2}


def test_a_report_without_sections_gives_its_overall_category_to_both_breasts() -> None:
    assert birads_by_side(OVERALL_ONLY) == {"R": 5, "L": 5}


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Overall assessment: BI-RADS 4.", 4),
        ("Overall assessment: BIRADS: 2", 2),
        ("Overall assessment: BI-RADS category 5", 5),
        ("Overall assessment: BI RADS 3", 3),
        ("overall assessment: bi-rads 0, needs additional imaging", 0),
    ],
)
def test_common_ways_of_writing_the_category(text: str, category: int) -> None:
    assert birads_by_side(text) == {"R": category, "L": category}


@pytest.mark.parametrize("text", ["ASSESSMENT: BI-RADS Category: 4", "ACR BI-RADS\u00ae 4"])
def test_category_with_colon_after_category_or_registered_mark(text: str) -> None:
    assert birads_by_side(text) == {"R": 4, "L": 4}


def test_a_report_flattened_to_one_line_keeps_per_breast_categories() -> None:
    text = ("Findings: Right breast: no suspicious findings, BI-RADS 1. Left breast: irregular "
            "spiculated mass at 2 o'clock, BI-RADS 4. Impression: BI-RADS 4.")
    assert birads_by_side(text) == {"R": 1, "L": 4}


@pytest.mark.parametrize("text", [
    "RIGHT BREAST - No suspicious findings. BI-RADS 1.\n"
    "LEFT BREAST - Irregular spiculated mass at 2 o'clock. BI-RADS 5.",
    "Right: negative, BI-RADS 1.\nLeft: irregular mass, BI-RADS 4.",
])
def test_an_unrecognised_layout_never_labels_the_suspicious_breast_negative(text: str) -> None:
    assert label_of(birads_by_side(text).get("L")) != 0


def test_a_report_without_any_category_gives_nothing() -> None:
    assert birads_by_side("FINDINGS: technically inadequate study, recall for repeat.") == {}


def test_the_impression_category_does_not_override_the_per_side_categories() -> None:
    text = "RIGHT BREAST: negative. BI-RADS 1.\nLEFT BREAST: benign cyst. BI-RADS 2.\n" \
           "IMPRESSION: BI-RADS 5."
    assert birads_by_side(text) == {"R": 1, "L": 2}


def test_impression_naming_both_breasts_keeps_the_benign_side_benign() -> None:
    # "... in the right breast." inside the impression is a sentence, not a section header.
    text = (
        "RIGHT BREAST: Scattered benign calcifications. BI-RADS 2.\n"
        "LEFT BREAST: Irregular spiculated mass at 2 o'clock. BI-RADS 4.\n\n"
        "IMPRESSION: Suspicious mass in the left breast. Benign calcifications in the "
        "right breast.\nBI-RADS 4: Suspicious.\n"
    )
    assert birads_by_side(text) == {"R": 2, "L": 4}


def test_a_side_section_mentioning_the_other_breast() -> None:
    text = ("RIGHT BREAST: New mass, not seen in the left breast. BI-RADS 4.\n"
            "LEFT BREAST: Negative. BI-RADS 1.\n")
    assert birads_by_side(text) == {"R": 4, "L": 1}


@pytest.mark.parametrize(
    ("category", "label"),
    [(0, None), (1, 0), (2, 0), (3, None), (4, 1), (5, 1), (6, 1), (None, None)],
)
def test_label_is_1_for_suspicious_0_for_negative_or_benign_else_none(
    category: int | None, label: int | None
) -> None:
    assert label_of(category) == label


def _text_item(value: str) -> Dataset:
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = value
    return item


def test_sr_text_is_collected_depth_first_from_nested_containers() -> None:
    findings = Dataset()
    findings.ValueType = "CONTAINER"
    findings.ContentSequence = Sequence([
        _text_item("RIGHT BREAST: negative. BI-RADS 1."),
        _text_item("LEFT BREAST: spiculated mass. BI-RADS 5."),
    ])
    code = Dataset()
    code.ValueType = "CODE"  # not text: ignored
    sr = Dataset()
    sr.Modality = "SR"
    sr.ContentSequence = Sequence([_text_item("EXAM: screening."), code, findings])
    text = report_text(sr)
    assert text.splitlines() == [
        "EXAM: screening.",
        "RIGHT BREAST: negative. BI-RADS 1.",
        "LEFT BREAST: spiculated mass. BI-RADS 5.",
    ]
    assert birads_by_side(text) == {"R": 1, "L": 5}
