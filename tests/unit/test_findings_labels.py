"""A task labelled by `findings` (the chest task): the report's affirmed finding labels the
exam; ingest routes a study to the task of its modality and labels it so."""

from __future__ import annotations

import io

import pydicom
import pytest

from pipelines.errors import InvalidStudy
from pipelines.ingest.exams import assemble, study_task
from pipelines.labels.findings import affirmed_mentions, label_from_report
from pipelines.pacs.policy import select_for_task
from pipelines.synth.chest import chest_dataset
from pipelines.tasks import get_task

TERMS = ("nodule", "mass", "opacity")


@pytest.mark.parametrize(("text", "label"), [
    ("FINDINGS: 8 mm nodule in the right upper lobe.", 1),
    ("IMPRESSION: Spiculated mass right lower lobe, suspicious.", 1),
    ("No effusion, but a 1 cm nodule in the left lung.", 1),
    ("Well-defined 9 mm opacity in the mid zone, suspicious for a pulmonary nodule.", 1),
    ("FINDINGS: No nodule or mass. IMPRESSION: Normal chest.", 0),
    ("Lungs clear without focal opacity.", 0),
    ("Negative for pulmonary nodule.", 0),
    ("The lungs are clear. No focal opacity, nodule or mass.", 0),
    ("No effusion. There is a 7 mm nodule at the right base.", 1),
    ("No acute disease is seen in the chest today; a 5 mm nodule is noted.", 1),
    ("Nodule is not seen.", 0),
    ("The previously reported opacity has resolved.", 0),
    ("INDICATION: Smoker, rule out nodule.\nFINDINGS: The lungs are clear.", 0),
    ("CLINICAL HISTORY: known mass elsewhere\nFINDINGS: Heart size normal.", 0),
    ("Heart size normal. No pneumothorax.", 0),
    ("", None),
    ("   \n", None),
])
def test_a_finding_labels_the_exam_only_when_the_reading_affirms_it(text: str, label: int | None) -> None:
    assert label_from_report(text, TERMS) == label


def test_terms_match_whole_words_in_any_case() -> None:
    assert affirmed_mentions("MASSIVE effusion. Small NODULE left.", TERMS) == ["Small NODULE left"]
    assert affirmed_mentions("A nodule.", ()) == []


def _chest(positive: bool, index: int = 0) -> list[pydicom.Dataset]:
    image, report = chest_dataset(3, index, "2026-10-01", 64, positive)
    return [pydicom.dcmread(io.BytesIO(b)) for b in (image, report)]


@pytest.mark.parametrize("positive", [True, False])
def test_a_chest_study_is_ingested_as_its_task_says(positive: bool) -> None:
    datasets = _chest(positive)
    assert study_task(datasets, "cx-1").name == "cxr-nodule"
    exam = assemble(datasets, "cx-1")
    assert list(exam.views) == ["PA"]
    assert exam.views["PA"].shape == get_task("cxr-nodule").input_size()
    attrs = exam.attrs["PA"]
    assert (attrs["laterality"], attrs["view_position"], attrs["modality"]) == ("U", "PA", "DX")
    assert (attrs["label"], attrs["label_source"]) == (int(positive), "report-findings")
    assert attrs["birads"] is None
    assert exam.birads == {}


def test_a_chest_study_without_report_is_unlabelled() -> None:
    exam = assemble(_chest(True)[:1], "cx-2")
    assert (exam.attrs["PA"]["label"], exam.attrs["PA"]["label_source"]) == (None, "none")


def test_a_study_of_no_tasks_modality_is_refused_naming_it() -> None:
    image = _chest(False)[0]
    image.Modality = "CT"
    expected = r"cx-3: modality CT is no task's: the tasks take DX \(cxr-nodule\), MG \(mammo\)"
    with pytest.raises(InvalidStudy, match=expected):
        assemble([image], "cx-3")


def test_a_chest_study_missing_its_view_or_of_another_body_part_is_refused() -> None:
    task = get_task("cxr-nodule")
    lateral = _chest(False)[0]
    lateral.ViewPosition = "LL"
    with pytest.raises(InvalidStudy, match="cx-4: view PA missing: got LL"):
        select_for_task([lateral], task, "cx-4")
    knee = _chest(False)[0]
    knee.BodyPartExamined = "KNEE"
    with pytest.raises(InvalidStudy, match="body part KNEE, task cxr-nodule expects CHEST"):
        select_for_task([knee], task, "cx-5")
