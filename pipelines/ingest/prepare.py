"""The parallel half of ingest: download, check and preprocess a study, in worker processes.

Workers hold no database connection and write nothing; the parent commits their results
one study at a time, in change-sequence order, so the watermark and crash safety are those
of a sequential run. PHI stays inside the ingest processes (the pseudonym keys travel to
the parent, which maps them through the pseudonym table).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from pipelines.config import get_settings
from pipelines.errors import PermanentError
from pipelines.ingest import exams
from pipelines.pacs.client import OrthancClient


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One study, ready to commit (`exam`) or refused with a reason (`refusal`)."""

    study_id: str
    exam: exams.ExamImages | None = None
    study_date: str = "unknown"
    refusal: str | None = None


def prepare(client: OrthancClient, study_id: str) -> Prepared:
    """Download and assemble one study; PermanentError becomes a refusal, TransientError raises."""
    s = get_settings()
    try:
        datasets = exams.download(client, study_id, s.download_workers)
        exam = exams.assemble(datasets, f"orthanc:{study_id[:8]}", s.image_height, s.image_width)
    except PermanentError as exc:
        return Prepared(study_id, refusal=str(exc))
    raw = str(datasets[0].get("StudyDate", ""))
    date = f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}" if len(raw) == 8 else "unknown"
    return Prepared(study_id, exam=exam, study_date=date)


_worker_client: OrthancClient | None = None


def _prepare_in_worker(study_id: str) -> Prepared:
    global _worker_client
    if _worker_client is None:  # one keep-alive client per worker process
        _worker_client = OrthancClient()
    return prepare(_worker_client, study_id)


def prepared(client: OrthancClient, study_ids: list[str], workers: int) -> Iterator[Prepared]:
    """The studies prepared, in the order given; in `workers` processes for large batches."""
    if workers <= 1 or len(study_ids) < 2 * workers:  # a pool costs seconds to start
        for study_id in study_ids:
            yield prepare(client, study_id)
        return
    context = multiprocessing.get_context("spawn")  # no inherited sockets or DB connections
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_prepare_in_worker, study_ids)
