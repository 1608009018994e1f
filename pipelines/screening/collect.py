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
from pipelines.pacs.policy import RADFLOW_MANUFACTURER, ExamPolicy, select
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


@dataclasses.dataclass(frozen=True)
class PreparedExam:
    exam_id: str  # pseudonym
    study_id: str  # Orthanc id
    views: dict[str, PreparedView]


def device_of(ds: Dataset) -> str:
    name = " ".join(str(ds.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName"))
    return name.strip() or "UNKNOWN"


def _view_key(ds: Dataset, task: TaskDefinition) -> str:
    position = str(ds.get("ViewPosition", "") or "").upper()
    if task.view_key == "position":
        return position
    laterality = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").upper()
    return f"{laterality}-{position}"


def pick(datasets: list[Dataset], task: TaskDefinition, label: str) -> dict[str, Dataset]:
    """The task's views of one study (mammography: the ingest exam policy).

    Raises:
        InvalidStudy: a view is missing or the study holds no image of the task's modality.
    """
    if task.preprocessing == "mammogram":
        return select(datasets, label, ExamPolicy.from_settings()).views
    found: dict[str, Dataset] = {}
    for ds in sorted(datasets, key=lambda d: int(d.get("InstanceNumber", 0) or 0)):
        if str(ds.get("Modality", "")) != task.modality or ds.get("Manufacturer") == RADFLOW_MANUFACTURER:
            continue
        part = str(ds.get("BodyPartExamined", "") or "").upper()
        if part and part != task.body_part:
            raise InvalidStudy(f"exam {label}: body part {part}, task {task.name} expects {task.body_part}")
        found.setdefault(_view_key(ds, task), ds)
    missing = [v for v in task.views if v not in found]
    if missing:
        raise InvalidStudy(f"exam {label}: view {', '.join(missing)} missing: got "
                           f"{', '.join(sorted(found)) or 'no ' + task.modality + ' image'}")
    return {v: found[v] for v in task.views}


def prepare_view(ds: Dataset, view: str, task: TaskDefinition, height: int, width: int,
                 decode_timeout_s: float) -> tuple[np.ndarray, ViewQc]:
    """Model input and QC of one view.

    Raises:
        InvalidStudy: the pixels cannot be decoded (in time) or are not one 2-D frame.
    """
    from pipelines.imaging import qc

    display = preprocess.view_pixels(ds, height, decode_timeout_s=decode_timeout_s)
    if task.preprocessing == "radiograph":
        image = np.clip(preprocess.resize(preprocess.rescale(display), height, width), 0.0, 1.0)
        return image, ViewQc(view=view, features={})
    mirror = preprocess.chest_wall_is_right(ds, view[0])
    image = preprocess.model_input(display, mirror, height, width)
    if task.qc == "none":
        return image, ViewQc(view=view, features={})
    found = qc.assess(display, mirror, view, task.limits())
    declared = burned_in_annotation(ds)  # the header says so: text the pixels may hide
    if declared and not any(f.code == "burned_in_text" for f in found.flags):
        found = dataclasses.replace(found, flags=(*found.flags, QcFlag("burned_in_text", declared, 1.0)))
    return image, found


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
            views = pick(datasets, task, label)
            ready = {}
            for view, ds in views.items():
                try:
                    image, view_qc = prepare_view(ds, view, task, height, width, decode_timeout_s)
                except InvalidStudy as exc:
                    raise InvalidStudy(f"exam {label} view {view}: {exc}") from exc
                ready[view] = PreparedView(view, image, view_qc, without_pixel_data(ds), device_of(ds))
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
