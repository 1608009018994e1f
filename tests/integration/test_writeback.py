"""Write-back into a real Orthanc: SR + heatmap series land in the original study, a rerun
replaces them (never duplicates), originals stay byte-identical, references resolve."""

from __future__ import annotations

import hashlib
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from pipelines import config
from pipelines.imaging.preprocess import preprocess
from pipelines.ingest import exams
from pipelines.pacs import studies
from pipelines.pacs.client import OrthancClient
from pipelines.screening.writeback import ExamFinding, ViewFinding, write_back
from tests.integration.stack import Stack

DATE = "2026-09-14"
REASON = "motion blur: edge sharpness 0.21 below the limit 0.35"


@pytest.fixture
def client(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[OrthancClient]:
    """An OrthancClient on the module's stack (settings from the stack's environment)."""
    for key, value in stack.env.items():
        if key.startswith("RADFLOW_"):
            monkeypatch.setenv(key, value)
    config.reset_settings()
    with OrthancClient() as c:
        yield c
    config.reset_settings()


@pytest.fixture(scope="module")
def pushed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("synth")
    result = stack.radflow("synth", "--exams", "2", "--date", DATE, "--site", "general",
                           "--seed", "61", "--out", str(out))
    assert result["stored"] == 10
    stack.wait_stable()
    return result


def _finding(datasets: list[pydicom.Dataset], version: str, shift: float = 0.0) -> ExamFinding:
    views = []
    for i, ds in enumerate(d for d in datasets if d.Modality == "MG"):
        view = f"{ds.ImageLaterality}-{ds.ViewPosition}"
        image = preprocess(ds, str(ds.ImageLaterality), 128, 96)
        heat = np.zeros((8, 6), np.float32)
        heat[i % 8, i % 6] = 0.9
        views.append(ViewFinding(view, ds, 0.2 + 0.1 * i + shift, image, heat,
                                 REASON if view == "L-MLO" else None))
    assert len(views) == 4
    return ExamFinding(task="mammo", exam_score=0.5 + shift, suspicion=6, flagged=True,
                       model_name="mammo-classifier", model_version=version, views=tuple(views))


def _ours(client: OrthancClient, study_id: str) -> list[dict[str, Any]]:
    return [s for s in client.study_series(study_id)
            if s["MainDicomTags"].get("Manufacturer") == "radflow"]


def _fingerprint(client: OrthancClient, study_id: str) -> dict[str, str]:
    """Orthanc id -> SHA-256 of the file, for every instance of a study."""
    return {str(i["ID"]): hashlib.sha256(client.instance_file(str(i["ID"]))).hexdigest()
            for i in client.study_instances(study_id)}


def _referenced(ds: pydicom.Dataset, *sequences: str) -> set[str]:
    """Every ReferencedSOPInstanceUID anywhere inside the named top-level sequences."""
    found: set[str] = set()

    def walk(d: pydicom.Dataset) -> None:
        for elem in d:
            if elem.keyword == "ReferencedSOPInstanceUID":
                found.add(str(elem.value))
            elif elem.VR == "SQ":
                for item in elem.value:
                    walk(item)

    for keyword in sequences:
        for item in ds.get(keyword, []):
            walk(item)
    return found


def test_rerun_replaces_and_references_resolve(stack: Stack, pushed: dict[str, Any],
                                               client: OrthancClient, tmp_path: Path) -> None:
    found = client.find_studies(DATE.replace("-", ""))
    assert len(found) == 2
    target, other = found
    before_target, before_other = _fingerprint(client, target), _fingerprint(client, other)
    assert len(before_target) == 5  # 4 views + the synthetic report SR
    datasets = studies.download(client, target, workers=2)

    first = write_back(client, _finding(datasets, "1"))
    assert (first.instances_stored, first.replaced) == (6, 0)
    again = write_back(client, _finding(datasets, "1"))
    assert (again.instances_stored, again.replaced) == (0, 0)
    assert again.sr_sop_instance_uid == first.sr_sop_instance_uid
    newer = write_back(client, _finding(datasets, "2", shift=0.05))
    assert (newer.instances_stored, newer.replaced) == (6, 6)
    assert newer.sr_sop_instance_uid != first.sr_sop_instance_uid
    assert newer.study_id == target

    ours = _ours(client, target)
    by_modality = {s["MainDicomTags"]["Modality"]: s for s in ours  # the CAD SR is SR too
                   if "CAD-SR" not in s["MainDicomTags"].get("SeriesDescription", "")}
    assert len(ours) == 3 and set(by_modality) == {"SR", "OT"}
    assert len(by_modality["SR"]["Instances"]) == 1 and len(by_modality["OT"]["Instances"]) == 4
    assert by_modality["SR"]["MainDicomTags"]["SeriesDescription"] == \
        "radflow mammo SR mammo-classifier v2"
    assert by_modality["OT"]["MainDicomTags"]["SeriesInstanceUID"] == newer.sc_series_uid

    # the originals: the same instances, byte for byte; the other study untouched
    after = _fingerprint(client, target)
    assert {k: after[k] for k in before_target} == before_target
    assert len(after) == len(before_target) + 6
    assert _fingerprint(client, other) == before_other
    assert _ours(client, other) == []

    # every reference of the SR and of the heatmaps resolves to an instance of this study
    in_study = {str(i["MainDicomTags"]["SOPInstanceUID"]) for i in client.study_instances(target)}
    originals = {str(ds.SOPInstanceUID) for ds in datasets if ds.Modality == "MG"}
    sr_blob = client.instance_file(str(by_modality["SR"]["Instances"][0]))
    sr = pydicom.dcmread(io.BytesIO(sr_blob))
    assert sr.SOPInstanceUID == newer.sr_sop_instance_uid
    assert sr.StudyInstanceUID == datasets[0].StudyInstanceUID
    assert _referenced(sr, "ContentSequence") == originals and originals <= in_study
    assert _referenced(sr, "CurrentRequestedProcedureEvidenceSequence") == originals
    for sc_id in by_modality["OT"]["Instances"]:
        sc = pydicom.dcmread(io.BytesIO(client.instance_file(str(sc_id))))
        assert _referenced(sc, "SourceImageSequence") <= originals
        assert len(_referenced(sc, "SourceImageSequence")) == 1
        assert sc.pixel_array.shape == (128, 96, 3)

    # dcmtk reads the SR Orthanc serves
    path = tmp_path / "sr.dcm"
    path.write_bytes(sr_blob)
    dump = subprocess.run(["dsrdump", "+Pl", str(path)], capture_output=True, text=True,
                          check=False)
    assert dump.returncode == 0 and not dump.stderr, dump.stderr
    assert REASON in dump.stdout and "Suspicion score (1-10)" in dump.stdout


def test_ingest_download_still_picks_the_originals(pushed: dict[str, Any],
                                                   client: OrthancClient) -> None:
    """With radflow's objects in the study, the exam still assembles from its own views."""
    target = client.find_studies(DATE.replace("-", ""))[0]
    write_back(client, _finding(studies.download(client, target, workers=2), "2", shift=0.05))
    datasets = studies.download(client, target, workers=2)
    assert any(str(ds.get("Manufacturer", "")) == "radflow" for ds in datasets)
    views, _ = exams.pick_views(datasets, "it")
    assert {str(ds.get("Manufacturer", "")) for ds in views.values()} != {"radflow"}
    assert all(ds.Modality == "MG" for ds in views.values())
