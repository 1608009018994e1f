"""The parallel half of ingest: download, check and preprocess a study, in worker processes.

Workers hold no database connection and write nothing; the parent commits their results
one study at a time, in change-sequence order, so the watermark and crash safety are those
of a sequential run. PHI stays inside the ingest processes (the pseudonym keys travel to
the parent, which maps them through the pseudonym table).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence

from pipelines.config import get_settings
from pipelines.errors import PermanentError, TransientError, origin
from pipelines.ingest import exams
from pipelines.ingest.steps import UnforeseenInput, step
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
    # the refusal came from an exception no check foresaw (steps.UnforeseenInput): a bug
    unforeseen: bool = False


def prepare(client: OrthancClient, study_id: str,
            ris_texts: Mapping[str, str] | None = None) -> Prepared:
    """Download one study and prepare it (`prepare_files`); TransientError raises."""
    s = get_settings()
    try:
        ids = [str(i["ID"]) for i in client.study_instances(study_id)]
        files = list(zip(ids, client.instance_files(ids, s.download_workers), strict=True))
    except TransientError:
        raise
    except PermanentError as exc:
        return Prepared(study_id, refusal=f"download: {exc}")
    except Exception as exc:  # unforeseen: refused like any study, the batch goes on
        log.warning("study %s: unexpected %s while downloading it", study_id, type(exc).__name__)
        return Prepared(study_id, refusal=f"download: the study's instances: unexpected "
                                          f"{type(exc).__name__} in {origin(exc)}", unforeseen=True)
    return prepare_files(study_id, files, ris_texts)


def prepare_files(study_id: str, files: Sequence[tuple[str, bytes]],
                  ris_texts: Mapping[str, str] | None = None) -> Prepared:
    """One study's received DICOM files to what ingest commits, or a refusal with its reason.

    No Orthanc and no database: the files are read, routed to their task, checked and
    preprocessed (`exams.assemble`). Every refusal starts with its step and names the
    attribute that failed (pipelines/ingest/steps.py); an exception no check foresaw is
    refused as well, marked `unforeseen`, and the batch goes on.

    Args:
        study_id: the study's Orthanc id (its first 8 characters label the exam in reasons).
        files: (Orthanc instance id, DICOM file bytes) of every instance of the study.
        ris_texts: report texts of a RIS export (see `exams.assemble`).

    Raises:
        TransientError: only if a step meets one (none reads a service).
    """
    try:
        with step("read", "the DICOM file"):
            datasets = [studies.read_instance(instance_id, blob, every_element=True)
                        for instance_id, blob in files]
        exam = exams.assemble(datasets, f"orthanc:{study_id[:8]}", ris_texts=ris_texts)
    except TransientError:
        raise
    except PermanentError as exc:
        if isinstance(exc, UnforeseenInput):  # type only: the cause's text may quote PHI
            log.warning("study %s: %s", study_id, exc)
        return Prepared(study_id, refusal=str(exc), unforeseen=isinstance(exc, UnforeseenInput))
    except Exception as exc:  # outside every step (a bug): still a refusal, the batch goes on
        log.warning("study %s: unexpected %s while preparing it", study_id, type(exc).__name__)
        return Prepared(study_id, refusal=f"prepare: the study's files: unexpected "
                                          f"{type(exc).__name__} in {origin(exc)}", unforeseen=True)
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
