"""The parallel half of ingest: download, check and preprocess a study, in worker processes.

Workers hold no database connection and write nothing; the parent commits their results
one study at a time, in change-sequence order, so the watermark and crash safety are those
of a sequential run. PHI stays inside the ingest processes (the pseudonym keys travel to
the parent, which maps them through the pseudonym table).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping

from pipelines.config import get_settings
from pipelines.errors import PermanentError, TransientError
from pipelines.ingest import exams
from pipelines.pacs import studies
from pipelines.pacs.client import OrthancClient
from pipelines.processes import process_pool

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One study, ready to commit (`exam`) or refused with a reason (`refusal`)."""

    study_id: str
    exam: exams.ExamImages | None = None
    refusal: str | None = None


def prepare(client: OrthancClient, study_id: str,
            ris_texts: Mapping[str, str] | None = None) -> Prepared:
    """Download and assemble one study; PermanentError becomes a refusal, TransientError raises."""
    s = get_settings()
    try:
        datasets = studies.download(client, study_id, s.download_workers)
        # the model input size is the task's (TaskDefinition.input_size)
        exam = exams.assemble(datasets, f"orthanc:{study_id[:8]}", ris_texts=ris_texts)
    except PermanentError as exc:
        return Prepared(study_id, refusal=str(exc))
    except TransientError:
        raise
    except Exception as exc:  # unforeseen input: quarantine it, the batch goes on (type only: no PHI)
        log.warning("study %s: unexpected %s while preparing it", study_id, type(exc).__name__)
        return Prepared(study_id, refusal=f"unexpected {type(exc).__name__} while preparing the study")
    return Prepared(study_id, exam=exam)


_worker_client: OrthancClient | None = None


def _prepare_in_worker(study_id: str, ris_texts: Mapping[str, str] | None) -> Prepared:
    global _worker_client
    if _worker_client is None:  # one keep-alive client per worker process
        _worker_client = OrthancClient()
    return prepare(_worker_client, study_id, ris_texts)


def prepared(client: OrthancClient, study_ids: list[str], workers: int,
             ris_texts: Mapping[str, str] | None = None) -> Iterator[Prepared]:
    """The studies prepared, in the order given; in `workers` processes for large batches.

    The workers die with this process (`process_pool`); `run` consumes this generator on
    the main thread of the `radflow ingest` command or of the Airflow task process.
    """
    if workers <= 1 or len(study_ids) < 2 * workers:  # a pool costs seconds to start
        for study_id in study_ids:
            yield prepare(client, study_id, ris_texts)
        return
    # "spawn": no inherited sockets or DB connections
    with process_pool(workers, "spawn") as pool:
        yield from pool.map(_prepare_in_worker, study_ids, [ris_texts] * len(study_ids))
