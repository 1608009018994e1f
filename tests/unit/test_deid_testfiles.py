"""Real DICOM test files (pydicom, pydicom-data, deid-data): de-identification either
succeeds and passes its own PHI check, or refuses with a PermanentError (a file without
PatientID); it never crashes, and the PHI check raises no false alarm on them."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pydicom.data
import pytest

from pipelines.deid import (
    MemoryKeys,
    check_no_phi,
    deidentify,
    header_json,
    original_identifiers,
)
from pipelines.errors import PermanentError, PhiDetected


def shipped_files() -> list[Path]:
    """The files on disk (pydicom's own lookup would try to download missing ones)."""
    import data_store  # pydicom-data
    import deid_data

    roots = [Path(pydicom.data.__file__).parent / "test_files",
             Path(data_store.__file__).parent / "data", Path(deid_data.__file__).parent / "data"]
    return sorted(p for root in roots for p in root.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc", ".zip", ".json", ".txt"))


def test_every_shipped_test_file_is_deidentified_or_refused() -> None:
    keys, done, refused = MemoryKeys(), 0, 0
    for path in shipped_files():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, force=True)
            except Exception:  # not DICOM at all: ingest's reader quarantines it
                continue
            try:
                out = deidentify(ds, keys)
                check_no_phi(out, original_identifiers(ds))
                header_json(out)
                done += 1
            except PhiDetected as exc:
                pytest.fail(f"{path.name}: {exc}")
            except PermanentError:
                refused += 1
            except Exception as exc:  # pragma: no cover - the failure this test is for
                pytest.fail(f"{path.name}: {type(exc).__name__}: {exc}")
    assert done >= 100, (done, refused)
