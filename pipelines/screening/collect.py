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


def collect(client: OrthancClient, task: TaskDefinition, study_date: str, height: int, width: int,
            workers: int, decode_timeout_s: float) -> tuple[list[PreparedExam], list[Quarantined]]:
    """Every screenable exam of `study_date` (YYYY-MM-DD) for `task`, and the quarantined ones."""
    prepared, held = [], []
    found = client.find_studies(study_date.replace("-", ""), task.modality)
    started = time.monotonic()
    for n, study_id in enumerate(found, start=1):
        label = f"orthanc:{study_id[:8]}"
        try:
            datasets = studies.download(client, study_id, workers)
            views = select_for_task(datasets, task, label).views
            ready = {}
            for view, ds in views.items():
                try:
                    ready[view] = collect_view(ds, view, task, height, width, decode_timeout_s)
                except InvalidStudy as exc:
                    raise InvalidStudy(f"exam {label} view {view}: {exc}") from exc
        except PermanentError as exc:
            held.append(Quarantined(id=study_id, reason=str(exc)))
            with db.get_engine().begin() as conn:
                db.upsert(conn, db.quarantine, [{"stage": f"screen:{task.name}", "item_id": study_id,
                          "reason": str(exc)}], keys=["stage", "item_id"])
            continue
        with db.get_engine().begin() as conn:
            exam_id = pseudonym_for(conn, "study", str(next(iter(views.values())).StudyInstanceUID))
        prepared.append(PreparedExam(exam_id, study_id, ready))
        if n % 50 == 0 or n == len(found):
            rate = n / max(time.monotonic() - started, 1e-9)
            log.info("collect %s %s: %d/%d studies (%.1f/s), %d quarantined", task.name, study_date,
                     n, len(found), rate, len(held))
    return prepared, held
