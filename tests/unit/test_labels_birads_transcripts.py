"""The BI-RADS reader on transcripts, forms and layouts first seen in the holdout corpus.

Each rule is tested on texts written for these tests (none is copied from a corpus):
dictated punctuation and spelled numbers, speech-recognition and OCR slips, checkbox
forms, hypothetical and distance phrasings, categories listed before their breasts,
an overall category before per-breast ones, inline breast sections, "ACR 4" as a
BI-RADS category, and a table with an empty corner cell and dated columns.
"""

from __future__ import annotations

import pytest

from pipelines.labels.birads import birads_by_side
from pipelines.labels.checkboxes import untick
from pipelines.labels.transcripts import clean_transcript, is_dictated, undictate


def test_dictated_punctuation_and_a_spelled_number_are_read() -> None:
    text = ("screening mammogram both breasts new paragraph findings colon left breast small "
            "cluster of amorphous calcifications period right breast unremarkable period "
            "new paragraph impression colon left breast BI-RADS category four B comma stereotactic "
            "biopsy advised period right breast BI-RADS one period end of dictation")
    assert birads_by_side(text) == {"R": 1, "L": 4}
    assert undictate("impression colon left comma BI-RADS 1 period new line next") == (
        "impression: left, BI-RADS 1.\nnext"
    )


def test_a_typed_report_that_says_period_is_not_read_as_dictated() -> None:
    text = "Over a follow-up period of two years the mass is stable. BI-RADS 2."
    assert not is_dictated(text)
    assert clean_transcript(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Impression: left breast bye rads 3, right breast by rads 1.", {"R": 1, "L": 3}),
        ("ASSESSMENT: B I RADS 0 , left breast\n            B I-RADS 1 , right breast",
         {"R": 1, "L": 0}),
        ("Rigth breast: BI-RADS 4.\nIeft breast: BI-RADS 2.", {"R": 4, "L": 2}),
        ("RIGTH: BI-RADS 1\n1EFT: BI-RADS 3", {"R": 1, "L": 3}),
    ],
)
def test_speech_recognition_and_ocr_slips_are_undone(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Left breast:  [ ] BI-RADS 1  [ ] BI-RADS 2  [X] BI-RADS 3\n"
         "Right breast: [x] BI-RADS 1  [ ] BI-RADS 2  [ ] BI-RADS 3", {"R": 1, "L": 3}),
        ("RIGHT BI-RADS: ☐ 0 ☐ 1 ☒ 2 ☐ 3\nLEFT BI-RADS: ☐ 0 ☑ 1 ☐ 2 ☐ 3", {"R": 2, "L": 1}),
        ("Overall BI-RADS assessment:\n( ) 0 incomplete\n( ) 1 negative\n( ) 2 benign\n"
         "(x) 4 suspicious\n( ) 5 highly suggestive\nSuspicious mass in the left breast.",
         {"L": 4}),
    ],
)
def test_only_the_ticked_option_of_a_checkbox_form_is_read(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected


def test_a_bare_ticked_number_is_a_category_only_under_an_assessment_heading() -> None:
    assert untick("Number of prior exams:\n( ) 1\n(x) 3") == "Number of prior exams:\n3"
    assert untick("Final assessment:\n( ) 1\n(x) 3") == "Final assessment:\nBI-RADS 3"
    assert untick("one (x) box only") == "one (x) box only"  # fewer than two boxes: no form


def test_a_hypothetical_category_is_not_the_assessment() -> None:
    text = ("Right breast: 6 mm oval mass (on mammography alone this would be BI-RADS 0); "
            "ultrasound shows a simple cyst. BI-RADS 2.\nLeft breast: negative. BI-RADS 1.")
    assert birads_by_side(text) == {"R": 2, "L": 1}


def test_a_distance_from_a_landmark_is_not_an_earlier_assessment() -> None:
    text = ("LEFT BREAST:\nKnown carcinoma at 1:00 - BI-RADS 6.\n"
            "Second mass at 5:00, 3 cm from the clip - BI-RADS 4A.\nRIGHT BREAST: BI-RADS 1.")
    assert birads_by_side(text) == {"R": 1, "L": 4}
    assert birads_by_side("Left breast mass downgraded from BI-RADS 4 to BI-RADS 2.") == {"L": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BI-RADS category, left breast: 4 (suspicious).\nBI-RADS category, right breast: 1 (negative).",
         {"R": 1, "L": 4}),
        ("Mass on the right.\nBI-RADS: Left 2. Right 4.", {"R": 4, "L": 2}),
        ("Conclusion: BI-RADS 4 (overall). Left: 1. Right: 4.", {"R": 4, "L": 1}),
        ("Conclusion: BI-RADS 3 / BI-RADS 1 (L/R).", {"R": 1, "L": 3}),
        ("Impression: BI-RADS 5 and 2 for the left and right breasts, respectively.", {"R": 2, "L": 5}),
    ],
)
def test_breasts_listed_around_the_categories(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected


def test_a_breast_bi_rads_pair_does_not_take_a_size() -> None:
    assert birads_by_side("BI-RADS: R 2. L 1 cm mass, see above.") == {"R": 2}


def test_an_inline_breast_section_ends_with_its_paragraph() -> None:
    text = ("Findings: Left breast 3:00, irregular mass. Right breast: nothing suspicious.\n\n"
            "BI-RADS 5: highly suggestive of malignancy - left breast.\n"
            "BI-RADS 1: negative - right breast.")
    assert birads_by_side(text) == {"R": 1, "L": 5}


def test_acr_is_read_as_bi_rads_only_when_the_report_says_so() -> None:
    declared = ("Classification: ACR (BI-RADS of the American College of Radiology).\n"
                "Left breast: ACR 4 opacity at the upper inner quadrant.\nRight breast: ACR 2.")
    assert birads_by_side(declared) == {"R": 2, "L": 4}
    assert birads_by_side("Left breast: ACR 4 opacity.\nRight breast: ACR 2.") == {}
    density = "Breast density ACR 2. Uses the ACR BI-RADS lexicon. Overall: BI-RADS 1."
    assert birads_by_side(density) == {"R": 1, "L": 1}


def test_a_table_with_an_empty_corner_and_dated_columns() -> None:
    text = ("| | Previous (11/2022) | Current (11/2024) |\n|---|---|---|\n"
            "| Left | 4 | 2 |\n| Right | 1 | 1 |")
    assert birads_by_side(text) == {"R": 1, "L": 2}
