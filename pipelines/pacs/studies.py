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
    return [ds for _, ds in download_instances(client, study_id, workers)]


def download_instances(client: OrthancClient, study_id: str, workers: int) -> list[tuple[str, Dataset]]:
    """(Orthanc instance id, dataset) of every instance of a study (downloads in parallel)."""
    ids = [str(i["ID"]) for i in client.study_instances(study_id)]
    return list(zip(ids, read_instances(client, ids, workers), strict=True))


def read_instances(client: OrthancClient, instance_ids: list[str], workers: int,
                   stop_before_pixels: bool = False) -> list[Dataset]:
    """The instances, in order, read by pydicom (downloads in parallel); `stop_before_pixels`
    keeps their headers only.

    Raises:
        InvalidStudy: an instance is not readable DICOM (named by its Orthanc id).
    """
    import pydicom

    blobs = client.instance_files(instance_ids, workers)
    out: list[Dataset] = []
    for instance_id, blob in zip(instance_ids, blobs, strict=True):
        try:
            out.append(pydicom.dcmread(io.BytesIO(blob), stop_before_pixels=stop_before_pixels))
        except Exception as exc:
            raise InvalidStudy(f"instance {instance_id} is not readable DICOM: {exc}") from exc
    return out
