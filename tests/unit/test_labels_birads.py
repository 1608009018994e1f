"""The BI-RADS reader, one behaviour at a time: laterality, negation, findings, addenda."""

from __future__ import annotations

import pytest

from pipelines.labels.birads import birads_by_side, most_severe, read_report
from pipelines.labels.mentions import find_mentions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RIGHT BREAST: cyst. BI-RADS 2.\nLEFT BREAST: spiculated mass. BI-RADS 5.", {"R": 2, "L": 5}),
        ("Rt breast: negative. BI-RADS 1.\nLt breast: distortion. BI-RADS 4.", {"R": 1, "L": 4}),
        ("R: BI-RADS 2 L: BI-RADS 4", {"R": 2, "L": 4}),
        ("BI-RADS: R1 L0. Recall left.", {"R": 1, "L": 0}),
        ("BI-RADS assessment: right breast 3, left breast 1.", {"R": 3, "L": 1}),
        ("BI-RADS: 1 (right), 4 (left).", {"R": 1, "L": 4}),
        ("BI-RADS 4 left, BI-RADS 1 right.", {"R": 1, "L": 4}),
        ("Left breast BI-RADS 4, right breast BI-RADS 2.", {"R": 2, "L": 4}),
        ("IMPRESSION: Suspicious left breast mass, BI-RADS 4. Benign right breast cyst, BI-RADS 2.",
         {"R": 2, "L": 4}),
        ("RIGHT BREAST\nFindings: negative.\nAssessment: BI-RADS 1\n\nLEFT BREAST\nFindings: mass.\n"
         "Assessment: BI-RADS 4\n", {"R": 1, "L": 4}),
        ("The right breast shows benign calcifications. BI-RADS 2. The left breast shows an irregular "
         "mass. BI-RADS 4.", {"R": 2, "L": 4}),
    ],
)
def test_laterality_from_sections_abbreviations_and_clauses(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Bilateral: scattered benign calcifications. BI-RADS 2.",
        "Benign-appearing calcifications bilaterally, BI-RADS 2.",
        "Both breasts: BI-RADS 2 - Benign.",
    ],
)
def test_bilateral_statements_assess_both_breasts(text: str) -> None:
    assert birads_by_side(text) == {"R": 2, "L": 2}


def test_a_suspicious_category_is_not_given_to_the_breast_called_negative() -> None:
    text = "Left breast mass at 2 o'clock, right breast negative, BI-RADS 4."
    assert birads_by_side(text) == {"R": 1, "L": 4}


def test_a_breast_described_only_as_negative_beside_an_assessed_one_is_category_1() -> None:
    text = ("No suspicious mass or calcification in the right breast. Irregular mass in the left "
            "breast. IMPRESSION: BI-RADS 5.")
    assert birads_by_side(text) == {"R": 1, "L": 5}


def test_negative_wording_alone_gives_no_category() -> None:
    text = "RIGHT BREAST: No suspicious mass.\nLEFT BREAST: No evidence of malignancy.\nIMPRESSION: Negative."
    assert birads_by_side(text) == {}


def test_a_negated_category_is_not_a_category() -> None:
    assert birads_by_side("Not BI-RADS 4 features. Overall BI-RADS 2.") == {"R": 2, "L": 2}


def test_several_findings_in_one_breast_take_the_most_severe() -> None:
    text = ("RIGHT BREAST: negative. BI-RADS 1.\nLEFT BREAST:\n1. Oval circumscribed mass, probably "
            "benign. BI-RADS 3.\n2. Fine pleomorphic calcifications. BI-RADS 4.\n3. Cyst. BI-RADS 2.")
    assert birads_by_side(text) == {"R": 1, "L": 4}


def test_incomplete_outranks_benign_in_one_breast() -> None:
    # ACR order: a breast with a benign cyst and an unresolved asymmetry is incomplete (0).
    text = "LEFT BREAST: benign cyst, BI-RADS 2. New asymmetry, BI-RADS 0.\nRIGHT BREAST: BI-RADS 1."
    assert birads_by_side(text) == {"R": 1, "L": 0}
    assert most_severe([2, 0]) == 0 and most_severe([0, 4]) == 4 and most_severe([6, 3]) == 6


def test_an_addendum_revising_one_breast_supersedes_the_original_for_that_breast() -> None:
    text = ("RIGHT BREAST: negative. BI-RADS 1.\nLEFT BREAST: focal asymmetry. BI-RADS 0.\n\n"
            "ADDENDUM: Left spot compression views: the asymmetry resolves. Left breast: BI-RADS 1.")
    reading = read_report(text)
    assert reading.categories == {"R": 1, "L": 1}
    assert reading.sources == {"R": "birads-report", "L": "birads-addendum"}


def test_an_addendum_without_a_breast_revises_the_breast_that_carried_the_assessment() -> None:
    text = ("RIGHT BREAST: negative. BI-RADS 1.\nLEFT BREAST: 9 mm irregular mass. BI-RADS 4.\n\n"
            "ADDENDUM: Outside priors show the mass unchanged since 2019. Revised to BI-RADS 2.")
    reading = read_report(text)
    assert reading.categories == {"R": 1, "L": 2}
    assert reading.sources["L"] == "birads-addendum" and reading.sources["R"] == "birads-report"


def test_an_addendum_without_a_category_changes_nothing() -> None:
    text = "Final assessment: BI-RADS 4.\nLEFT BREAST mass.\n\nADDENDUM: Findings discussed with Dr X."
    before = read_report(text.split("ADDENDUM")[0])
    assert read_report(text) == before


def test_the_last_of_several_addenda_wins() -> None:
    text = ("LEFT BREAST: asymmetry. BI-RADS 0.\nRIGHT BREAST: BI-RADS 1.\n"
            "ADDENDUM 1: left breast BI-RADS 3.\nADDENDUM 2: after biopsy review, left breast BI-RADS 4.")
    assert birads_by_side(text) == {"R": 1, "L": 4}


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Overall: BI-RADS 0 - Incomplete.", 0),
        ("Overall: BI-RADS 3: Probably benign.", 3),
        ("ACR BI-RADS® 4", 4),
        ("BI-RADS(R) category 5", 5),
        ("ASSESSMENT: BI-RADS Category: 4", 4),
        ("Assessment category: 3", 3),
        ("Final assessment: Category 0", 0),
        ("BI-RADS IV", 4),
        ("BIRADS II, benign.", 2),
        ("BI-RADS 4C", 4),
        ("BI-RADS assessment: Negative.", 1),
        ("BI-RADS: Probably benign.", 3),
        ("BI-RADS 6: known biopsy-proven malignancy", 6),
    ],
)
def test_ways_of_writing_the_category(text: str, category: int) -> None:
    assert birads_by_side(text) == {"R": category, "L": category}


@pytest.mark.parametrize(
    "text",
    [
        "FINDINGS: technically inadequate study, recall for repeat.",
        "Breast composition: ACR density category 3.",
        "Breasts are heterogeneously dense (BI-RADS density C).",
        "Reported with the BI-RADS 5th edition lexicon.",
        "COMPARISON: prior mammogram 2024, BI-RADS 2.",
        "",
    ],
)
def test_no_category_means_no_label(text: str) -> None:
    assert birads_by_side(text) == {}


def test_categories_of_prior_exams_are_ignored() -> None:
    text = ("INDICATION: follow-up of left BI-RADS 3 mass.\nThe previously described left breast mass, "
            "BI-RADS 3, is stable for 24 months and is now BI-RADS 2.\nRight breast: BI-RADS 1.")
    assert birads_by_side(text) == {"R": 1, "L": 2}
    assert [m.category for m in find_mentions("upgraded from BI-RADS 3 to BI-RADS 4")] == [4]


def test_a_unilateral_exam_assesses_only_the_examined_breast() -> None:
    text = "LEFT diagnostic mammogram.\nIrregular mass at 3 o'clock.\nIMPRESSION: BI-RADS 4B."
    assert birads_by_side(text) == {"L": 4}


def test_the_overall_category_is_not_given_to_a_breast_already_explained() -> None:
    text = "RIGHT BREAST: no suspicious findings.\nLEFT BREAST: mass, BI-RADS 4.\nIMPRESSION: BI-RADS 4."
    assert birads_by_side(text) == {"R": 1, "L": 4}


def test_an_addendum_printed_before_the_original_report_still_supersedes_it() -> None:
    text = ("ADDENDUM: Left breast category changed from BI-RADS 4 to BI-RADS 3 after ultrasound.\n\n"
            "ORIGINAL REPORT: Left breast: oval mass. BI-RADS 4. Right breast: BI-RADS 1.")
    reading = read_report(text)
    assert reading.categories == {"R": 1, "L": 3}
    assert reading.sources["L"] == "birads-addendum"


def test_a_category_after_a_negative_sentence_goes_to_the_breast_with_the_finding() -> None:
    text = ("Right breast shows a spiculated mass at 10 o'clock, highly suspicious. Left breast is "
            "negative.\nBI-RADS 5")
    assert birads_by_side(text) == {"R": 5, "L": 1}


def test_the_registered_mark_in_parentheses_is_not_the_right_breast() -> None:
    assert birads_by_side("Left breast mass. BI-RADS(R) 4. Right breast: BI-RADS(R) 1.") == {"R": 1, "L": 4}
