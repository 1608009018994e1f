"""A scored night to the places radiologists look: their PACS and the worklist page.

Both read the same per-exam rows the database got, so the SR, the secondary captures,
the page and the results table never disagree. Both take the night batch by batch: the
write-back is called once per batch, and the worklist's draft (`worklist`) takes each
batch's images (`entries`), so only one batch's images are held at a time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.config import get_settings
from pipelines.deployments import Deployment
from pipelines.domain import Quarantined
from pipelines.screening.collect import PreparedExam
from pipelines.screening.results import ExamRow
from pipelines.tasks import TaskDefinition

if TYPE_CHECKING:
    from pipelines.pacs.client import OrthancClient
    from pipelines.screening.worklist import NightDraft, WorklistEntry

log = logging.getLogger(__name__)


def _per_view(prepared: Sequence[PreparedExam], heatmaps: np.ndarray) -> list[list[np.ndarray]]:
    """The heatmaps split by exam, in each exam's view order."""
    out, i = [], 0
    for exam in prepared:
        out.append([heatmaps[i + k] for k in range(len(exam.views))])
        i += len(exam.views)
    return out


def write_back(client: OrthancClient, task: TaskDefinition, deployed: Deployment,
               prepared: list[PreparedExam], rows: list[ExamRow], heatmaps: np.ndarray) -> dict[str, int]:
    """One SR and one heatmap series per exam into its study (earlier ones replaced).

    Returns:
        {"exams", "stored", "replaced"} instance counts.
    """
    from pipelines.screening.writeback import ExamFinding, ViewFinding
    from pipelines.screening.writeback import write_back as store

    stored = replaced = 0
    for exam, row, maps in zip(prepared, rows, _per_view(prepared, heatmaps), strict=True):
        views = tuple(
            ViewFinding(view=v.view, source=p.header, score=v.score, image=p.image, heatmap=m,
                        discounted_reason=("; ".join(f.reason for f in v.qc.flags)
                                           if v.qc.discounted and not row.all_flagged else None),
                        input_box=p.input_box)
            for v, p, m in zip(row.views, exam.views.values(), maps, strict=True))
        result = store(client, ExamFinding(
            task=task.name, exam_score=row.score, suspicion=row.suspicion, flagged=row.flagged,
            model_name=deployed.model_name, model_version=deployed.model_version, views=views))
        stored += result.instances_stored
        replaced += result.replaced
    return {"exams": len(rows), "stored": stored, "replaced": replaced}


def entries(study_ids: Sequence[str], rows: Sequence[ExamRow], reason: str, orthanc_url: str,
            prepared: Sequence[PreparedExam] | None = None,
            heatmaps: np.ndarray | None = None) -> list[WorklistEntry]:
    """The exams as the worklist lists them (`study_ids`: their Orthanc ids), with each view's
    model input and heatmap when `prepared` and its `heatmaps` are given, else without images."""
    from pipelines.screening.worklist import WorklistEntry

    if prepared is None or heatmaps is None:
        images: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in rows]
    else:
        images = [{v.view: (p.image, m) for v, p, m in zip(row.views, exam.views.values(), maps, strict=True)}
                  for exam, row, maps in zip(prepared, rows, _per_view(prepared, heatmaps), strict=True)]
    return [WorklistEntry(
        exam_id=row.exam_id, score=row.score, suspicion=row.suspicion, flagged=row.flagged,
        flag_reason=reason if row.flagged else "", view_scores={v.view: v.score for v in row.views},
        qc={v.view: list(v.qc.flags) for v in row.views if v.qc.flags},
        study_url=f"{orthanc_url}/app/explorer.html#study?uuid={study_id}", images=pictures)
        for study_id, row, pictures in zip(study_ids, rows, images, strict=True)]


@contextlib.contextmanager
def worklist(task: TaskDefinition, study_date: str, deployed: Deployment, study_ids: Sequence[str],
             rows: list[ExamRow], reason: str, orthanc_url: str, shadow: dict[str, Any] | None,
             quarantined: int, not_retrieved: tuple[Quarantined, ...] = ()) -> Iterator[NightDraft]:
    """The night's worklist draft, to render each batch's images into (`entries` with
    images); when the block ends without an exception, the night's page, CSV and JSON are
    published and the index of nights written again. `study_ids` are the Orthanc ids of
    the `rows`' studies."""
    from pipelines.screening.worklist import Night, drafted_night, publish_index

    s = get_settings()
    night = Night(study_date=study_date, task=task.name, model_version=deployed.model_version,
                  shadow=shadow, quarantined=quarantined, capacity=s.screening_capacity,
                  not_retrieved=not_retrieved)
    with drafted_night(s.worklists_dir, night, entries(study_ids, rows, reason, orthanc_url)) as draft:
        yield draft
    publish_index(s.worklists_dir)
