"""A study's instances from Orthanc, read by pydicom: what ingest and screening start from."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from pipelines.errors import InvalidStudy, origin

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
    blobs = client.instance_files(instance_ids, workers)
    return [read_instance(i, blob, stop_before_pixels)
            for i, blob in zip(instance_ids, blobs, strict=True)]


def read_instance(instance_id: str, blob: bytes, stop_before_pixels: bool = False, *,
                  every_element: bool = False) -> Dataset:
    """One instance's DICOM file, read by pydicom.

    Args:
        instance_id: the instance's Orthanc id (names it in a refusal).
        blob: the DICOM file.
        stop_before_pixels: read the header only.
        every_element: also convert every data element from its bytes now, and check the
            TransferSyntaxUID. pydicom converts an element when it is first read: ingest,
            whose de-identification reads them all, refuses a file with an element that
            cannot be read here, naming it, instead of in whichever step reads it first.

    Raises:
        InvalidStudy: the file is not readable DICOM, or (`every_element`) one of its data
            elements is not, or its TransferSyntaxUID names no transfer syntax (named by
            the instance's Orthanc id and the element's keyword and tag).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(blob), stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise InvalidStudy(f"instance {instance_id} is not a DICOM file: no 'DICM' prefix or "
                           "File Meta Information") from exc
    except Exception as exc:
        raise InvalidStudy(f"instance {instance_id} is not readable DICOM: its File Meta Information or "
                           f"data elements cannot be parsed ({type(exc).__name__} in {origin(exc)})") from exc
    if every_element:
        _convert_elements(ds, instance_id, "")
        if getattr(ds, "file_meta", None) is not None:
            _convert_elements(ds.file_meta, instance_id, "file meta ")
        _check_transfer_syntax(ds, instance_id)
    return ds


def _check_transfer_syntax(ds: Dataset, instance_id: str) -> None:
    """The file meta's TransferSyntaxUID must name a transfer syntax: decoding relies on it."""
    from pydicom.uid import UID

    value = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if not value:
        raise InvalidStudy(f"instance {instance_id}: TransferSyntaxUID missing from the File Meta "
                           "Information")
    if not isinstance(value, UID) or not value.is_transfer_syntax:
        readable = isinstance(value, str) and len(value) <= 64 and value.isprintable()
        shown = value if readable else "of another kind"
        raise InvalidStudy(f"instance {instance_id}: TransferSyntaxUID {shown} is not a transfer syntax")


def _convert_elements(ds: Dataset, instance_id: str, path: str) -> None:
    for tag in list(ds.keys()):
        name = f"{path}{keyword_for(tag)}"
        try:
            elem = ds[tag]
            items = elem.value if elem.VR == "SQ" else ()
        except Exception as exc:
            raise InvalidStudy(f"instance {instance_id}: data element {name} cannot be read "
                               f"({type(exc).__name__} in {origin(exc)})") from exc
        for index, item in enumerate(items):
            _convert_elements(item, instance_id, f"{name}[{index}].")


def keyword_for(tag: int) -> str:
    """An element's keyword and tag, "Rows (0028,0010)" (the tag alone if private or unknown)."""
    from pydicom.datadict import keyword_for_tag

    group, element = tag >> 16, tag & 0xFFFF
    keyword = keyword_for_tag(tag) if group % 2 == 0 else ""
    return f"{keyword} ({group:04X},{element:04X})" if keyword else f"({group:04X},{element:04X})"
