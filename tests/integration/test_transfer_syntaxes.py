"""Every transfer syntax pydicom decodes, sent by a real DICOM client, ingested as the original.

One synthetic exam per syntax (12-bit site) is re-encoded (pydicom encoders or dcmtk),
C-STOREd by dcmtk `storescu` proposing exactly that syntax, checked to be stored by
Orthanc in it, ingested, and its lake arrays compared with the preprocessed uncompressed
original: equal for lossless syntaxes, close for lossy ones.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest

from pipelines.imaging.preprocess import preprocess
from pipelines.imaging.storage import from_lake, to_lake
from pipelines.imaging.transcode import MAX_BITS, SYNTAXES, encode_file, is_lossless, with_bits_stored
from tests.integration.stack import Stack

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed")
SYNTAX_LIST = list(SYNTAXES)
# storescu's option proposing each syntax (plus the uncompressed ones, for the SR report).
PROPOSE = {
    "1.2.840.10008.1.2.4.50": ["-xy"], "1.2.840.10008.1.2.4.51": ["-xx"],
    "1.2.840.10008.1.2.4.70": ["-xs"], "1.2.840.10008.1.2.4.80": ["-xt"],
    "1.2.840.10008.1.2.4.81": ["-xu"], "1.2.840.10008.1.2.4.90": ["-xv"],
    "1.2.840.10008.1.2.4.91": ["-xw"], "1.2.840.10008.1.2.5": ["-xr"],
    "1.2.840.10008.1.2.1.99": ["-xd"], "1.2.840.10008.1.2.2": ["-xb"],
}
# JPEG process 14 with a selection value other than 1 has no storescu flag: a profile.
P14_CONFIG = """\
[[TransferSyntaxes]]
[P14]
TransferSyntax1 = 1.2.840.10008.1.2.4.57
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = OppositeEndianExplicit
TransferSyntax3 = LittleEndianImplicit
[[PresentationContexts]]
[P14Contexts]
PresentationContext1 = 1.2.840.10008.5.1.4.1.1.1.2\\P14
PresentationContext2 = 1.2.840.10008.5.1.4.1.1.88.11\\Uncompressed
[[Profiles]]
[P14]
PresentationContexts = P14Contexts
"""


def orthanc(stack: Stack) -> tuple[str, tuple[str, str]]:
    url = f"http://127.0.0.1:{stack.env['RADFLOW_ORTHANC_HTTP_PORT']}"
    secret = (stack.state / "secrets" / "orthanc.env").read_text().strip().split("=", 1)[1]
    return url, ("radflow", secret)


def wait_stable(stack: Stack, timeout: float = 120) -> None:
    url, auth = orthanc(stack)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        studies = httpx.get(f"{url}/studies", params={"expand": 1}, auth=auth).json()
        if studies and all(s["IsStable"] for s in studies):
            return
        time.sleep(1)
    raise AssertionError("Orthanc studies did not become stable")


def store(stack: Stack, syntax: str, files: list[Path], work: Path) -> None:
    port = stack.env["RADFLOW_ORTHANC_DICOM_PORT"]
    if syntax in PROPOSE:
        propose = PROPOSE[syntax]
    else:
        (work / "storescu.cfg").write_text(P14_CONFIG)
        propose = ["-xf", str(work / "storescu.cfg"), "P14"]
    done = subprocess.run(["storescu", "-aet", "RADFLOW", "-aec", "ORTHANC", *propose,
                           "127.0.0.1", port, *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"storescu {SYNTAXES[syntax][0]}: {done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def sent(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    """Push exam i in SYNTAX_LIST[i]; the reference input per (study UID, view)."""
    work = tmp_path_factory.mktemp("syntaxes")
    stack.radflow("synth", "--exams", str(len(SYNTAX_LIST)), "--date", "2026-09-01", "--site",
                  "east", "--seed", "31", "--scale", "0.08", "--out", str(work / "plain"),
                  "--no-push")
    height, width = 128, 96  # RADFLOW_IMAGE_HEIGHT / _WIDTH defaults; checked on the lake
    references: dict[str, dict[str, np.ndarray]] = {}
    exams = sorted(p for p in (work / "plain").iterdir() if p.is_dir())
    assert len(exams) == len(SYNTAX_LIST)
    for syntax, folder in zip(SYNTAX_LIST, exams, strict=True):
        out = work / SYNTAXES[syntax][0]
        out.mkdir()
        files = [folder / "report.dcm"]
        for path in sorted(folder.glob("?-*.dcm")):
            view = path.stem
            ds = pydicom.dcmread(path)
            if syntax in MAX_BITS:
                ds = with_bits_stored(ds, MAX_BITS[syntax])
            source = out / f"{view}.source.dcm"
            ds.save_as(source, enforce_file_format=True)
            encode_file(source, out / f"{view}.dcm", syntax)
            files.append(out / f"{view}.dcm")
            references.setdefault(str(ds.StudyInstanceUID), {})[view] = preprocess(
                ds, view[0], height, width)
        store(stack, syntax, files, out)
    url, auth = orthanc(stack)
    stored = {httpx.get(f"{url}/instances/{i}/metadata/TransferSyntax", auth=auth).text
              for i in httpx.get(f"{url}/instances", auth=auth).json()}
    assert set(SYNTAX_LIST) <= stored, f"Orthanc stored {sorted(stored)}"
    return references


def test_every_syntax_is_ingested_like_the_uncompressed_original(
        stack: Stack, sent: dict[str, dict[str, np.ndarray]]) -> None:
    wait_stable(stack)
    out = stack.radflow("ingest")
    assert out["quarantined"] == [] and out["ingested_exams"] == len(SYNTAX_LIST)
    checked = 0
    for syntax, (study_uid, views) in zip(SYNTAX_LIST, sent.items(), strict=True):
        rows = stack.query(
            "SELECT i.view, i.image_path FROM images i JOIN pseudonyms p ON p.pseudonym = i.exam_id "
            "WHERE p.kind = 'study' AND p.original = :uid", uid=study_uid)
        assert {r["view"] for r in rows} == set(views), SYNTAXES[syntax][0]
        for row in rows:
            stored = np.load(row["image_path"])
            lake = from_lake(stored)
            reference = views[row["view"]]
            assert lake.shape == reference.shape
            if is_lossless(syntax):
                # equal to the reference at the lake's storage precision (float16 or uint16)
                quantized = from_lake(to_lake(reference) if stored.dtype == np.uint16
                                      else reference.astype(stored.dtype))
                np.testing.assert_array_equal(lake, quantized, err_msg=SYNTAXES[syntax][0])
            else:
                # lossy: the crop box may move by a pixel and min-max scaling a little
                assert float(np.abs(lake - reference).mean()) < 0.05, SYNTAXES[syntax][0]
                assert np.corrcoef(lake.ravel(), reference.ravel())[0, 1] > 0.95, SYNTAXES[syntax][0]
            checked += 1
    assert checked == 4 * len(SYNTAX_LIST)
