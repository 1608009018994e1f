"""The declared screening-exam policy: which images of a study make the exam.

A screening exam is exactly one R-CC, L-CC, R-MLO and L-MLO image. What a real PACS
sends is messier; each case has a declared outcome, never a silent drop:

- Extra views (spot, magnification, implant-displaced, XCCL, ML...), setting
  `exam_extra_views`, default `prefer-standard`: the standard view is kept and the extras
  are listed in `skipped`; `quarantine` refuses the exam.
- A standard view acquired twice (same setting): the image without view modifiers, then
  the latest (AcquisitionDateTime, InstanceNumber); `quarantine` refuses the exam.
- FOR PROCESSING images, `exam_for_processing`, default `skip`: skipped (the view must
  then come as FOR PRESENTATION); `quarantine` refuses the exam.
- Images of another modality (CT, US, PR, KO...), `exam_other_modalities`, default
  `quarantine`: the study is refused naming the modality; `skip` lists them in `skipped`.
- A view missing: quarantined naming the missing and present views. When the missing image
  arrives, Orthanc marks the study stable again and the next ingest takes it and clears
  the quarantine record: that is the "wait".
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import InvalidStudy, code_string
from pipelines.imaging.views import view_of

if TYPE_CHECKING:
    from pydicom import Dataset

    from pipelines.tasks import TaskDefinition

NON_IMAGE_MODALITIES = {"SR"}
# radflow's own results written back into a study (SR, heatmap secondary captures) carry
# this Manufacturer; they are never inputs of ingest or screening.
RADFLOW_MANUFACTURER = "radflow"


@dataclasses.dataclass(frozen=True)
class ExamPolicy:
    extra_views: str = "prefer-standard"  # or "quarantine"
    for_processing: str = "skip"  # or "quarantine"
    other_modalities: str = "quarantine"  # or "skip"

    @classmethod
    def from_settings(cls) -> ExamPolicy:
        from pipelines.config import get_settings

        s = get_settings()
        return cls(s.exam_extra_views, s.exam_for_processing, s.exam_other_modalities)


@dataclasses.dataclass(frozen=True)
class Selection:
    views: dict[str, Dataset]
    reports: list[Dataset]
    skipped: list[str]  # why each unused image was left out (no identifiers)


def _standard_view(ds: Dataset) -> str | None:
    try:
        return view_of(ds)
    except InvalidStudy:
        return None


def instance_number(ds: Dataset) -> int:
    """InstanceNumber, 0 when absent.

    Raises:
        InvalidStudy: it is not one integer (another VR, text).
    """
    value = ds.get("InstanceNumber", 0) or 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidStudy("InstanceNumber is not one integer")
    try:
        return int(value)
    except ValueError:
        raise InvalidStudy("InstanceNumber is not one integer") from None


def _preference(ds: Dataset) -> tuple[int, str, int]:
    """Higher is preferred: no view modifiers, then latest acquisition, then instance number."""
    plain = 0 if ds.get("ViewModifierCodeSequence") else 1
    when = str(ds.get("AcquisitionDateTime", "") or f"{ds.get('AcquisitionDate', '')}"
               f"{ds.get('AcquisitionTime', '') or ds.get('ContentTime', '')}")
    return plain, when, instance_number(ds)


def _sort_image(ds: Dataset, label: str, policy: ExamPolicy, candidates: dict[str, list[Dataset]],
                skipped: list[str]) -> None:
    modality = code_string(ds.get("Modality"))
    if modality != "MG":
        if policy.other_modalities == "skip":
            skipped.append(f"{modality} image (not MG)")
            return
        raise InvalidStudy(f"exam {label}: modality {modality} is not MG")
    intent = code_string(ds.get("PresentationIntentType", "FOR PRESENTATION"))
    view = _standard_view(ds)
    if intent != "FOR PRESENTATION":
        if policy.for_processing == "quarantine":
            raise InvalidStudy(f"exam {label}: {intent} image, only FOR PRESENTATION is screened")
        skipped.append(f"{view or 'MG'} {intent} image")
        return
    if view is None:
        position = code_string(ds.get("ViewPosition"))
        if policy.extra_views == "quarantine":
            raise InvalidStudy(f"exam {label}: view {position} is not a screening view")
        skipped.append(f"extra view {position}")
        return
    candidates.setdefault(view, []).append(ds)


def select(datasets: list[Dataset], label: str, policy: ExamPolicy) -> Selection:
    """Apply the policy to a study's datasets.

    Raises:
        InvalidStudy: the policy refuses the study, or a screening view is missing.
    """
    candidates: dict[str, list[Dataset]] = {}
    reports: list[Dataset] = []
    skipped: list[str] = []
    for ds in datasets:
        if str(ds.get("Manufacturer", "") or "") == RADFLOW_MANUFACTURER:
            skipped.append("radflow's own result object")
        elif str(ds.get("Modality", "")) in NON_IMAGE_MODALITIES:
            reports.append(ds)
        else:
            _sort_image(ds, label, policy, candidates, skipped)
    views = {}
    for view, found in candidates.items():
        if len(found) > 1 and policy.extra_views == "quarantine":
            raise InvalidStudy(f"exam {label}: view {view} repeated")
        ranked = sorted(found, key=_preference, reverse=True)
        views[view] = ranked[0]
        skipped += [f"{view} repeated: kept the preferred image"] * (len(ranked) - 1)
    missing = [v for v in SCREENING_VIEWS if v not in views]
    if missing:
        got = ", ".join(sorted(views)) or "no views"
        raise InvalidStudy(f"exam {label}: view {', '.join(missing)} missing: got {got}")
    return Selection(views=views, reports=reports, skipped=skipped)


def _view_key(ds: Dataset, task: TaskDefinition) -> str:
    position = str(ds.get("ViewPosition", "") or "").upper()
    if task.view_key == "position":
        return position
    laterality = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").upper()
    return f"{laterality}-{position}"


def select_for_task(datasets: list[Dataset], task: TaskDefinition, label: str,
                    policy: ExamPolicy | None = None) -> Selection:
    """The views of `task` in one study, and its reports.

    Mammography applies the exam policy above; another task takes the first image of each
    of its views (by InstanceNumber) among the images of its modality, other images listed
    in `skipped`.

    Raises:
        InvalidStudy: a view is missing, the study holds no image of the task's modality,
            or an image states another body part than the task's.
    """
    if task.preprocessing == "mammogram":
        return select(datasets, label, policy or ExamPolicy.from_settings())
    found: dict[str, Dataset] = {}
    reports: list[Dataset] = []
    skipped: list[str] = []
    for ds in sorted(datasets, key=instance_number):
        modality = code_string(ds.get("Modality"))
        if ds.get("Manufacturer") == RADFLOW_MANUFACTURER:
            skipped.append("radflow's own result object")
            continue
        if modality in NON_IMAGE_MODALITIES:
            reports.append(ds)
            continue
        if modality != task.modality:
            skipped.append(f"{modality} image (not {task.modality})")
            continue
        part = str(ds.get("BodyPartExamined", "") or "").upper()
        if part and part != task.body_part:
            raise InvalidStudy(f"exam {label}: body part {code_string(part)}, task {task.name} expects "
                               f"{task.body_part}")
        key = _view_key(ds, task)
        if key in found:
            skipped.append(f"{key} repeated: kept the first image")
        found.setdefault(key, ds)
    missing = [v for v in task.views if v not in found]
    if missing:
        raise InvalidStudy(f"exam {label}: view {', '.join(missing)} missing: got "
                           f"{', '.join(sorted(found)) or 'no ' + task.modality + ' image'}")
    skipped += [f"view {v} is not one of task {task.name}'s" for v in sorted(set(found) - set(task.views))]
    return Selection(views={v: found[v] for v in task.views}, reports=reports, skipped=skipped)
