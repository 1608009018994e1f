"""A scored night to the places radiologists look: their PACS and the worklist page.

Both read the same per-exam rows the database got, so the SR, the secondary captures,
the page and the results table never disagree.
"""

from __future__ import annotations

import logging
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
    from pipelines.screening.worklist import NightFiles

log = logging.getLogger(__name__)


def _per_view(prepared: list[PreparedExam], heatmaps: np.ndarray) -> list[list[np.ndarray]]:
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


def worklist(task: TaskDefinition, study_date: str, deployed: Deployment, prepared: list[PreparedExam],
             rows: list[ExamRow], heatmaps: np.ndarray, reason: str, orthanc_url: str,
             shadow: dict[str, Any] | None, quarantined: int,
             not_retrieved: tuple[Quarantined, ...] = ()) -> NightFiles:
    """The night's page, CSV and JSON, and the index of nights."""
    from pipelines.screening.worklist import Night, WorklistEntry, publish_index, publish_night

    s = get_settings()
    entries = [
        WorklistEntry(
            exam_id=row.exam_id, score=row.score, suspicion=row.suspicion, flagged=row.flagged,
            flag_reason=reason if row.flagged else "", view_scores={v.view: v.score for v in row.views},
            qc={v.view: list(v.qc.flags) for v in row.views if v.qc.flags},
            study_url=f"{orthanc_url}/app/explorer.html#study?uuid={exam.study_id}",
            images={v.view: (p.image, m)
                    for v, p, m in zip(row.views, exam.views.values(), maps, strict=True)})
        for exam, row, maps in zip(prepared, rows, _per_view(prepared, heatmaps), strict=True)]
    night = Night(study_date=study_date, task=task.name, model_version=deployed.model_version,
                  shadow=shadow, quarantined=quarantined, capacity=s.screening_capacity,
                  not_retrieved=not_retrieved)
    files = publish_night(s.worklists_dir, night, entries)
    publish_index(s.worklists_dir)
    return files

