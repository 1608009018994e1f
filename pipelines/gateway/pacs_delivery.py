"""radflow's result objects of one exam, from the gateway to the hospital PACS.

What is sent: every instance of the study's radflow series of the task (Comprehensive
SR, Mammography CAD SR, heatmap secondary captures), by C-STORE from the gateway Orthanc
(`/modalities/pacs/store`) or by STOW-RS when the PACS speaks DICOMweb.

Replacement, never duplicates: the objects' UIDs are name-based (same result, same UIDs),
so resending an unchanged result stores nothing new. A changed result (another model
version, another flag) has new UIDs; once it is stored, the objects it replaces are
rejected the IHE IOCM way: a Key Object Selection document titled "Rejected for Quality
Reasons" (DCM 113001) that lists them, which an IOCM image manager hides or deletes. The
PACS then holds exactly one current (not rejected) SR per exam and task.
"""

from __future__ import annotations

import io
import uuid
from typing import TYPE_CHECKING, Any

from pipelines.errors import PermanentError, TransientError
from pipelines.gateway.sending import Context, Outcome
from pipelines.pacs.client import PACS_MODALITY, OrthancClient
from pipelines.pacs.ours import is_ours

if TYPE_CHECKING:
    from pydicom import Dataset

    from pipelines.config import RadflowSettings

# what `content` of a delivery row holds per instance: SOPInstanceUID -> [SOPClassUID, SeriesInstanceUID]
Objects = dict[str, list[str]]


def objects_of(client: OrthancClient, study_id: str, task: str) -> tuple[Objects, list[str]]:
    """radflow's instances of `task` in a gateway study: ({SOP UID: [class, series]}, Orthanc ids)."""
    found: Objects = {}
    ids: list[str] = []
    for series in client.study_series(study_id):
        tags = series.get("MainDicomTags", {})
        if not is_ours(str(tags.get("Manufacturer", "")), str(tags.get("SeriesDescription", "")), task):
            continue
        for inst in client.series_instances(str(series["ID"])):
            sop = str(inst.get("MainDicomTags", {}).get("SOPInstanceUID", ""))
            found[sop] = [client.sop_class(str(inst["ID"])), str(tags.get("SeriesInstanceUID", ""))]
            ids.append(str(inst["ID"]))
    return found, ids


def send(client: OrthancClient, s: RadflowSettings, instance_ids: list[str]) -> None:
    """Send gateway instances to the PACS: STOW-RS when its DICOMweb URL is set, else C-STORE.

    Raises:
        TransientError: the PACS (or the gateway) did not answer.
        PermanentError: the PACS refused an object (its reason named).
    """
    if s.pacs_dicomweb_url:
        stow(s, [client.instance_file(i) for i in instance_ids])
    else:
        client.modality_store(PACS_MODALITY, instance_ids, s.delivery_timeout_s)


def stow(s: RadflowSettings, files: list[bytes]) -> None:
    """STOW-RS (PS3.18 10.5) of DICOM files to `<pacs_dicomweb_url>/studies`."""
    import httpx

    boundary = f"radflow-{uuid.uuid4().hex}"
    body = io.BytesIO()
    for f in files:
        body.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        body.write(f)
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    secret = s.pacs_dicomweb_password.get_secret_value() if s.pacs_dicomweb_password else ""
    auth = (s.pacs_dicomweb_username, secret) if s.pacs_dicomweb_username else None
    url = f"{str(s.pacs_dicomweb_url).rstrip('/')}/studies"
    try:
        answer = httpx.post(url, content=body.getvalue(), auth=auth, timeout=s.delivery_timeout_s,
                            headers={"Content-Type": f'multipart/related; type="application/dicom"; '
                                                     f"boundary={boundary}",
                                     "Accept": "application/dicom+json"})
    except httpx.TransportError as exc:
        raise TransientError(f"the PACS's DICOMweb at {url} did not answer: {exc}") from exc
    if answer.status_code >= 500:
        raise TransientError(f"STOW-RS to {url} failed: HTTP {answer.status_code}")
    if answer.status_code >= 400 or _failed_sops(answer):
        raise PermanentError(f"STOW-RS to {url} refused {_failed_sops(answer) or 'the objects'}: "
                             f"HTTP {answer.status_code}")


def _failed_sops(answer: Any) -> int:
    """How many instances the STOW-RS response lists as failed (Failed SOP Sequence 00081198)."""
    try:
        data = answer.json()
    except ValueError:
        return 0
    return len((data or {}).get("00081198", {}).get("Value", []) or [])


def rejection_note(template: Dataset, rejected: Objects, series_uid: str, sop_uid: str) -> Dataset:
    """A KOS "Rejected for Quality Reasons" (IHE IOCM) listing superseded radflow objects.

    Args:
        template: a current radflow object of the same study (patient and study attributes).
        rejected: the superseded instances {SOP UID: [SOP class, series UID]}.
        series_uid: the note's series; sop_uid: its instance UID (name-based, so a rerun of
            the same rejection stores nothing new).
    """
    import highdicom as hd
    from pydicom import Dataset as _Dataset
    from pydicom.sr.codedict import codes

    from pipelines.pacs.policy import RADFLOW_MANUFACTURER

    refs = []
    for sop, (sop_class, series) in sorted(rejected.items()):
        ref = _Dataset()
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                        "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
            setattr(ref, keyword, template.get(keyword, ""))
        ref.SOPClassUID, ref.SOPInstanceUID, ref.SeriesInstanceUID = sop_class, sop, series
        ref.Modality = "SR" if sop_class.startswith("1.2.840.10008.5.1.4.1.1.88") else "OT"
        refs.append(ref)
    content = hd.ko.KeyObjectSelection(document_title=codes.DCM.RejectedForQualityReasons,
                                       referenced_objects=refs,
                                       description="replaced by a newer radflow result")
    return hd.ko.KeyObjectSelectionDocument(
        evidence=refs, content=content, series_instance_uid=series_uid, series_number=9099,
        sop_instance_uid=sop_uid, instance_number=1, manufacturer=RADFLOW_MANUFACTURER)


def reject(client: OrthancClient, s: RadflowSettings, current_id: str, stale: Objects) -> None:
    """Tell the PACS that `stale` objects are replaced: a rejection note (KOS) built from a
    current object's patient and study, sent like the results; the gateway keeps no copy."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    template = dcmread(io.BytesIO(client.instance_file(current_id)), stop_before_pixels=True)
    keys = [str(template.StudyInstanceUID), "radflow-rejection", *sorted(stale)]
    note = rejection_note(template, stale, generate_uid(entropy_srcs=[*keys, "series"]),
                          generate_uid(entropy_srcs=keys))
    buf = io.BytesIO()
    note.save_as(buf, enforce_file_format=True)
    if s.pacs_dicomweb_url:
        stow(s, [buf.getvalue()])
        return
    stored = client.upload(buf.getvalue())
    try:
        client.modality_store(PACS_MODALITY, [str(stored["ID"])], s.delivery_timeout_s)
    finally:
        client.delete_instance(str(stored["ID"]))


def to_pacs(ctx: Context) -> Outcome:
    """Send the exam's current radflow objects unless the PACS holds exactly them, then
    reject (IOCM) the ones they replace."""
    objects, ids = objects_of(ctx.client, ctx.study_id, ctx.task)
    if not objects:
        raise PermanentError(f"the gateway study holds no radflow result of task {ctx.task} "
                             "(was the night written back?)")
    if ctx.already_sent("instances", objects):
        return Outcome({"instances": objects}, [], sent=False)
    before: Objects = dict(((ctx.previous or {}).get("content") or {}).get("instances", {}))
    send(ctx.client, ctx.settings, ids)
    stale = {sop: ref for sop, ref in before.items() if sop not in objects}
    if stale:
        reject(ctx.client, ctx.settings, ids[0], stale)
    return Outcome({"instances": objects}, sorted(stale), sent=True)
