"""A study's instances from Orthanc, read by pydicom: what ingest and screening start from."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from pipelines.errors import InvalidStudy

if TYPE_CHECKING:
    from pydicom import Dataset

    from pipelines.pacs.client import OrthancClient


def download(client: OrthancClient, study_id: str, workers: int) -> list[Dataset]:
    """Every instance of a study, read by pydicom (downloads in parallel)."""
    import pydicom

    ids = [str(i["ID"]) for i in client.study_instances(study_id)]
    blobs = client.instance_files(ids, workers)
    out: list[Dataset] = []
    for instance_id, blob in zip(ids, blobs, strict=True):
        try:
            out.append(pydicom.dcmread(io.BytesIO(blob)))
        except Exception as exc:
            raise InvalidStudy(f"instance {instance_id} is not readable DICOM: {exc}") from exc
    return out
