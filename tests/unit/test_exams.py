"""One study's datasets to one screening exam: views checked, labelled, preprocessed, PHI-free."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_builders import (
    ACCESSION,
    PATIENT_ID,
    PATIENT_NAME,
    breast_pixels,
    mg_image,
    screening_exam,
    sr_report,
)
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless

from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import InvalidStudy
from pipelines.ingest.exams import assemble, pick_views
from pipelines.pacs.policy import ExamPolicy, select

H, W = 24, 16
REPORT = [
    "EXAM: Bilateral screening digital mammography, CC and MLO views.",
    "RIGHT BREAST: No suspicious mass, calcification or architectural distortion. BI-RADS 1.",
    "LEFT BREAST: Irregular spiculated mass at 2 o'clock, about 14 mm. BI-RADS 4.",
    "IMPRESSION: Suspicious mass.",
    "BI-RADS 4: Suspicious.",
]


def test_pick_views_finds_the_four_views_in_any_order() -> None:
    datasets = screening_exam()[::-1]
    views, text = pick_views(datasets, "ex-1")
    assert sorted(views) == sorted(SCREENING_VIEWS)
    assert {v: (ds.ImageLaterality, ds.ViewPosition) for v, ds in views.items()} == {
        "R-CC": ("R", "CC"), "L-CC": ("L", "CC"), "R-MLO": ("R", "MLO"), "L-MLO": ("L", "MLO")}
    assert text == ""


def test_a_missing_view_names_it_and_the_views_present() -> None:
    datasets = [ds for ds in screening_exam() if (ds.ImageLaterality, ds.ViewPosition) != ("R", "MLO")]
    with pytest.raises(InvalidStudy) as err:
        pick_views(datasets, "orthanc:ab12cd34")
    message = str(err.value)
    assert "orthanc:ab12cd34" in message
    assert "R-MLO missing" in message
    assert "got L-CC, L-MLO, R-CC" in message


def test_an_exam_with_two_missing_views_names_both() -> None:
    datasets = [ds for ds in screening_exam() if ds.ImageLaterality == "L"]
    with pytest.raises(InvalidStudy, match=r"view R-CC, R-MLO missing: got L-CC, L-MLO"):
        pick_views(datasets, "ex-2")


def test_a_repeated_view_keeps_the_preferred_image_by_default() -> None:
    datasets = screening_exam()
    later = mg_image(breast_pixels(laterality="L"), laterality="L", position="CC",
                     study_uid=datasets[0].StudyInstanceUID)
    later.InstanceNumber = 99  # the repeat acquisition
    views, _ = pick_views([*datasets, later], "ex-3")
    assert views["L-CC"] is later
    chosen = select([*datasets, later], "ex-3", ExamPolicy())
    assert chosen.skipped == ["L-CC repeated: kept the preferred image"]


def test_a_repeat_with_a_view_modifier_loses_to_the_plain_view() -> None:
    datasets = screening_exam()
    spot = mg_image(breast_pixels(laterality="L"), laterality="L", position="CC",
                    study_uid=datasets[0].StudyInstanceUID)
    spot.InstanceNumber = 99
    modifier = Dataset()
    modifier.CodeValue, modifier.CodingSchemeDesignator = "399055006", "SCT"
    modifier.CodeMeaning = "Spot compression"
    spot.ViewModifierCodeSequence = [modifier]
    views, _ = pick_views([*datasets, spot], "ex-3b")
    assert views["L-CC"] is not spot and "ViewModifierCodeSequence" not in views["L-CC"]


def test_a_repeated_view_is_refused_when_the_policy_says_quarantine() -> None:
    datasets = screening_exam()
    extra = mg_image(breast_pixels(laterality="L"), laterality="L", position="CC",
                     study_uid=datasets[0].StudyInstanceUID)
    with pytest.raises(InvalidStudy, match=r"ex-3: view L-CC repeated"):
        pick_views([*datasets, extra], "ex-3", ExamPolicy(extra_views="quarantine"))


def test_an_extra_non_screening_view_is_skipped_and_listed() -> None:
    datasets = screening_exam()
    xccl = mg_image(breast_pixels(), laterality="R", position="XCCL",
                    study_uid=datasets[0].StudyInstanceUID)
    xccl.ViewCodeSequence = []
    chosen = select([*datasets, xccl], "ex-7", ExamPolicy())
    assert sorted(chosen.views) == sorted(SCREENING_VIEWS)
    assert chosen.skipped == ["extra view XCCL"]
    with pytest.raises(InvalidStudy, match=r"view XCCL is not a screening view"):
        select([*datasets, xccl], "ex-7", ExamPolicy(extra_views="quarantine"))


def test_a_non_mg_image_is_refused_naming_the_modality() -> None:
    datasets = screening_exam()
    ct = mg_image(breast_pixels(), modality="CT", study_uid=datasets[0].StudyInstanceUID)
    with pytest.raises(InvalidStudy, match=r"ex-4: modality CT is not MG"):
        pick_views([*datasets, ct], "ex-4")
    chosen = select([*datasets, ct], "ex-4", ExamPolicy(other_modalities="skip"))
    assert chosen.skipped == ["CT image (not MG)"]


def test_a_for_processing_image_is_skipped_beside_its_for_presentation_view() -> None:
    datasets = screening_exam()
    raw = mg_image(breast_pixels(), laterality="R", position="MLO",
                   study_uid=datasets[0].StudyInstanceUID)
    raw.PresentationIntentType = "FOR PROCESSING"
    chosen = select([*datasets, raw], "ex-5", ExamPolicy())
    assert chosen.skipped == ["R-MLO FOR PROCESSING image"] and raw not in chosen.views.values()


def test_a_for_processing_image_alone_leaves_its_view_missing_or_is_refused_by_policy() -> None:
    datasets = screening_exam()
    datasets[2].PresentationIntentType = "FOR PROCESSING"
    with pytest.raises(InvalidStudy, match=r"ex-5: view .* missing"):
        pick_views(datasets, "ex-5")
    with pytest.raises(InvalidStudy, match=r"ex-5: FOR PROCESSING image"):
        pick_views(datasets, "ex-5", ExamPolicy(for_processing="quarantine"))


def test_an_image_without_presentation_intent_counts_as_for_presentation() -> None:
    datasets = screening_exam(intent=None)
    views, _ = pick_views(datasets, "ex-6")
    assert len(views) == 4


def test_assemble_labels_each_breast_from_the_sr_report() -> None:
    datasets = screening_exam(H * 3, W * 3)
    sr = sr_report(REPORT, datasets[0].StudyInstanceUID)
    exam = assemble([sr, *datasets], "ex-7", H, W)
    assert exam.birads == {"R": 1, "L": 4}
    assert {v: (a["birads"], a["label"]) for v, a in exam.attrs.items()} == {
        "R-CC": (1, 0), "R-MLO": (1, 0), "L-CC": (4, 1), "L-MLO": (4, 1)}


def test_assemble_without_a_report_leaves_labels_empty() -> None:
    exam = assemble(screening_exam(), "ex-8", H, W)
    assert exam.birads == {}
    assert all(a["birads"] is None and a["label"] is None for a in exam.attrs.values())


def test_assemble_preprocesses_every_view_and_records_its_attributes() -> None:
    datasets = screening_exam(H * 3, W * 3, photometric="MONOCHROME2")
    exam = assemble(datasets, "ex-9", H, W)
    assert sorted(exam.views) == sorted(SCREENING_VIEWS)
    for view, pixels in exam.views.items():
        assert pixels.shape == (H, W) and pixels.dtype == np.float32
        # Every view, right or left, with the chest wall on the left.
        assert pixels[:, :3].mean() > pixels[:, -3:].mean(), view
        attrs = exam.attrs[view]
        assert attrs["laterality"] == view[0]
        assert attrs["view_position"] == view.split("-")[1]
        assert attrs["modality"] == "MG"
        assert attrs["manufacturer"] == "HOLOGIC, Inc."
        assert (attrs["rows"], attrs["columns"], attrs["bits_stored"]) == (H * 3, W * 3, 12)
        assert attrs["pixel_spacing_mm"] == pytest.approx(0.1)
        assert attrs["patient_age"] == 55
        assert attrs["pixel_mean"] == pytest.approx(float(pixels.mean()))


def test_nothing_identifying_leaves_assemble_except_the_keys_for_the_pseudonym_table() -> None:
    datasets = screening_exam()
    sr = sr_report(REPORT, datasets[0].StudyInstanceUID)
    exam = assemble([*datasets, sr], "ex-10", H, W)
    uids = {str(ds.StudyInstanceUID) for ds in datasets} | {str(ds.SOPInstanceUID) for ds in datasets}
    phi = {PATIENT_ID, PATIENT_NAME, ACCESSION, "19710304", *uids}
    published = repr(exam.attrs) + repr(exam.birads) + repr(sorted(exam.views))
    assert not [p for p in phi if p in published]
    # The originals are handed over only for the pseudonym table.
    assert exam.identifiers["patient"] == PATIENT_ID
    assert exam.identifiers["study"] == str(datasets[0].StudyInstanceUID)
    assert {k for k in exam.identifiers if k.startswith("instance:")} == {
        f"instance:{v}" for v in SCREENING_VIEWS}


def test_a_view_with_undecodable_pixels_names_exam_view_and_transfer_syntax() -> None:
    datasets = screening_exam()
    bad = datasets[3]  # L-MLO
    bad.file_meta.TransferSyntaxUID = JPEG2000Lossless
    bad.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    bad["PixelData"].VR = "OB"
    with pytest.raises(InvalidStudy) as err:
        assemble(datasets, "ex-11", H, W)
    assert "ex-11" in str(err.value) and "L-MLO" in str(err.value)
    assert "1.2.840.10008.1.2.4.90" in str(err.value)
