"""Write corpus.jsonl: mammography report texts with the BI-RADS a radiologist reads per breast.

Run `python tests/data/reports/make_corpus.py` to regenerate (deterministic). Each case
is built from its truth (the category of each breast, or None when the report gives the
breast none) and then phrased in one of many house styles, so the expected values never
come from the extractor. Hand-written cases at the end cover what templates do not.

Each case also has `density`: the ACR breast density (A-D) the report states, None when it
states none. Templated cases take it from the DENSITY sentence they were given; hand-written
cases state it themselves (`DENSITY_CASES` are about density wording).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

MEANING = {0: "Incomplete - needs additional imaging evaluation", 1: "Negative", 2: "Benign",
           3: "Probably benign", 4: "Suspicious", 5: "Highly suggestive of malignancy",
           6: "Known biopsy-proven malignancy"}
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}
RANK = {1: 0, 2: 1, 3: 2, 6: 3, 0: 4, 4: 5, 5: 6}
FINDINGS = {
    0: ["Focal asymmetry in the upper outer quadrant seen on the MLO view only",
        "Possible architectural distortion at 11 o'clock, posterior depth, seen on CC only",
        "Developing asymmetry in the lower inner quadrant"],
    1: ["No suspicious mass, calcification or architectural distortion",
        "No dominant mass, suspicious microcalcifications or architectural distortion",
        "Unremarkable. No mammographic evidence of malignancy",
        "No suspicious findings"],
    2: ["Scattered benign-appearing vascular calcifications",
        "Stable circumscribed oval mass at 3 o'clock, unchanged since 2021, consistent with a fibroadenoma",
        "Coarse popcorn calcifications, benign",
        "Intramammary lymph node in the upper outer quadrant",
        "Oil cyst at the lumpectomy site"],
    3: ["Circumscribed oval 7 mm mass at 10 o'clock, probably a fibroadenoma, new compared with prior",
        "Group of round punctate calcifications in the upper outer quadrant"],
    4: ["Irregular 12 mm mass with indistinct margins at 2 o'clock, middle depth",
        "Group of fine pleomorphic calcifications in the upper outer quadrant spanning 8 mm",
        "New architectural distortion at 12 o'clock without a sonographic correlate"],
    5: ["Irregular spiculated high-density mass at 1 o'clock, 22 mm, with associated "
        "fine linear branching calcifications",
        "Spiculated mass in the upper outer quadrant with skin retraction"],
    6: ["Known biopsy-proven invasive ductal carcinoma at 9 o'clock, marker clip in place",
        "Biopsy-proven malignancy in the upper inner quadrant, prior to neoadjuvant therapy"],
}
HEADERS = ["EXAM: Bilateral screening digital mammography, CC and MLO views.",
           "PROCEDURE: Screening mammogram, bilateral, 2D full-field digital with tomosynthesis.",
           "EXAMINATION: Digital screening mammography of both breasts (4 views).",
           "MAMMOGRAPHY SCREENING BILATERAL"]
HISTORY = ["CLINICAL HISTORY: Routine screening. No current breast complaints.",
           "INDICATION: Asymptomatic screening, family history of breast cancer.",
           "HISTORY: Annual screening examination.",
           "INDICATION: Follow-up of a probably benign finding, BI-RADS 3 in 2025."]
COMPARISON = ["COMPARISON: None available.", "COMPARISON: 2024-03-02 and 2023-02-11.",
              "COMPARISON: Prior mammogram of 2024 (BI-RADS 2).",
              "COMPARISON: Outside study from 2022, assessed BI-RADS 1."]
DENSITY = ["The breasts are almost entirely fatty (ACR density A).",
           "There are scattered areas of fibroglandular density (BI-RADS density B).",
           "The breasts are heterogeneously dense, which may obscure small masses (ACR c).",
           "Breast composition: extremely dense (ACR density category 4)."]
DENSITY_OF = dict(zip(DENSITY, "ABCD", strict=True))
RECOMMEND = {0: "Recall for additional imaging: spot compression views and ultrasound.",
             1: "Routine annual screening mammography.", 2: "Routine annual screening mammography.",
             3: "Short-interval follow-up mammogram in 6 months.",
             4: "Ultrasound-guided core needle biopsy is recommended.",
             5: "Tissue sampling is recommended; appropriate action should be taken.",
             6: "Surgical consultation as planned."}


def cat_text(c: int, rng: random.Random) -> str:
    """One way of writing a category, as different radiologists and RIS templates do."""
    forms = [f"BI-RADS {c}", f"BIRADS: {c}", f"BI-RADS category {c}", f"BI-RADS® {c}",
             f"BI-RADS Category: {c}", f"BI-RADS {c} - {MEANING[c]}", f"ACR BI-RADS {c}"]
    if c:
        forms.append(f"BI-RADS {ROMAN[c]}")
    if c == 4:
        forms.append(f"BI-RADS 4{rng.choice('ABC')}")
    return rng.choice(forms)


def finding(c: int, rng: random.Random) -> str:
    return rng.choice(FINDINGS[c])


def overall(r: int | None, left: int | None) -> int:
    return max([c for c in (r, left) if c is not None], key=RANK.__getitem__)


def structured(r: int, left: int, rng: random.Random) -> tuple[str, list[str]]:
    side = rng.choice([("RIGHT BREAST:", "LEFT BREAST:"), ("Right breast:", "Left breast:"),
                       ("RIGHT BREAST -", "LEFT BREAST -"), ("RIGHT:", "LEFT:"),
                       ("Rt breast:", "Lt breast:"), ("R:", "L:"), ("RIGHT BREAST\n", "LEFT BREAST\n")])
    tags = ["structured"] + (["abbreviation"] if side[0].startswith(("R:", "Rt")) else [])
    o = overall(r, left)
    lines = [rng.choice(HEADERS), rng.choice(HISTORY), rng.choice(COMPARISON), "", "FINDINGS:",
             rng.choice(DENSITY),
             f"{side[0]} {finding(r, rng)}. {cat_text(r, rng)}.",
             f"{side[1]} {finding(left, rng)}. {cat_text(left, rng)}.", "",
             f"IMPRESSION: {MEANING[o]}.", f"Overall assessment: {cat_text(o, rng)}.",
             f"RECOMMENDATION: {RECOMMEND[o]}"]
    if "BI-RADS 3 in 2025" in lines[1] or "(BI-RADS" in lines[2] or "assessed BI-RADS" in lines[2]:
        tags.append("prior")
    return "\n".join(lines) + "\n", tags


def flattened(r: int, left: int, rng: random.Random) -> tuple[str, list[str]]:
    o = overall(r, left)
    sides = rng.choice([("Right breast:", "Left breast:"), ("R breast:", "L breast:"), ("RT:", "LT:")])
    text = (f"MG SCREENING BILAT. Findings: {sides[0]} {finding(r, rng)}, {cat_text(r, rng)}. "
            f"{sides[1]} {finding(left, rng)}, {cat_text(left, rng)}. Impression: {cat_text(o, rng)}. "
            f"{RECOMMEND[o]}")
    return text, ["flattened", "ris"] + (["abbreviation"] if sides[0] != "Right breast:" else [])


def impression_pairs(r: int, left: int, rng: random.Random) -> tuple[str, list[str]]:
    o = overall(r, left)
    body = rng.choice([
        f"IMPRESSION:\nRight breast: {cat_text(r, rng)}.\nLeft breast: {cat_text(left, rng)}.",
        f"IMPRESSION: {cat_text(left, rng)} left breast; {cat_text(r, rng)} right breast.",
        f"ASSESSMENT: BI-RADS: R{r} L{left}",
        f"ASSESSMENT: BI-RADS right {r}, left {left}.",
        f"IMPRESSION: Left {cat_text(left, rng)}, right {cat_text(r, rng)}.",
    ])
    text = (f"{rng.choice(HEADERS)}\n{rng.choice(DENSITY)}\nRight breast findings: {finding(r, rng)}.\n"
            f"Left breast findings: {finding(left, rng)}.\n{body}\nRECOMMENDATION: {RECOMMEND[o]}\n")
    return text, ["impression-per-side"]


def prose(r: int, left: int, rng: random.Random) -> tuple[str, list[str]]:
    text = (f"{rng.choice(DENSITY)} The right breast demonstrates: {finding(r, rng).lower()}. "
            f"{cat_text(r, rng)}. The left breast demonstrates: {finding(left, rng).lower()}. "
            f"{cat_text(left, rng)}.\n{RECOMMEND[overall(r, left)]}")
    return text, ["prose"]


def multi_finding(r: int, left: int, rng: random.Random) -> tuple[str, list[str]]:
    """Several findings with their own categories in one breast: the most severe decides."""
    extra = rng.choice([c for c in (1, 2, 3) if RANK[c] <= RANK[left]] or [left])
    text = (f"{rng.choice(HEADERS)}\n\nRIGHT BREAST: {finding(r, rng)}. {cat_text(r, rng)}.\n"
            f"LEFT BREAST:\n1. {finding(extra, rng)}. {cat_text(extra, rng)}.\n"
            f"2. {finding(left, rng)}. {cat_text(left, rng)}.\n\n"
            f"IMPRESSION: {MEANING[overall(r, left)]}.\n")
    return text, ["multiple-findings", "structured"]


def bilateral_same(c: int, rng: random.Random) -> tuple[str, list[str]]:
    text = rng.choice([
        f"{rng.choice(HEADERS)}\nFINDINGS: {rng.choice(DENSITY)} {finding(c, rng)} bilaterally.\n"
        f"IMPRESSION: {MEANING[c]} bilateral mammogram. {cat_text(c, rng)}.",
        f"{rng.choice(HEADERS)}\nBilateral: {finding(c, rng)}. {cat_text(c, rng)}.",
        f"Screening mammogram. {finding(c, rng)} in both breasts. Overall: {cat_text(c, rng)}.",
        f"{rng.choice(HEADERS)}\nFindings: {finding(c, rng)}.\nAssessment category: {c} - {MEANING[c]}.",
    ])
    return text, ["bilateral", "overall-only"]


def addendum(r: int, left: int, rng: random.Random) -> tuple[str, list[str], dict[str, int]]:
    """The original reads 0 on one side; the addendum after work-up revises that side."""
    side, word = rng.choice([("L", "left"), ("R", "right")])
    new = rng.choice([1, 2, 3, 4])
    orig = {"R": r, "L": left, side: 0}
    text = (f"{rng.choice(HEADERS)}\nRIGHT BREAST: {finding(orig['R'], rng)}. {cat_text(orig['R'], rng)}.\n"
            f"LEFT BREAST: {finding(orig['L'], rng)}. {cat_text(orig['L'], rng)}.\n"
            f"IMPRESSION: Recall for the {word} breast.\n\n")
    text += rng.choice([
        f"ADDENDUM: Additional {word} spot compression views and ultrasound were performed. "
        f"The {word} breast assessment is revised from BI-RADS 0 to {cat_text(new, rng)}.",
        f"*** ADDENDUM 2026-03-04 ***\nDiagnostic work-up of the {word} breast completed. "
        f"Revised assessment, {word} breast: {cat_text(new, rng)}.",
        f"Addendum: after additional views, {word.upper()} BREAST: {cat_text(new, rng)}.",
    ])
    return text, ["addendum"], {**orig, side: new}


def template_density(text: str) -> str | None:
    """The density of the one DENSITY sentence a templated case was given, if any."""
    stated = {code for sentence, code in DENSITY_OF.items() if sentence in text}
    assert len(stated) <= 1, text
    return stated.pop() if stated else None


def generate() -> list[dict[str, object]]:
    rng = random.Random(20260322)
    cases: list[dict[str, object]] = []
    styles = [structured, flattened, impression_pairs, prose, multi_finding]
    pairs = [(1, 1), (1, 2), (2, 2), (2, 4), (1, 4), (4, 1), (1, 5), (5, 2), (0, 1), (1, 0),
             (3, 1), (2, 3), (6, 1), (1, 6), (4, 4), (0, 2)]
    for i in range(120):
        r, left = pairs[i % len(pairs)]
        style = styles[i % len(styles)]
        text, tags = style(r, left, rng)
        if style is multi_finding and RANK[left] < RANK[3]:
            text, tags = structured(r, left, rng)
        cases.append({"text": text, "expected": {"R": r, "L": left}, "tags": tags,
                      "density": template_density(text)})
    for c in (1, 1, 2, 2, 0, 1, 2, 4):
        text, tags = bilateral_same(c, rng)
        cases.append({"text": text, "expected": {"R": c, "L": c}, "tags": tags,
                      "density": template_density(text)})
    for r, left in [(1, 1), (2, 1), (1, 2), (1, 1), (2, 2), (1, 1), (2, 1), (1, 1)]:
        text, tags, expected = addendum(r, left, rng)
        cases.append({"text": text, "expected": expected, "tags": tags,
                      "density": template_density(text)})
    cases += [dict(c) for c in HANDWRITTEN + HOLDOUT + HOLDOUT_2 + DENSITY_CASES]
    return cases


def _case(text: str, r: int | None, left: int | None, *tags: str,
          density: str | None = None) -> dict[str, object]:
    return {"text": text, "expected": {"R": r, "L": left}, "tags": list(tags), "density": density}


HANDWRITTEN = [
    _case("FINDINGS: technically inadequate study, recall for repeat.", None, None, "no-category"),
    _case("Screening mammogram, both breasts. Report to follow after comparison with outside films.",
          None, None, "no-category"),
    _case("RIGHT BREAST: No suspicious mass.\nLEFT BREAST: No suspicious mass.\nIMPRESSION: Negative.",
          None, None, "no-category", "negation"),
    _case("IMPRESSION: No mammographic evidence of malignancy. BI-RADS 1: Negative.", 1, 1,
          "negation", "overall-only"),
    _case("Left breast mass at 2 o'clock, right breast negative, BI-RADS 4.", 1, 4, "negation"),
    _case("No suspicious findings in the right breast. Irregular mass in the left breast, BI-RADS 5.",
          1, 5, "negation"),
    _case("LEFT diagnostic mammogram with spot compression.\nFINDINGS: The palpable area at 3 o'clock "
          "corresponds to an irregular mass.\nIMPRESSION: BI-RADS 4B. Biopsy recommended.", None, 4,
          "unilateral"),
    _case("Unilateral right diagnostic mammogram. Stable post-surgical changes. BI-RADS 2.", 2, None,
          "unilateral"),
    _case("COMPARISON: 2024 (BI-RADS 3, left).\nThe previously described left breast mass, BI-RADS 3, "
          "is stable for 24 months and is now considered benign: BI-RADS 2.\nRight breast: BI-RADS 1.",
          1, 2, "prior"),
    _case("Left breast: the asymmetry was upgraded from BI-RADS 3 to BI-RADS 4A after ultrasound.\n"
          "Right breast: negative, BI-RADS 1.", 1, 4, "prior"),
    _case("RIGHT BREAST: Negative. BI-RADS 1.\nLEFT BREAST: 9 mm irregular mass. BI-RADS 4.\n\n"
          "ADDENDUM: Outside priors reviewed. The left breast mass is unchanged since 2019 and is "
          "benign. Revised: BI-RADS 2.", 1, 2, "addendum"),
    _case("IMPRESSION: Recall right breast. BI-RADS 0.\n\nADDENDUM (2026-02-01): Right breast spot "
          "compression: the asymmetry resolves, consistent with summation of normal tissue. BI-RADS 1.",
          1, 1, "addendum", "overall-only"),
    _case("Bilateral screening mammogram. Final assessment: BI-RADS 2. ADDENDUM: Addendum to "
          "correct laterality of the clip; the assessment is unchanged.", 2, 2, "addendum"),
    _case("R: BI-RADS 2 L: BI-RADS 4", 2, 4, "abbreviation", "flattened"),
    _case("BI-RADS: R-1 / L-0. Recall left for spot compression.", 1, 0, "abbreviation", "ris"),
    _case("BIRADS R 3, L 1", 3, 1, "abbreviation", "ris"),
    _case("IMPRESSION: Suspicious left breast calcifications, BI-RADS IV. Benign right breast "
          "calcifications, BI-RADS II.", 2, 4, "roman"),
    _case("Assessment: Category 5 - highly suggestive of malignancy, left breast. Right: Category 1.",
          1, 5, "category-word"),
    _case("ASSESSMENT: BI-RADS Category: 4\nLocation: left breast, 2 o'clock.", None, 4, "category-word"),
    _case("BI-RADS assessment: Negative.", 1, 1, "word-form", "overall-only"),
    _case("Breast density: ACR density category 3. No suspicious findings. BI-RADS 1.", 1, 1, "density",
          density="C"),
    _case("BI-RADS 5th edition lexicon used. RIGHT BREAST: benign cyst, BI-RADS 2. LEFT BREAST: "
          "negative, BI-RADS 1.", 2, 1, "edition"),
    _case("RIGHT BREAST: New mass, not seen in the left breast. BI-RADS 4.\nLEFT BREAST: Negative. "
          "BI-RADS 1.", 4, 1, "cross-reference"),
    _case("The right breast shows scattered benign calcifications, BI-RADS 2. In the left breast "
          "there is a developing asymmetry requiring additional imaging, BI-RADS 0.", 2, 0, "prose"),
    _case("Known left breast cancer (BI-RADS 6) at 10 o'clock. New suspicious calcifications in the "
          "left breast at 4 o'clock, BI-RADS 4. Right breast: BI-RADS 1.", 1, 4, "multiple-findings"),
    _case("Benign-appearing calcifications bilaterally, BI-RADS 2.", 2, 2, "bilateral"),
    _case("BI-RADS 4 left, BI-RADS 1 right.", 1, 4, "flattened"),
    _case("Left breast BI-RADS 4, right breast BI-RADS 2.", 2, 4, "flattened"),
    _case("Right breast: circumscribed mass, probably benign, BI-RADS 3, 6-month follow-up. "
          "Left breast: BI-RADS 2 (stable benign calcifications).", 3, 2, "flattened"),
    _case("RIGHT BREAST: No suspicious findings. Not BI-RADS 4 features. BI-RADS 1.\nLEFT BREAST: "
          "BI-RADS 1.", 1, 1, "negation"),
    _case("EXAM: MG screening bilateral. The breasts are scattered fibroglandular. Spiculated mass in "
          "the upper outer quadrant of the left breast. No suspicious findings on the right. "
          "IMPRESSION: BI-RADS 5.", 1, 5, "implicit", "overall-only", density="B"),
    _case("Right breast shows no suspicious mass. Left breast shows an irregular mass at 2 o'clock. "
          "Overall BI-RADS 4.", 1, 4, "implicit", "prose"),
    # Vendor and house styles written out in full.
    _case("BREAST IMAGING REPORT\nExam: MAMMO SCREENING BILAT W/TOMO\n\nRIGHT BREAST\nComposition: b\n"
          "Findings: No suspicious masses, calcifications or distortion.\n"
          "Assessment: BI-RADS 1 - Negative\n\n"
          "LEFT BREAST\nComposition: b\nFindings: 6 mm group of amorphous calcifications at 6 o'clock.\n"
          "Assessment: BI-RADS 4B - Moderate suspicion\n\nOVERALL ASSESSMENT: BI-RADS 4\n", 1, 4,
          "structured", "vendor", density="B"),
    _case("MAMMOGRAPHIE BILATERALE DE DEPISTAGE\nSein droit: pas d'anomalie. Right: BI-RADS 1.\n"
          "Sein gauche: Left: BI-RADS 2.", 1, 2, "abbreviation"),
    _case("SCREENING MAMMOGRAM BILAT|RT BREAST NEG BIRADS 1|LT BREAST MASS 2:00 BIRADS 4|BX RECOMMENDED",
          1, 4, "ris", "flattened", "abbreviation"),
    _case("Accession 12345. MG DIG SCREEN BILAT. FINAL ASSESSMENT: BI-RADS 1 NEGATIVE. "
          "NO MAMMOGRAPHIC EVIDENCE OF MALIGNANCY.", 1, 1, "ris", "overall-only", "negation"),
    _case("Results: Both breasts: BI-RADS 2 - Benign. Scattered vascular calcifications.", 2, 2,
          "bilateral"),
    _case("Impression:\n1. Left breast 1.4 cm irregular mass at 2:00, highly suspicious for malignancy. "
          "BI-RADS 5.\n2. Right breast simple cyst, benign. BI-RADS 2.", 2, 5, "impression-per-side"),
    _case("IMPRESSION:\n1. Indeterminate asymmetry in the right breast. Additional imaging recommended.\n"
          "2. No suspicious findings in the left breast.\nBI-RADS 0: Incomplete.", 0, 1,
          "overall-only", "negation"),
    _case("Findings: There is a new 5 mm group of fine pleomorphic calcifications in the left upper "
          "outer quadrant (BI-RADS 4C). The right breast is unremarkable (BI-RADS 1).", 1, 4, "prose"),
    _case("RIGHT: stable post-lumpectomy changes with dystrophic calcifications. BI-RADS 2.\n"
          "LEFT: negative.\nOverall: BI-RADS 2 - Benign.", 2, 1, "structured"),
    _case("Comparison is made to prior mammograms from 2023 and 2024.\nRIGHT BREAST: A 6 mm oval "
          "circumscribed mass at 9 o'clock, new. BI-RADS 3 - Probably benign, 6-month follow-up.\n"
          "LEFT BREAST: No suspicious findings. BI-RADS 1.", 3, 1, "structured", "prior"),
    _case("Previous exam 2024: BI-RADS 4, benign biopsy (fibroadenoma).\nCurrent exam: Right breast: "
          "negative, BI-RADS 1. Left breast: biopsy clip, post-biopsy changes, BI-RADS 2.", 1, 2,
          "prior"),
    _case("Right breast BI-RADS 0 (asymmetry, needs spot compression). Left breast BI-RADS 1.", 0, 1,
          "flattened"),
    _case("BI-RADS assessment: right breast 1, left breast 4.", 1, 4, "flattened"),
    _case("Bilateral mammogram. No suspicious mass, no suspicious calcifications, no architectural "
          "distortion. BI-RADS Category 1: Negative. Recommend annual screening.", 1, 1, "negation",
          "overall-only"),
    _case("ASSESSMENT: Negative (BI-RADS 1)\nRECOMMENDATION: Routine screening in 1 year", 1, 1,
          "overall-only"),
    _case("LEFT BREAST: The known malignancy at 1 o'clock with clip. BI-RADS 6.\nRIGHT BREAST: "
          "Scattered fibroglandular tissue, no suspicious findings. BI-RADS 1.", 1, 6, "structured",
          density="B"),
    _case("Left breast: 2 cm spiculated mass, BI-RADS 5.\nRight breast: 8 mm oval mass, probably "
          "benign, BI-RADS 3.\nIMPRESSION: BI-RADS 5.", 3, 5, "structured"),
    _case("IMPRESSION: Benign findings. BI-RADS 2.\n\nADDENDUM: The report should read LEFT breast "
          "BI-RADS 4 for the new distortion at 12 o'clock; right breast BI-RADS 2. Biopsy advised.",
          2, 4, "addendum"),
    _case("R breast: neg. BIRADS 1 L breast: FA stable. BIRADS 2", 1, 2, "abbreviation", "flattened"),
    _case("Screening: negative bilaterally, BI-RADS 1.", 1, 1, "bilateral", "negation"),
    _case("RIGHT BREAST: Negative. BI-RADS 1.\nLEFT BREAST: Negative. BI-RADS 1.\n\nADDENDUM: CAD marks "
          "reviewed, no change.", 1, 1, "addendum"),
    _case("RIGHT BREAST: focal asymmetry. BI-RADS 0.\nLEFT BREAST: negative. BI-RADS 1.\n\nADDENDUM: "
          "Diagnostic views of the right breast show a 9 mm irregular mass. Revised to BI-RADS 4.",
          4, 1, "addendum"),
    _case("The breasts are heterogeneously dense. Stable bilateral benign calcifications. No "
          "suspicious masses. BIRADS II, benign.", 2, 2, "roman", "overall-only", density="C"),
    _case("Left mammogram, diagnostic. Spot magnification views of the lateral calcifications show "
          "fine linear forms. Assessment: Category IV. Stereotactic biopsy recommended.", None, 4,
          "unilateral", "roman"),
]

# Written after the extractor was tuned and scored before any change to it ("holdout").
HOLDOUT = [
    _case("DIGITAL SCREENING MAMMOGRAM WITH CAD\nTECHNIQUE: Standard CC and MLO views of both breasts.\n"
          "FINDINGS: Scattered fibroglandular densities. There is a 1.1 cm obscured mass in the right "
          "breast at 7 o'clock, anterior depth, not seen previously. The left breast is unremarkable.\n"
          "IMPRESSION: Possible mass right breast. Recommend diagnostic mammogram and ultrasound.\n"
          "BI-RADS 0 - Incomplete: Need additional imaging evaluation.", 0, 1, "holdout", "prose",
          density="B"),
    _case("Bilateral diagnostic mammogram and targeted ultrasound.\nRight: 4 mm simple cyst at 10:00. "
          "Benign. BI-RADS 2.\nLeft: palpable lump at 3:00 corresponds to a 2.3 cm irregular hypoechoic "
          "mass with angular margins. BI-RADS 5.", 2, 5, "holdout", "abbreviation"),
    _case("MAMMO SCREEN BILAT 3D: No suspicious masses, calcifications or areas of architectural "
          "distortion in either breast. ASSESSMENT: BI-RADS 1: NEGATIVE. RECOMMEND: ANNUAL SCREENING.",
          1, 1, "holdout", "ris", "negation"),
    _case("Right breast: There are no suspicious masses or calcifications.\nLeft breast: Grouped "
          "coarse heterogeneous calcifications upper outer quadrant, new.\n\nIMPRESSION:\nRight breast: "
          "BI-RADS 1 Negative\nLeft breast: BI-RADS 4 Suspicious abnormality, stereotactic biopsy "
          "recommended.", 1, 4, "holdout", "structured"),
    _case("FINAL ASSESSMENT: Category 3 - Probably benign, left breast. Six month follow-up of the "
          "left breast recommended. Right breast: Category 1.", 1, 3, "holdout", "category-word"),
    _case("ADDITIONAL VIEWS LEFT BREAST\nSpot compression views confirm a persistent focal "
          "asymmetry. Ultrasound shows no correlate.\nIMPRESSION: Probably benign. BI-RADS 3.", None, 3,
          "holdout", "unilateral"),
    _case("Postsurgical changes right breast from lumpectomy in 2020 (prior BI-RADS 6). Stable scar. "
          "No new suspicious findings. BI-RADS 2 Benign.", 2, 2, "holdout", "prior", "overall-only"),
    _case("R breast: scattered benign calcs. BI-RADS 2\nL breast: architectural distortion 12:00 "
          "middle depth. BI-RADS 4\nOverall BI-RADS 4", 2, 4, "holdout", "abbreviation"),
    _case("IMPRESSION: Negative bilateral screening mammogram. BI-RADS category 1 (negative).", 1, 1,
          "holdout", "overall-only"),
    _case("RIGHT BREAST: Negative. BIRADS 1.\nLEFT BREAST: Focal asymmetry in the lower inner "
          "quadrant on the CC view only. BIRADS 0.\n\n--- ADDENDUM ---\nLeft diagnostic views obtained "
          "on 2026-03-10: the asymmetry disperses on spot compression. Left breast BI-RADS 1.", 1, 1,
          "holdout", "addendum"),
    _case("ASSESSMENT: BI-RADS 4A: Low suspicion for malignancy in the right breast. BI-RADS 2: benign "
          "left breast fibroadenoma.", 4, 2, "holdout", "impression-per-side"),
    _case("Bilateral implants, subpectoral, intact. Implant-displaced views obtained. No suspicious "
          "findings. BI-RADS 2 - Benign.", 2, 2, "holdout", "overall-only"),
    _case("Breast composition: c. Right breast: no suspicious findings (BI-RADS 1). Left breast: "
          "known carcinoma at 2 o'clock under neoadjuvant chemotherapy, decreased in size (BI-RADS 6).",
          1, 6, "holdout", "flattened", density="C"),
    _case("The left breast shows a new cluster of fine linear calcifications; BI-RADS 5. The right "
          "breast is negative; BI-RADS 1.", 1, 5, "holdout", "prose"),
    _case("Mammogram bilateral screening - see comparison with 2023 where BI-RADS 3 was given for the "
          "left breast nodule. Nodule now stable at 2 years: BI-RADS 2. Right: BI-RADS 1.", 1, 2,
          "holdout", "prior"),
    _case("IMPRESSION: 1. Right breast 8 mm mass, indeterminate, needs ultrasound: BI-RADS 0. "
          "2. Left breast benign: BI-RADS 2.", 0, 2, "holdout", "impression-per-side"),
    _case("No mammographic evidence of malignancy in the right breast. Indeterminate calcifications "
          "in the left breast, magnification views recommended. BI-RADS 0.", 1, 0, "holdout",
          "negation"),
    _case("BI-RADS: 1 (right), 4 (left).", 1, 4, "holdout", "flattened"),
    _case("LEFT BREAST CANCER FOLLOW-UP\nLeft mastectomy. Right breast: no suspicious findings. "
          "BI-RADS 2 given post-surgical history.", 2, None, "holdout", "unilateral"),
    _case("IMPRESSION: Benign. BI-RADS: 2. The findings were discussed with the patient.", 2, 2,
          "holdout", "overall-only"),
]

# Written blind after the first holdout was fixed; scored once, the extractor not changed for it.
HOLDOUT_2 = [
    _case("Screening tomosynthesis, both breasts.\nleft breast: no suspicious findings; BI-RADS 1\n"
          "right breast: 5 mm cluster of amorphous calcifications at 10 o'clock; BI-RADS 4a", 4, 1,
          "holdout-2", "structured"),
    _case("Impression: BI-RADS 4 for the right breast and 2 for the left breast.", 4, 2, "holdout-2",
          "flattened"),
    _case("Assessment: R BI-RADS 2 / L BI-RADS 2. Annual screening.", 2, 2, "holdout-2",
          "abbreviation"),
    _case("FINDINGS:\na) Right breast: stable benign calcifications.\nb) Left breast: stable benign "
          "calcifications.\nIMPRESSION: Benign. BI-RADS 2.", 2, 2, "holdout-2", "overall-only"),
    _case("Diagnostic mammogram of the right breast for a palpable lump at 9 o'clock. No mammographic "
          "correlate. Targeted ultrasound: simple cyst. BI-RADS 2.", 2, None, "holdout-2", "unilateral"),
    _case("RIGHT BREAST: Architectural distortion at 12:00, seen on tomosynthesis only. Assessment "
          "category 0.\nLEFT BREAST: Negative, category 1.", 0, 1, "holdout-2", "category-word"),
    _case("MAMMO SCREEN BILAT. No significant change from prior examinations. No suspicious masses or "
          "calcifications. BI-RADS: 1 - Negative", 1, 1, "holdout-2", "negation", "ris"),
    _case("LEFT BREAST: Status post lumpectomy. Stable post-surgical scar. BI-RADS 2.\nRIGHT BREAST: New "
          "irregular mass at 11 o'clock, 9 mm. BI-RADS 4.\nOVERALL: BI-RADS 4. Biopsy of the right "
          "breast mass recommended.", 4, 2, "holdout-2", "structured"),
    _case("Comparison: 2025-02-01 (BI-RADS 0, right), 2025-02-20 diagnostic (BI-RADS 3, right).\n"
          "The right breast nodule is stable at 12 months. BI-RADS 3. Left breast: BI-RADS 1.", 3, 1,
          "holdout-2", "prior"),
    _case("BI-RADS Right: 1, Left: 5", 1, 5, "holdout-2", "abbreviation"),
    _case("Findings: Fatty breasts. No masses, no calcifications, no distortion in either breast.\n"
          "Conclusion: BI-RADS I.", 1, 1, "holdout-2", "roman", "negation", density="A"),
    _case("ADDENDUM: This report was amended. Left breast category changed from BI-RADS 4 to "
          "BI-RADS 3 after review of the ultrasound.\n\nORIGINAL REPORT: Left breast: oval mass. "
          "BI-RADS 4. Right breast: BI-RADS 1.", 1, 3, "holdout-2", "addendum"),
    _case("Right breast shows a spiculated mass at 10 o'clock measuring 18 mm, highly suspicious. "
          "Left breast is negative.\nBI-RADS 5", 5, 1, "holdout-2", "prose", "negation"),
    _case("Mammogram: Bilateral. BIRADS=2", 2, 2, "holdout-2", "ris"),
    _case("R: benign-appearing intramammary lymph node (BI-RADS 2)\nL: grouped punctate "
          "calcifications, new (BI-RADS 3)", 2, 3, "holdout-2", "abbreviation"),
    _case("Both breasts show scattered fibroglandular tissue. There is no evidence of malignancy on "
          "either side. Assessment: benign findings. ACR BI-RADS 2.", 2, 2, "holdout-2", "negation",
          density="B"),
]


# Density wording (written before the density reader, BI-RADS kept simple): codes, the
# pre-2013 numbering, Atlas descriptors, priors, negation, corrections, conflicts.
DENSITY_CASES = [
    _case("Breast density: ACR C. No suspicious findings. BI-RADS 1.", 1, 1, "density",
          density="C"),
    _case("BREAST COMPOSITION: b - scattered areas of fibroglandular density.\nFINDINGS: Negative.\n"
          "IMPRESSION: BI-RADS 1 - Negative.", 1, 1, "density", density="B"),
    _case("Density category 2 (25-50% fibroglandular). Benign-appearing calcifications bilaterally. "
          "BI-RADS 2.", 2, 2, "density", "density-numbered", density="B"),
    _case("ACR density category 4. No suspicious findings. BI-RADS 1.", 1, 1, "density",
          "density-numbered", density="D"),
    _case("The breast tissue is extremely dense, which lowers the sensitivity of mammography. No "
          "suspicious findings. BI-RADS 1.", 1, 1, "density", "density-descriptor", density="D"),
    _case("COMPARISON: 2024-01-10 (ACR density B).\nFINDINGS: The breasts are heterogeneously dense. "
          "No suspicious findings.\nIMPRESSION: BI-RADS 1.", 1, 1, "density", "density-prior",
          density="C"),
    _case("FINDINGS: The breasts are now heterogeneously dense (previously scattered fibroglandular "
          "density). No suspicious mass. BI-RADS 1.", 1, 1, "density", "density-prior", density="C"),
    _case("Breast density: the breasts are not extremely dense; there are scattered areas of "
          "fibroglandular tissue. BI-RADS 1.", 1, 1, "density", "density-negation", density="B"),
    _case("Mammographic density ACR 3 (heterogeneously dense). No suspicious findings. BI-RADS 1.", 1,
          1, "density", "density-numbered", density="C"),
    _case("Almost entirely fatty breasts. Benign-appearing calcifications bilaterally, BI-RADS 2.", 2,
          2, "density", "density-descriptor", density="A"),
    _case("No suspicious findings. BI-RADS 1. Breast density: a.", 1, 1, "density", density="A"),
    _case("FINDINGS:\nBreast composition: heterogeneously dense (c).\nNo suspicious findings.\n\n"
          "IMPRESSION: Negative. BI-RADS 1.", 1, 1, "density", density="C"),
    _case("Bilateral screening mammogram. No suspicious findings. BI-RADS 1.", 1, 1, "density",
          "density-none"),
    _case("Dense breast tissue. No suspicious findings. BI-RADS 1.", 1, 1, "density", "density-none"),
    _case("FINDINGS: The breasts are heterogeneously dense. No suspicious findings.\nIMPRESSION: "
          "Extremely dense breasts, negative. BI-RADS 1.", 1, 1, "density", "density-conflict",
          density="C"),
    _case("The breasts are heterogeneously dense. No suspicious findings. Extremely dense breasts. "
          "BI-RADS 1.", 1, 1, "density", "density-conflict"),
    _case("RIGHT BREAST: Heterogeneously dense. No suspicious findings. BI-RADS 1.\nLEFT BREAST: "
          "Extremely dense. No suspicious findings. BI-RADS 1.", 1, 1, "density", "density-per-side",
          density="D"),
    _case("FINDINGS: ACR density B. No suspicious findings. BI-RADS 1.\n\nADDENDUM: Breast density "
          "corrected to ACR density C; the assessment is unchanged.", 1, 1, "density",
          "density-addendum", density="C"),
    _case("Parenchymal density: ACR II. No suspicious findings. BI-RADS 1.", 1, 1, "density",
          "density-numbered", density="B"),
    _case("FINDINGS: Scattered fibroglandular densities, slightly less than on the prior exam when "
          "the breasts were heterogeneously dense. No suspicious findings. BI-RADS 1.", 1, 1,
          "density", "density-prior", density="B"),
    _case("Breast density: ACR C in 2022, now ACR B. No suspicious findings. BI-RADS 1.", 1, 1,
          "density", "density-prior", density="B"),
    _case("Tissue composition: category C. No suspicious findings. BI-RADS 1.", 1, 1, "density",
          density="C"),
    _case("ACR breast density category B. Benign-appearing calcifications bilaterally, BI-RADS 2.", 2,
          2, "density", density="B"),
    _case("Breast density: a scattered fibroglandular pattern. No suspicious findings. BI-RADS 1.", 1,
          1, "density", "density-descriptor", density="B"),
    _case("The left breast is heterogeneously dense and the right breast is extremely dense. No "
          "suspicious findings. BI-RADS 1.", 1, 1, "density", "density-per-side", density="D"),
    _case("Breasts: almost entirely fat (less than 25% glandular). No suspicious findings. BI-RADS 1.",
          1, 1, "density", "density-descriptor", density="A"),
]

if __name__ == "__main__":
    out = Path(__file__).with_name("corpus.jsonl")
    rows = generate()
    out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in rows), encoding="utf-8")
    print(f"{len(rows)} cases -> {out}")
