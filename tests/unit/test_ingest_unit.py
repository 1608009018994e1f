"""`radflow ingest` against an in-memory stand-in for Orthanc's REST calls.

Checks what hospital IT and the ML team see: counts, quarantine reasons, the watermark,
reruns that add nothing, and that no identifier planted in the DICOM headers reaches
the manifest, the lake, the result or the logs (STYLE rule 14).
"""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
import pytest
import sqlalchemy as sa
from dicom_builders import ACCESSION, PATIENT_ID, PATIENT_NAME, screening_exam, sr_report
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pipelines import db
from pipelines.ingest import run as ingest

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
REPORT = ["RIGHT BREAST: Negative. BI-RADS 1.", "LEFT BREAST: Spiculated mass. BI-RADS 4.",
          "IMPRESSION: Suspicious.", "BI-RADS 4: Suspicious."]


def dicom_bytes(ds: Dataset) -> bytes:
    if getattr(ds, "file_meta", None) is None or "TransferSyntaxUID" not in ds.file_meta:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.SOPClassUID = BASIC_TEXT_SR
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


class FakeOrthanc:
    """The OrthancClient calls ingest makes, answered from memory."""

    url = "http://127.0.0.1:1/fake-orthanc"

    def __init__(self) -> None:
        self.studies: dict[str, list[bytes]] = {}
        self.log: list[dict[str, Any]] = []

    def add(self, study_id: str, datasets: list[Dataset]) -> None:
        self.studies[study_id] = [dicom_bytes(ds) for ds in datasets]
        seq = len(self.log) + 1
        self.log.append({"Seq": seq, "ChangeType": "NewInstance", "ID": f"{study_id}-i"})
        self.log.append({"Seq": seq + 1, "ChangeType": "StableStudy", "ID": study_id})

    def __enter__(self) -> FakeOrthanc:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def changes(self, since: int, limit: int = 500) -> Iterator[dict[str, Any]]:
        yield from (c for c in self.log if c["Seq"] > since)

    def study_instances(self, study_id: str) -> list[dict[str, Any]]:
        return [{"ID": f"{study_id}/{i}"} for i in range(len(self.studies[study_id]))]

    def instance_file(self, instance_id: str) -> bytes:
        study_id, i = instance_id.split("/")
        return self.studies[study_id][int(i)]

    def instance_files(self, instance_ids: list[str], workers: int) -> list[bytes]:
        return [self.instance_file(i) for i in instance_ids]


@pytest.fixture
def pacs(monkeypatch: pytest.MonkeyPatch) -> FakeOrthanc:
    fake = FakeOrthanc()
    monkeypatch.setenv("RADFLOW_IMAGE_HEIGHT", "24")
    monkeypatch.setenv("RADFLOW_IMAGE_WIDTH", "16")
    monkeypatch.setenv("RADFLOW_DOWNLOAD_WORKERS", "2")
    monkeypatch.setenv("RADFLOW_INGEST_WORKERS", "1")  # the fake PACS lives in this process
    monkeypatch.setattr(ingest, "OrthancClient", lambda settings=None: fake)
    return fake


def manifest_rows() -> list[dict[str, Any]]:
    with db.get_engine().connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(db.images)).mappings()]


def test_ingest_publishes_good_exams_quarantines_bad_ones_and_advances_the_watermark(
    pacs: FakeOrthanc, isolated_settings: Path
) -> None:
    good = screening_exam()
    pacs.add("a1b2c3d4-study-good", [*good, sr_report(REPORT, good[0].StudyInstanceUID)])
    pacs.add("e5f6a7b8-study-3views", screening_exam()[:3])
    pacs.add("c9d0e1f2-study-noreport", screening_exam())

    result = ingest.run()

    assert (result.new_studies, result.ingested_exams, result.images) == (3, 2, 8)
    assert result.watermark == 6 and result.previous_watermark == 0
    assert [q.id for q in result.quarantined] == ["e5f6a7b8-study-3views"]
    assert "L-MLO missing" in result.quarantined[0].reason
    rows = manifest_rows()
    labelled = {(r["view"], r["birads"], r["label"]) for r in rows if r["birads"] is not None}
    assert labelled == {("R-CC", 1, 0), ("R-MLO", 1, 0), ("L-CC", 4, 1), ("L-MLO", 4, 1)}
    assert all(Path(r["image_path"]).exists() for r in rows)
    assert len(pd.read_parquet(result.manifest)) == 8
    with db.get_engine().connect() as conn:
        held = conn.execute(sa.select(db.quarantine.c.item_id, db.quarantine.c.reason)).all()
    assert [h[0] for h in held] == ["e5f6a7b8-study-3views"]


def test_a_rerun_adds_nothing_and_a_restabilised_study_replaces_its_rows(pacs: FakeOrthanc) -> None:
    exam = screening_exam()
    pacs.add("a1b2c3d4-study", exam)
    first = ingest.run()
    before = manifest_rows()

    again = ingest.run()
    assert (again.new_studies, again.ingested_exams, again.images) == (0, 0, 4)
    assert again.watermark == first.watermark

    pacs.add("a1b2c3d4-study", exam)  # Orthanc marks the same study stable again
    third = ingest.run()
    after = manifest_rows()
    assert (third.new_studies, third.ingested_exams, third.images) == (1, 1, 4)
    assert {r["exam_id"] for r in after} == {r["exam_id"] for r in before}
    assert {(r["view"], r["instance_id"]) for r in after} == {(r["view"], r["instance_id"]) for r in before}


def test_limit_ingests_the_oldest_studies_and_the_next_run_continues(pacs: FakeOrthanc) -> None:
    for n in range(3):
        pacs.add(f"study-{n}", screening_exam())
    first = ingest.run(limit=2)
    assert (first.new_studies, first.ingested_exams, first.images) == (2, 2, 8)
    second = ingest.run()
    assert (second.new_studies, second.ingested_exams, second.images) == (1, 1, 12)
    assert ingest.run().new_studies == 0


def test_a_study_repeating_already_ingested_instances_is_quarantined_and_the_batch_goes_on(
    pacs: FakeOrthanc,
) -> None:
    original = screening_exam()
    resent = [copy.deepcopy(ds) for ds in original]
    new_study_uid = generate_uid()
    for ds in resent:  # e.g. a corrected study sent again with its instances unchanged
        ds.StudyInstanceUID = new_study_uid
    pacs.add("study-original", original)
    pacs.add("study-resent", resent)
    pacs.add("study-other", screening_exam())

    result = ingest.run()

    assert (result.new_studies, result.ingested_exams, result.images) == (3, 2, 8)
    assert [q.id for q in result.quarantined] == ["study-resent"]
    assert result.watermark == 6
    assert ingest.run().new_studies == 0


def test_no_planted_identifier_reaches_manifest_lake_result_or_logs(
    pacs: FakeOrthanc, isolated_settings: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = screening_exam()
    bad = screening_exam()[1:]
    pacs.add("a1b2c3d4-study-good", [*good, sr_report(REPORT, good[0].StudyInstanceUID)])
    pacs.add("e5f6a7b8-study-bad", bad)
    uids = {str(getattr(ds, tag)) for ds in [*good, *bad]
            for tag in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    phi = {PATIENT_ID, PATIENT_NAME, PATIENT_NAME.replace("^", " "), ACCESSION, "19710304", *uids}

    with caplog.at_level(logging.DEBUG):
        result = ingest.run()

    published = {
        "result": json.dumps(result.as_json(), default=str),
        "manifest rows": repr(manifest_rows()),
        "manifest file": pd.read_parquet(result.manifest).to_csv(),
        "lake paths": "\n".join(str(p) for p in (isolated_settings / "lake").rglob("*")),
        "logs": caplog.text,
    }
    leaks = {where: sorted(p for p in phi if p in text) for where, text in published.items()}
    assert leaks == {where: [] for where in published}
    assert result.ingested_exams == 1 and len(result.quarantined) == 1
