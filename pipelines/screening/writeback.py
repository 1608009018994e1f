"""Write a screening result back into the PACS, next to the study the radiologist reads.

Per exam and task: one Comprehensive SR (TID 1500, see sr.py) with per-view findings and
the exam suspicion, for mammograms (MG) one Mammography CAD SR (TID 4000, see cad_sr.py)
whose marks workstations draw, and one secondary-capture series with a heatmap overlay
per view (see overlays.py), all in the ORIGINAL study (same StudyInstanceUID, patient and
study attributes copied from the source), Manufacturer "radflow", SeriesDescription
"radflow <task> SR|CAD-SR|heatmaps <model> v<version>".

A rerun replaces, it never adds: UIDs are hashes of (study UID, task, model version,
view, digest of the finding), so the same result gets the same UIDs. The new objects are
stored first; then every other radflow series of that study and task is deleted. At no
moment does the study hold no result, and after any number of reruns (or a retry after a
failure half-way) it holds exactly one SR (and CAD SR) and one heatmap series per task. Original
instances are never touched: only series whose Manufacturer is "radflow" and whose
SeriesDescription names the task are ever deleted.

The objects carry the patient's identity (they live in the PACS); logs carry counts and
Orthanc ids only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import re
import warnings
from typing import TYPE_CHECKING

from pipelines.errors import PermanentError
from pipelines.pacs.ours import is_ours, series_description

if TYPE_CHECKING:
    import numpy as np
    from pydicom import Dataset

    from pipelines.pacs.client import OrthancClient

log = logging.getLogger(__name__)
_TASK = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


@dataclasses.dataclass(frozen=True)
class ViewFinding:
    """One scored view.

    Attributes:
        view: the view name ("R-CC", ...; for other tasks the task's own view names).
        source: the original instance as downloaded from Orthanc (header and pixels).
        score: the view's malignancy probability, 0-1.
        image: the model input the score came from: float32 [H, W] in [0, 1] (for
            mammography mirrored so the chest wall is left, cropped to the breast, resized).
        heatmap: the classifier's heatmap, float32 [h, w] (h = H/16, w = W/16 for
            pipelines/training/model.py): per location the sigmoid of the class activation
            map, i.e. a malignancy probability of that image region in [0, 1]. The view
            score is the sigmoid of the mean of the top-k logits, not the mean of these.
        discounted_reason: the QC reason(s) when the view was left out of the exam score.
        input_box: the region of `source` the model input shows, in the source's own
            pixels as stored (top, bottom, left, right; half-open, before mirroring): see
            `preprocess.model_input_box`. None: the CAD SR finds it again from the source's
            pixels, or, for a header without pixels, puts no mark on the view.
    """

    view: str
    source: Dataset
    score: float
    image: np.ndarray
    heatmap: np.ndarray
    discounted_reason: str | None = None
    input_box: tuple[int, int, int, int] | None = None


@dataclasses.dataclass(frozen=True)
class ExamFinding:
    """One scored exam: the exam-level result and its views (all in one study)."""

    task: str
    exam_score: float
    suspicion: int
    flagged: bool
    model_name: str
    model_version: str
    views: tuple[ViewFinding, ...]

    def check(self) -> None:
        """Raise PermanentError naming the first bad (non-identifying) value.

        Checks: task name safe in a SeriesDescription, suspicion 1-10, scores in [0, 1],
        at least one view, all views of one study, images 2-D and heatmaps 2-D.
        """
        if not _TASK.fullmatch(self.task):
            raise PermanentError(f"task {self.task!r} must be 1-16 letters, digits, '_' or '-'")
        if not 1 <= int(self.suspicion) <= 10:
            raise PermanentError(f"suspicion must be 1-10, got {self.suspicion}")
        if not self.views:
            raise PermanentError(f"task {self.task}: an exam finding needs at least one view")
        if not 0.0 <= float(self.exam_score) <= 1.0:
            raise PermanentError(f"exam score must be in [0, 1], got {self.exam_score}")
        studies = {str(v.source.StudyInstanceUID) for v in self.views}
        if len(studies) != 1:
            raise PermanentError(f"the views of one exam come from {len(studies)} studies")
        names = [v.view for v in self.views]
        if len(set(names)) != len(names):
            raise PermanentError(f"views repeat in one exam: {', '.join(names)}")
        for v in self.views:
            if not 0.0 <= float(v.score) <= 1.0:
                raise PermanentError(f"view {v.view}: score must be in [0, 1], got {v.score}")
            if v.image.ndim != 2 or v.heatmap.ndim != 2 or 0 in v.heatmap.shape:
                raise PermanentError(
                    f"view {v.view}: image and heatmap must be 2-D, got image "
                    f"{list(v.image.shape)} and heatmap {list(v.heatmap.shape)}"
                )

    @property
    def study_uid(self) -> str:
        return str(self.views[0].source.StudyInstanceUID)

    def digest(self) -> str:
        """SHA-256 over everything the written objects show (scores, reasons, pixels).

        Same finding, same digest, so a rerun with identical results yields identical UIDs.
        """
        h = hashlib.sha256()
        for part in (self.task, self.model_name, self.model_version, f"{self.exam_score:.6f}",
                     str(int(self.suspicion)), str(bool(self.flagged))):
            h.update(part.encode() + b"\0")
        for v in self.views:
            for part in (v.view, str(v.source.SOPInstanceUID), f"{v.score:.6f}",
                         v.discounted_reason or ""):
                h.update(part.encode() + b"\0")
            h.update(_array_bytes(v.image))
            h.update(_array_bytes(v.heatmap))
            if v.input_box is not None:  # marks move with it (absent: the digest as before)
                h.update(str(tuple(int(x) for x in v.input_box)).encode())
        return h.hexdigest()

    @property
    def is_mammography(self) -> bool:
        """Whether every view is an MG image (such exams also get a Mammography CAD SR)."""
        return all(str(v.source.get("Modality", "")) == "MG" for v in self.views)


def _array_bytes(arr: np.ndarray) -> bytes:
    import numpy as np

    a = np.ascontiguousarray(arr, dtype=np.float32)
    return str(a.shape).encode() + a.tobytes()


@dataclasses.dataclass(frozen=True)
class WriteBackResult:
    """What one write-back left in the PACS.

    Attributes:
        sr_sop_instance_uid: the SR now in the study.
        sc_series_uid: the heatmap series now in the study.
        instances_stored: objects Orthanc did not hold before (0 on an identical rerun).
        replaced: earlier radflow instances of this study and task deleted.
        study_id: the Orthanc id of the study (safe to log).
        cad_sr_sop_instance_uid: the Mammography CAD SR now in the study (None: not MG).
    """

    sr_sop_instance_uid: str
    sc_series_uid: str
    instances_stored: int
    replaced: int
    study_id: str
    cad_sr_sop_instance_uid: str | None = None


@dataclasses.dataclass(frozen=True)
class Planned:
    """The UIDs of one write-back: hashes, deterministic for the same finding."""

    sr_series: str
    sr_instance: str
    sc_series: str
    sc_instances: dict[str, str]  # view -> SOPInstanceUID
    device: str
    cad_series: str | None = None  # the Mammography CAD SR: MG exams only
    cad_instance: str | None = None


def plan_uids(finding: ExamFinding) -> Planned:
    """The UIDs of a finding's SR, CAD SR (MG only) and SC objects: name-based, from (study
    UID, task, model version, finding digest, object)."""
    from pipelines.screening.sr import derived_uid

    base = [finding.study_uid, finding.task, finding.model_version, finding.digest()]

    def uid(*parts: str) -> str:
        return derived_uid(*base, *parts)

    mammography = finding.is_mammography
    return Planned(
        sr_series=uid("sr-series"), sr_instance=uid("sr"), sc_series=uid("sc-series"),
        sc_instances={v.view: uid("sc", v.view) for v in finding.views},
        device=derived_uid("radflow", "device", finding.model_name),
        cad_series=uid("cad-sr-series") if mammography else None,
        cad_instance=uid("cad-sr") if mammography else None,
    )


def build(finding: ExamFinding) -> tuple[Planned, list[Dataset]]:
    """The SR, the CAD SR (MG exams) and the SC images of a finding, in that order, not
    yet stored.

    Raises:
        PermanentError: the finding is invalid or highdicom refuses an object.
    """
    from pipelines.screening.sr import scrub

    finding.check()
    uids = plan_uids(finding)
    with warnings.catch_warnings(record=True) as caught:  # they may quote a patient's name
        warnings.simplefilter("always")
        objects = _build(finding, uids)
    if caught:
        log.warning("write-back: %d warning(s) while building the objects of task %s: %s",
                    len(caught), finding.task, "; ".join(sorted(
                        {scrub(str(w.message), finding.views[0].source)[:200] for w in caught})))
    return uids, objects


def _build(finding: ExamFinding, uids: Planned) -> list[Dataset]:
    from pipelines.screening.cad_sr import build_cad_sr
    from pipelines.screening.overlays import build_sc
    from pipelines.screening.sr import build_sr

    sr = build_sr(finding, series_uid=uids.sr_series, sop_uid=uids.sr_instance,
                  device_uid=uids.device, series_description=series_description(
                      finding.task, "SR", finding.model_name, finding.model_version))
    cad = [] if uids.cad_series is None or uids.cad_instance is None else [build_cad_sr(
        finding, series_uid=uids.cad_series, sop_uid=uids.cad_instance,
        series_description=series_description(finding.task, "CAD-SR", finding.model_name,
                                              finding.model_version))]
    heatmaps = series_description(finding.task, "heatmaps", finding.model_name,
                                  finding.model_version)
    scs = [build_sc(v, series_uid=uids.sc_series, sop_uid=uids.sc_instances[v.view],
                    instance_number=i + 1, series_description=heatmaps,
                    model_version=finding.model_version)
           for i, v in enumerate(finding.views)]
    return [sr, *cad, *scs]


def encode(ds: Dataset) -> bytes:
    """A dataset as a DICOM Part 10 file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_back(client: OrthancClient, finding: ExamFinding) -> WriteBackResult:
    """Store the SR, CAD SR (MG) and heatmap series of one exam, replacing radflow's earlier ones.

    Stores the new objects first, then deletes every other radflow series (and any stray
    instance) of the same study and task. Idempotent: an identical rerun stores nothing
    new (Orthanc already holds the same UIDs) and deletes nothing.

    Raises:
        PermanentError: the finding is invalid, highdicom refuses an object, or Orthanc
            rejects one (status not Success/AlreadyStored).
        OrthancUnavailable: Orthanc did not answer (retry: the next run completes it).
    """
    # highdicom logs source UIDs at INFO ("copy Patient-related attributes from dataset
    # <SOPInstanceUID>"): never let its INFO reach a log, whatever the log level is
    quiet = logging.getLogger("highdicom")
    if quiet.getEffectiveLevel() < logging.WARNING:
        quiet.setLevel(logging.WARNING)
    uids, objects = build(finding)
    stored, study_ids = 0, set()
    for ds in objects:
        answer = client.upload(encode(ds))
        status = str(answer.get("Status", ""))
        if status not in ("Success", "AlreadyStored"):
            raise PermanentError(f"Orthanc refused a {ds.Modality} object of task "
                                 f"{finding.task}: status {status or 'missing'}")
        stored += status == "Success"
        study_ids.add(str(answer["ParentStudy"]))
    if len(study_ids) != 1:
        raise PermanentError(f"the written objects of one exam landed in {len(study_ids)} "
                             "Orthanc studies")
    study_id = study_ids.pop()
    keep_series = {uids.sr_series, uids.sc_series}
    keep_instances = {uids.sr_instance, *uids.sc_instances.values()}
    if uids.cad_series is not None and uids.cad_instance is not None:
        keep_series.add(uids.cad_series)
        keep_instances.add(uids.cad_instance)
    replaced = remove_stale(client, study_id, finding.task, keep_series, keep_instances)
    log.info("write-back: study %s task %s: %d stored, %d replaced", study_id, finding.task,
             stored, replaced)
    return WriteBackResult(sr_sop_instance_uid=uids.sr_instance, sc_series_uid=uids.sc_series,
                           instances_stored=stored, replaced=replaced, study_id=study_id,
                           cad_sr_sop_instance_uid=uids.cad_instance)


def remove_stale(client: OrthancClient, study_id: str, task: str, keep_series: set[str],
                 keep_instances: set[str]) -> int:
    """Delete radflow's series of `task` in a study other than `keep_series`, and stray
    instances inside the kept ones; return how many instances went."""
    removed = 0
    for series in client.study_series(study_id):
        tags = series.get("MainDicomTags", {})
        if not is_ours(str(tags.get("Manufacturer", "")), str(tags.get("SeriesDescription", "")),
                       task):
            continue
        if str(tags.get("SeriesInstanceUID", "")) not in keep_series:
            removed += len(series.get("Instances", []))
            client.delete_series(str(series["ID"]))
            continue
        for inst in client.series_instances(str(series["ID"])):
            if str(inst.get("MainDicomTags", {}).get("SOPInstanceUID", "")) not in keep_instances:
                client.delete_instance(str(inst["ID"]))
                removed += 1
    return removed
