"""The BI-RADS reader on layouts and spellings from outside this project.

Tables, misspellings and OCR slips, abbreviations, non-native English, text with no
punctuation, and the clauses a sentence about both breasts is cut into. The texts are
written for these tests, not taken from either corpus.
"""

from __future__ import annotations

import pytest

from pipelines.labels.birads import birads_by_side
from pipelines.labels.tables import table_categories


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("| Breast | Finding | BI-RADS |\n|---|---|---|\n| Right | none | 1 |\n| Left | mass | 4 |",
         {"R": 1, "L": 4}),
        ("Side    Finding      BI-RADS\nRight                1\nLeft    mass         4C", {"R": 1, "L": 4}),
        ("Breast\tDensity\tAssessment\nL\tc\t0\nR\tc\t2", {"R": 2, "L": 0}),
        ("|         | Right | Left |\n| Density | B     | B    |\n| BI-RADS | 2     | IV   |",
         {"R": 2, "L": 4}),
        ("             RIGHT      LEFT\nFindings     cyst       none\nBI-RADS      2          1",
         {"R": 2, "L": 1}),
        ("| | Right | Left |\n|---|---|---|\n| BI-RADS | 2 | 4 |", {"R": 2, "L": 4}),
    ],
)
def test_a_table_binds_categories_to_breasts_by_row_or_column(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected


def test_a_table_column_of_an_earlier_exam_is_not_the_current_category() -> None:
    text = ("Side     Prior (2021)   Current\nRight    BI-RADS 3      BI-RADS 2\n"
            "Left     BI-RADS 4      BI-RADS 1")
    assert birads_by_side(text) == {"R": 2, "L": 1}
    assert [c.current for c in table_categories(text)] == [False, True, False, True]


def test_a_row_of_prose_is_not_a_table_header() -> None:
    text = "Right breast: cyst  BI-RADS 2\nLeft breast:  mass  BI-RADS 5"
    assert table_categories(text) == []
    assert birads_by_side(text) == {"R": 2, "L": 5}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Left breast mass. BI-RAD 4. Right breast BI-RAD 1.", {"R": 1, "L": 4}),
        ("Left breast mass. BIRADS4. Right breast BIRADS1.", {"R": 1, "L": 4}),
        ("Left breast mass, BIRDAS 4. Right breast BIRDAS 1.", {"R": 1, "L": 4}),
        ("Left breast mass; BI-RADS catagory 4. Right breast BI-RADS catagory 1.", {"R": 1, "L": 4}),
        ("Rt breast: cyst. Bl-RADS 2.\nLt breast: negative. B1-RADS 1.", {"R": 2, "L": 1}),
        ("Left breast: spiculated mass, BI-\nRADS 5. Right breast: BI-\nRADS 1.", {"R": 1, "L": 5}),
        ("Lt breast BI - RADS  4 , biopsy. Rt breast BI - RADS  1 .", {"R": 1, "L": 4}),
        ("R: possible mass.\nL: nothing suspicious.\nR: cat. 0 - spot views.\nL: cat. 1.", {"R": 0, "L": 1}),
        ("rgt breast: benign calcs. BI-RADS 2.\nlft breast: no suspicous findings. BI-RADS 1.",
         {"R": 2, "L": 1}),
        ("Right breast - BIRADS IVb lesion, biopsy advised. Left breast - BIRADS I.", {"R": 4, "L": 1}),
        ("BI-RADS dx 1, sin 4", {"R": 1, "L": 4}),
    ],
)
def test_misspellings_ocr_slips_and_abbreviations(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("In the right mammary gland a stellate formation of 15 mm. Left mammary gland without focal "
         "changes. Conclusion: BI-RADS V right. BI-RADS I left.", {"R": 5, "L": 1}),
        ("The examination reveals in the left breast a cluster of microcalcifications. The right breast "
         "is without changes. Category BI-RADS 4.", {"R": 1, "L": 4}),
        ("Right side: no lesion to notice. Left side: oval nodule, stable since 2020. Classification: "
         "BI-RADS 1 at the right, BI-RADS 2 at the left.", {"R": 1, "L": 2}),
        ("Mammography both sides. Right side: new mass 8mm, suspicious. Left side: without suspicious "
         "abnormality. Conclusion: BI-RADS 4.", {"R": 4, "L": 1}),
        ("Right breast without changes. Left breast without changes. BI-RADS 1.", {"R": 1, "L": 1}),
    ],
)
def test_non_native_english(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected


def test_unpunctuated_text_binds_each_category_to_the_breast_before_it() -> None:
    text = "IMPRESSION LEFT STABLE CALCIFIED FIBROADENOMA BIRADS 2 RIGHT NEGATIVE BIRADS 1 ANNUAL SCREENING"
    assert birads_by_side(text) == {"R": 1, "L": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a breast written right after the category names it, even in the other breast's section
        ("Findings: Left breast: dense tissue, no suspicious findings.\nBIRADS:4a right breast, BIRADS:1 "
         "left breast.", {"R": 4, "L": 1}),
        ("Right breast: no abnormality.\nFinal: BI-RADS 4 b (left). BI-RADS 1 (right).", {"R": 1, "L": 4}),
        ("R breast - benign calcs.\nL breast - spiculated mass.\nIMP: R BI-RADS 2; L BI-RADS 5.",
         {"R": 2, "L": 5}),
    ],
)
def test_a_breast_written_next_to_the_category_names_it(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "both breasts" at the end of an exam line is the exam's extent, not a section header
        ("Exam: Diagnostic, both breasts\nThere is a new mass in the left breast. Impression: BI-RADS 4, "
         "and the right breast is unremarkable.", {"R": 1, "L": 4}),
        # a negative sentence about one breast, commas and all, before a finding in the other
        ("Findings: A new asymmetry in the right breast. No suspicious mass, calcification or distortion "
         "in the left breast.\nImpression: Right breast: BI-RADS 0. Left breast negative.", {"R": 0, "L": 1}),
        # "dense" describes tissue, not a finding: a sentence naming both breasts is no one's section
        ("The left breast is heterogeneously dense and the right breast is extremely dense. "
         "No suspicious findings. BI-RADS 1.", {"R": 1, "L": 1}),
    ],
)
def test_what_a_sentence_says_about_each_breast(text: str, expected: dict[str, int]) -> None:
    assert birads_by_side(text) == expected
