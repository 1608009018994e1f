"""A full disk met while publishing (pipelines/publish.py) is one clear error, DiskFull,
naming the path and its file system, with nothing half-written published; other write
errors pass unchanged. The real thing (tmpfs filled under ingest and screening) is
tests/reliability/test_disk_full.py."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import DiskFull, PermanentError, TransientError
from pipelines.ingest import lake
from pipelines.publish import disk_full_named, publish_dir, publish_linked_dir, write_file


def _fill_from_dev_full(tmp: Path) -> None:
    """Write as a full disk answers: /dev/full fails every write with the kernel's ENOSPC."""
    tmp.write_bytes(b"partial")
    with open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x" * 4096)


def _no_space(tmp: Path) -> None:
    tmp.write_bytes(b"partial")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_write_file_names_the_path_when_the_disk_is_full_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "night" / "batch.npz"
    write_file(target, lambda tmp: tmp.write_bytes(b"complete old version"))
    with pytest.raises(DiskFull) as raised:
        write_file(target, _fill_from_dev_full)
    message = str(raised.value)
    assert str(target) in message and "ENOSPC" in message and "No space left on device" in message
    assert "file system mounted at /" in message
    assert target.read_bytes() == b"complete old version"
    assert sorted(p.name for p in target.parent.iterdir()) == ["batch.npz"]  # no temporary left
    assert isinstance(raised.value.__cause__, OSError) and raised.value.__cause__.errno == errno.ENOSPC


def test_a_full_disk_is_retryable_never_a_permanent_refusal() -> None:
    # ingest quarantines a study (and moves its watermark past it) on a PermanentError: a full
    # disk must never do that, the study is fine and must be ingested once space is back
    assert issubclass(DiskFull, TransientError) and not issubclass(DiskFull, PermanentError)


def test_a_quota_counts_as_a_full_disk(tmp_path: Path) -> None:
    with pytest.raises(DiskFull, match="EDQUOT"), disk_full_named(tmp_path / "x"):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))


def test_other_write_errors_pass_unchanged(tmp_path: Path) -> None:
    def refused(tmp: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        write_file(tmp_path / "a.json", refused)
    with pytest.raises(ValueError), publish_dir(tmp_path / "folder"):
        raise ValueError("not a disk problem")
    assert list(tmp_path.iterdir()) == []


def test_publish_dir_leaves_the_published_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "images" / "exam"
    with publish_dir(target, staging_root=tmp_path / ".staging") as staging:
        (staging / "R-CC.npy").write_bytes(b"old")
    root = tmp_path / ".staging"
    with pytest.raises(DiskFull) as raised, publish_dir(target, staging_root=root) as staging:
        _no_space(staging / "R-CC.npy")
    assert str(tmp_path / ".staging") in str(raised.value) and str(target) in str(raised.value)
    assert (target / "R-CC.npy").read_bytes() == b"old"
    assert list((tmp_path / ".staging").iterdir()) == []


def test_publish_linked_dir_keeps_showing_the_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "worklists" / "2026-10-12"
    with publish_linked_dir(target) as staged:
        (staged / "index.html").write_text("night")
    with pytest.raises(DiskFull, match="ENOSPC"), publish_linked_dir(target) as staged:
        _no_space(staged / "index.html")
    assert (target / "index.html").read_text() == "night"
    assert len(list(target.parent.iterdir())) == 2  # the link and its one version


_SHORT_WRITE = """
import resource, signal, sys
from pathlib import Path
import numpy as np
from pipelines.ingest import lake
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))  # a file cannot grow past 16 KB
arr = np.zeros(65536, np.uint16)
for name, save in (("numpy", np.save), ("lake", lake.save_view)):
    try:
        save(Path(sys.argv[1]) / f"{name}.npy", arr)
    except OSError as exc:
        print(name, exc.errno)
"""


def test_lake_views_report_a_short_write_with_its_errno(tmp_path: Path) -> None:
    # numpy writes an array to a real file with fwrite: a file system that takes only part of
    # it (a full disk, as on a filled tmpfs) gets "OSError: 131072 requested and 16256 written"
    # without an errno, which no handler can tell from any other failure; the lake's writer
    # keeps the kernel's errno (here EFBIG: a file size limit stands in for the full disk)
    out = subprocess.run([sys.executable, "-c", _SHORT_WRITE, str(tmp_path)], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == ["numpy", "None", "lake", str(errno.EFBIG)]


def test_a_lake_exam_is_published_whole_or_not_at_all(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    views = {v: np.full((8, 6), 0.5, np.float32) for v in ("R-CC", "L-CC", "R-MLO", "L-MLO")}
    real_save, saved = lake.save_view, list[Path]()

    def save_until_full(path: Path, arr: np.ndarray) -> None:
        if len(saved) == 4 + 2:  # the disk fills at the third view of the second exam
            _no_space(path)
        saved.append(path)
        real_save(path, arr)

    monkeypatch.setattr(lake, "save_view", save_until_full)
    lake.publish_exam(tmp_path, "2026-01-01", "exam0", views)  # stored before
    with pytest.raises(DiskFull) as raised:
        lake.publish_exam(tmp_path, "2026-01-02", "exam1", views)
    assert str(tmp_path / lake.STAGING) in str(raised.value)
    assert [p.name for p in (tmp_path / "images").iterdir()] == ["study_date=2026-01-01"]
    assert len(list((tmp_path / "images" / "study_date=2026-01-01" / "exam0").iterdir())) == 4
    assert list((tmp_path / lake.STAGING).iterdir()) == []
