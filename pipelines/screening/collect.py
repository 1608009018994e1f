"""The night's exams of one screening task, from Orthanc to model inputs and image QC.

Per study: download, pick the task's views (completeness checked), preprocess each view
with the code training uses, and run image QC on what the model will see. A study that
cannot be screened (a view missing, undecodable pixels, another modality) is quarantined
with its reason and the rest of the night goes on. Headers stay in memory for the PACS
write-back and never reach a log, the lake or the database.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from pipelines import db
from pipelines.deid import burned_in_annotation, without_pixel_data
from pipelines.domain import QcFlag, Quarantined, ViewQc
from pipelines.errors import InvalidStudy, PermanentError
from pipelines.imaging import preprocess
from pipelines.pacs import studies
from pipelines.pacs.policy import select_for_task
from pipelines.pacs.pseudonyms import pseudonym_for
from pipelines.tasks import TaskDefinition

if TYPE_CHECKING:
    from pydicom import Dataset

    from pipelines.pacs.client import OrthancClient

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PreparedView:
    view: str
    image: np.ndarray  # the model input, float32 [H, W] in [0, 1]
    qc: ViewQc
    header: Dataset  # PHI: the original header without pixels, for the PACS write-back only
    device: str  # manufacturer and model name (no serial number)
    # where the model input lies in the image: top, bottom, left, right in its stored pixels
    # (half-open, not mirrored; preprocess.model_input_box); None for a radiograph task
    input_box: tuple[int, int, int, int] | None = None
    instance_id: str = ""  # Orthanc id of the instance: the merge reads the header again by it


@dataclasses.dataclass(frozen=True)
class PreparedExam:
    exam_id: str  # pseudonym
    study_id: str  # Orthanc id
    views: dict[str, PreparedView]


def device_of(ds: Dataset) -> str:
    name = " ".join(str(ds.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName"))
    return name.strip() or "UNKNOWN"


def collect_view(ds: Dataset, view: str, task: TaskDefinition, height: int, width: int,
                 decode_timeout_s: float) -> PreparedView:
    """One view as the night keeps it: model input, QC, the header without pixels and,
    for a mammogram, where the model input lies in the image (the CAD SR's marks need it).

    Raises:
        InvalidStudy: the pixels cannot be decoded (in time) or are not one 2-D frame.
    """
    from pipelines.imaging import qc

    display = preprocess.view_pixels(ds, height, decode_timeout_s=decode_timeout_s)
    box = preprocess.model_input_box(display, ds, view) if task.preprocessing == "mammogram" else None
    image = preprocess.task_input(display, ds, view, task.preprocessing, height, width)
    found = ViewQc(view=view, features={})
    if task.qc != "none":
        mirror = preprocess.chest_wall_is_right(ds, view[0])
        found = qc.assess(display, mirror, view, task.limits())
        declared = burned_in_annotation(ds)  # the header says so: text the pixels may hide
        if declared and not any(f.code == "burned_in_text" for f in found.flags):
            found = dataclasses.replace(found, flags=(*found.flags, QcFlag("burned_in_text", declared, 1.0)))
    return PreparedView(view, image, found, without_pixel_data(ds), device_of(ds), input_box=box)


def prepare_view(ds: Dataset, view: str, task: TaskDefinition, height: int, width: int,
                 decode_timeout_s: float) -> tuple[np.ndarray, ViewQc]:
    """Model input and QC of one view (`collect_view` without what only the write-back needs).

    Raises:
        InvalidStudy: the pixels cannot be decoded (in time) or are not one 2-D frame.
    """
    prepared = collect_view(ds, view, task, height, width, decode_timeout_s)
    return prepared.image, prepared.qc


def collect(client: OrthancClient, task: TaskDefinition, study_ids: list[str], height: int,
            width: int, workers: int, decode_timeout_s: float,
            label: str = "") -> tuple[list[PreparedExam], list[Quarantined]]:
    """The screenable exams among `study_ids` (Orthanc ids, kept in that order) for `task`,
    and the quarantined ones; `label` names the batch in the progress log."""
    prepared, held = [], []
    started = time.monotonic()
    for n, study_id in enumerate(study_ids, start=1):
        try:
            exam = collect_study(client, task, study_id, height, width, workers, decode_timeout_s)
        except PermanentError as exc:
            held.append(Quarantined(id=study_id, reason=str(exc)))
            with db.get_engine().begin() as conn:
                db.upsert(conn, db.quarantine, [{"stage": f"screen:{task.name}", "item_id": study_id,
                          "reason": str(exc)}], keys=["stage", "item_id"])
            continue
        prepared.append(exam)
        if n % 50 == 0 or n == len(study_ids):
            rate = n / max(time.monotonic() - started, 1e-9)
            log.info("collect %s %s: %d/%d studies (%.1f/s), %d quarantined", task.name, label,
                     n, len(study_ids), rate, len(held))
    return prepared, held


def collect_study(client: OrthancClient, task: TaskDefinition, study_id: str, height: int, width: int,
                  workers: int, decode_timeout_s: float) -> PreparedExam:
    """One study (Orthanc id) as the night screens it.

    Raises:
        PermanentError: the study cannot be screened (a view missing, pixels undecodable, ...):
            the message names the view and the study by its Orthanc id.
    """
    label = f"orthanc:{study_id[:8]}"
    instances = studies.download_instances(client, study_id, workers)
    ids = {id(ds): instance_id for instance_id, ds in instances}
    views = select_for_task([ds for _, ds in instances], task, label).views
    ready = {}
    for view, ds in views.items():
        try:
            found = collect_view(ds, view, task, height, width, decode_timeout_s)
        except InvalidStudy as exc:
            raise InvalidStudy(f"exam {label} view {view}: {exc}") from exc
        ready[view] = dataclasses.replace(found, instance_id=ids[id(ds)])
    with db.get_engine().begin() as conn:
        exam_id = pseudonym_for(conn, "study", str(next(iter(views.values())).StudyInstanceUID))
    return PreparedExam(exam_id, study_id, ready)
