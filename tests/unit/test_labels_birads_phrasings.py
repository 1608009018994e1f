"""The BI-RADS reader on the phrasings issue 16 found it getting wrong, several ways each.

A breast called negative after (or in the same sentence as) the other breast's category,
per-breast categories listed after "Final assessment", a category in brackets after a
breast's description, and a known cancer (6) beside a new suspicious finding (4, 5) in the
same breast. The texts are written for these tests, not taken from either corpus.
"""

from __future__ import annotations

import pytest

from pipelines.labels.birads import birads_by_side


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the other breast's category first, the negative breast after it
        ("Focal asymmetry at 11 o'clock on the CC view only. BI-RADS 0 - incomplete. Left breast negative.",
         {"R": 0, "L": 1}),
        ("IMPRESSION: BI-RADS 0. Spot compression of the upper outer quadrant advised. "
         "The left breast is negative.", {"R": 0, "L": 1}),
        ("Right breast: developing asymmetry, BI-RADS 0.\nLeft breast: negative.", {"R": 0, "L": 1}),
        ("Irregular mass left breast, BI-RADS 4. Right breast without suspicious abnormality.",
         {"R": 1, "L": 4}),
        ("Left breast: 9 mm irregular mass at 2 o'clock, BI-RADS 4C. Right breast without suspicious "
         "abnormality.", {"R": 1, "L": 4}),
        ("Grouped pleomorphic calcifications in the right breast at 7 o'clock. The left breast is "
         "without suspicious abnormality. BI-RADS 4B.", {"R": 4, "L": 1}),
        # the same sentence
        ("Left breast mass, BI-RADS 4, right breast without suspicious abnormality.", {"R": 1, "L": 4}),
        ("Impression: the right breast mass is suspicious, BI-RADS 4A, and there is no evidence of "
         "malignancy in the left breast.", {"R": 4, "L": 1}),
        ("Stable cyst in the upper outer quadrant of the right breast. BI-RADS 2, left breast negative.",
         {"R": 2, "L": 1}),
        ("Conclusion: BI-RADS 0 for the right breast (recall for spot views); left breast unremarkable.",
         {"R": 0, "L": 1}),
        # "X breast: negative." on its own line after the other breast's block
        ("LEFT BREAST: spiculated mass, 1.4 cm. BI-RADS 5.\nRIGHT BREAST: negative.", {"R": 1, "L": 5}),
        ("Right: stable oil cyst.\nLeft: negative.\nOverall: BI-RADS 2 - benign.", {"R": 2, "L": 1}),
        ("Stable cyst. Left breast unremarkable. Impression: BI-RADS 2, benign.", {"R": 2, "L": 1}),
    ],
)
def test_a_breast_called_negative_beside_the_other_breasts_category_is_1(
    text: str, expected: dict[str, int]
) -> None:
    assert birads_by_side(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Final assessment: left BI-RADS 4C; right BI-RADS 1.", {"R": 1, "L": 4}),
        ("FINAL ASSESSMENT: Right BI-RADS 2, Left BI-RADS 5.", {"R": 2, "L": 5}),
        ("Final assessment:\nleft BI-RADS 4C\nright BI-RADS 1", {"R": 1, "L": 4}),
        ("Final assessment: left 4C, right 1.", {"R": 1, "L": 4}),
        ("Final assessment (per breast): right 2 / left 0", {"R": 2, "L": 0}),
        ("Assesment: RT 3, LT 1.", {"R": 3, "L": 1}),
        ("Conclusion: BI-RADS classification: right 1, left 4.", {"R": 1, "L": 4}),
        ("Right: oil cyst.\nLeft: new grouped calcifications.\nFinal assessment (per breast): BI-RADS 2 "
         "on the right, BI-RADS 4A on the left.", {"R": 2, "L": 4}),
        ("Impression: BI-RADS 3 for the left breast and 1 for the right breast.", {"R": 1, "L": 3}),
    ],
)
def test_per_breast_categories_listed_together_after_the_final_assessment(
    text: str, expected: dict[str, int]
) -> None:
    assert birads_by_side(text) == expected


def test_a_listed_number_followed_by_a_unit_or_a_clock_position_is_not_a_category() -> None:
    assert birads_by_side("Impression: left 2 o'clock mass, right 3 cm cyst.") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Right breast: benign calcifications (BI-RADS 2). Left breast: spiculated mass (BI-RADS 5).",
         {"R": 2, "L": 5}),
        ("The left breast shows a 12 mm round mass with obscured margins at 2 o'clock, middle depth, "
         "3 cm from the nipple (BI-RADS 4B), the right breast a stable cyst (BI-RADS 2).", {"R": 2, "L": 4}),
        ("Left breast with a long-standing, stable, circumscribed oval mass in the upper outer quadrant "
         "consistent with a fibroadenoma (BI-RADS 2), right breast with a new irregular mass (BI-RADS 4).",
         {"R": 4, "L": 2}),
        ("Spiculated mass right breast (BI-RADS 5), left breast without suspicious abnormality.",
         {"R": 5, "L": 1}),
        ("Left breast: new focal asymmetry (category 0). Right breast: unremarkable (category 1).",
         {"R": 1, "L": 0}),
        ("Additional evaluation of the left breast mass is recommended (BI-RADS 0). The right breast "
         "is negative (BI-RADS 1).", {"R": 1, "L": 0}),
    ],
)
def test_a_bracketed_category_binds_to_the_breast_described_before_it(
    text: str, expected: dict[str, int]
) -> None:
    assert birads_by_side(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Left breast: known carcinoma at 12 o'clock, BI-RADS 6. New calcifications at 3 o'clock, "
         "BI-RADS 4.\nRight breast: BI-RADS 1.", {"R": 1, "L": 4}),
        ("Right breast: BI-RADS 4 new mass and BI-RADS 6 known cancer.\nLeft breast BI-RADS 1.",
         {"R": 4, "L": 1}),
        ("Left breast: known carcinoma BI-RADS 6; new mass 2 cm away BI-RADS 4.\nRight breast BI-RADS 1.",
         {"R": 1, "L": 4}),
        ("Final assessment: Left BI-RADS 6 and 4; Right BI-RADS 1.", {"R": 1, "L": 4}),
        ("Known left breast cancer (BI-RADS 6). New spiculated mass in the left upper inner quadrant. "
         "Right breast negative. Overall: BI-RADS 5.", {"R": 1, "L": 5}),
        ("Left breast: invasive carcinoma at 2 o'clock, BI-RADS 6.\nRight breast: negative.\n"
         "New grouped calcifications in the left breast.\nIMPRESSION: BI-RADS 4.", {"R": 1, "L": 4}),
    ],
)
def test_a_new_suspicious_finding_outranks_a_known_cancer_in_the_same_breast(
    text: str, expected: dict[str, int]
) -> None:
    assert birads_by_side(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the new finding is in the other breast: the known cancer stays 6
        ("Left breast: biopsy-proven carcinoma, BI-RADS 6.\nRight breast: new calcifications.\n"
         "IMPRESSION: BI-RADS 4.", {"R": 4, "L": 6}),
        ("Right breast: known malignancy, BI-RADS 6. Left breast: new mass, BI-RADS 4. Overall BI-RADS 4.",
         {"R": 6, "L": 4}),
        ("Left: BI-RADS 6 known cancer.\nRight: negative.\nOverall assessment: BI-RADS 6.", {"R": 1, "L": 6}),
        ("Right breast: known malignancy, biopsy-proven at an outside facility (Category 6).\n"
         "Left breast: benign calcifications, Category 2.", {"R": 6, "L": 2}),
    ],
)
def test_a_known_cancer_alone_stays_6(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected
