"""Bad input: the DICOM test files of pydicom, pydicom-data and deid-data, then a good exam.

Every file is POSTed to Orthanc's REST API (storescu would refuse some of them before
Orthanc sees them). One ingest must then end normally with every study either ingested
or quarantined with a reason, none hanging, and the good exam sent last still ingested.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from pipelines.imaging.storage import from_lake
from tests.integration.stack import Stack

# Enough files from each package to cover its encodings and oddities, few enough that
# the module stays within a few minutes (files are taken in a stable, spread-out order).
PER_PACKAGE = int(os.environ.get("RADFLOW_BAD_INPUT_FILES", "80"))
# Pixel test: files up to this size, each sent as the four views of one screening exam.
PIXEL_FILE_MAX_BYTES = 1_200_000
VIEWS = [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]


def shipped_files() -> dict[str, list[Path]]:
    """The DICOM files shipped by each package, smallest first within a package."""
    import deid_data
    from pydicom.data import get_testdata_files

    shipped = [Path(p) for p in get_testdata_files() if Path(p).is_file()]
    deid_root = Path(deid_data.__file__).parent
    packages = {
        "pydicom": [p for p in shipped if "data_store" not in p.parts],
        "pydicom-data": [p for p in shipped if "data_store" in p.parts],
        "deid-data": [p for p in deid_root.rglob("*") if p.is_file()
                      and p.suffix not in (".py", ".pyc", ".md", ".txt")],
    }
    return {name: sorted(files, key=lambda p: (p.stat().st_size, p.name))[:PER_PACKAGE]
            for name, files in packages.items()}


def orthanc(stack: Stack) -> tuple[str, tuple[str, str]]:
    url = f"http://127.0.0.1:{stack.env['RADFLOW_ORTHANC_HTTP_PORT']}"
    secret = (stack.state / "secrets" / "orthanc.env").read_text().strip().split("=", 1)[1]
    return url, ("radflow", secret)


def wait_stable(url: str, auth: tuple[str, str], timeout: float = 180) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        studies = httpx.get(f"{url}/studies", params={"expand": 1}, auth=auth, timeout=60).json()
        if studies and all(s["IsStable"] for s in studies):
            return [s["ID"] for s in studies]
        time.sleep(1)
    raise AssertionError("Orthanc studies did not become stable")


@pytest.mark.timeout(600)
def test_every_shipped_test_file_is_ingested_or_quarantined_and_the_batch_goes_on(
        stack: Stack, tmp_path: Path) -> None:
    url, auth = orthanc(stack)
    accepted: dict[str, int] = {}
    with httpx.Client(auth=auth, timeout=120) as client:
        for package, files in shipped_files().items():
            assert files, f"no test files found for {package}"
            for path in files:
                answer = client.post(f"{url}/instances", content=path.read_bytes())
                # Orthanc refuses what is not DICOM (400) or lacks the UIDs it indexes by.
                accepted[package] = accepted.get(package, 0) + int(answer.status_code == 200)
    assert all(accepted.get(p, 0) > 0 for p in ("pydicom", "pydicom-data", "deid-data")), accepted

    good = stack.radflow("synth", "--exams", "1", "--date", "2026-08-01", "--site", "general",
                         "--seed", "41", "--out", str(tmp_path / "good"))
    assert good["stored"] == 5
    good_study = str(pydicom.dcmread(next((tmp_path / "good").rglob("R-CC.dcm"))).StudyInstanceUID)
    studies = wait_stable(url, auth)

    out = stack.radflow("ingest", timeout=480)
    assert out["new_studies"] == len(studies)
    assert out["ingested_exams"] + len(out["quarantined"]) == len(studies)
    assert all(q["reason"].strip() for q in out["quarantined"])
    assert stack.query("SELECT count(*) AS n FROM pseudonyms WHERE kind = 'study' AND original = :u",
                       u=good_study)[0]["n"] == 1, "the good exam sent last was not ingested"
    held = stack.query("SELECT count(*) AS n FROM quarantine WHERE stage = 'ingest'")[0]["n"]
    assert held == len(out["quarantined"])


def as_screening_exam(path: Path) -> list[bytes] | None:
    """The file's pixels (any syntax, shape, depth or damage) as the 4 views of a new MG study.

    Most shipped files are CT, MR, US...: ingest would refuse them on modality before
    decoding. Relabelled, their pixel data reaches the decoders and preprocessing.
    """
    import io

    try:
        original = pydicom.dcmread(path, force=True)
    except Exception:
        return None
    if "PixelData" not in original or "TransferSyntaxUID" not in original.get("file_meta", {}):
        return None
    study, blobs = generate_uid(), []
    for side, position in VIEWS:
        ds = pydicom.dcmread(path, force=True)
        ds.Modality, ds.ImageLaterality, ds.ViewPosition = "MG", side, position
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.StudyInstanceUID, ds.SOPInstanceUID = study, generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "ViewCodeSequence" in ds:
            del ds.ViewCodeSequence
        buffer = io.BytesIO()
        try:
            ds.save_as(buffer, enforce_file_format=True)
        except Exception:
            return None
        blobs.append(buffer.getvalue())
    return blobs


@pytest.mark.timeout(600)
def test_the_pixels_of_every_shipped_file_reach_the_decoders_without_stopping_the_batch(
        stack: Stack, tmp_path: Path) -> None:
    url, auth = orthanc(stack)
    before = {s for s in httpx.get(f"{url}/studies", auth=auth).json()}
    sent: dict[str, int] = {}
    with httpx.Client(auth=auth, timeout=120) as client:
        for package, files in shipped_files().items():
            for path in files:
                if path.stat().st_size > PIXEL_FILE_MAX_BYTES:
                    continue
                blobs = as_screening_exam(path)
                if blobs is None:
                    continue
                codes = [client.post(f"{url}/instances", content=b).status_code for b in blobs]
                sent[package] = sent.get(package, 0) + int(codes == [200] * 4)
    assert all(sent.get(p, 0) > 0 for p in ("pydicom", "pydicom-data", "deid-data")), sent

    good = stack.radflow("synth", "--exams", "1", "--date", "2026-08-02", "--site", "north",
                         "--seed", "42", "--out", str(tmp_path / "good"))
    assert good["stored"] == 5
    good_study = str(pydicom.dcmread(next((tmp_path / "good").rglob("R-CC.dcm"))).StudyInstanceUID)
    new = set(wait_stable(url, auth)) - before

    out = stack.radflow("ingest", timeout=480)
    assert out["new_studies"] == len(new) == sum(sent.values()) + 1
    assert out["ingested_exams"] + len(out["quarantined"]) == len(new)
    assert out["ingested_exams"] >= 2  # some shipped pixels are fine mammography input
    assert all(q["reason"].strip() for q in out["quarantined"])
    assert stack.query("SELECT count(*) AS n FROM pseudonyms WHERE kind = 'study' AND original = :u",
                       u=good_study)[0]["n"] == 1, "the good exam sent last was not ingested"
    # what was ingested is usable model input, whatever the source pixels were
    for row in stack.query("SELECT image_path FROM images"):
        arr = from_lake(np.load(row["image_path"]))
        assert arr.ndim == 2 and np.isfinite(arr).all() and 0.0 <= arr.min() <= arr.max() <= 1.0
