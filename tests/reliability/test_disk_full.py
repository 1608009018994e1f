"""Disk full on the lake and on the staging area (issue 18, item 5), on small tmpfs mounts.

The lake store (RADFLOW_LAKE_STORE, given to every command of this module) is a tmpfs, and
screening's staging area (`<store>/screening/staging`, the staged arrays of a night's
batches) a second, smaller tmpfs mounted inside it. Ingest's staging (`<lake>/.staging`)
cannot be a file system of its own: an exam is published from it into `<lake>/images` by
`os.rename`, which works only within one file system (EXDEV otherwise), so it is tested
where it must live, on the lake's file system, which fills while an exam is written there.

Each check fills its file system (a preallocated filler file) to leave room for about one
and a half of the next writes, measured on what was written before, so the run fails
part-way. Expected: exit code 1 with one JSON error of type DiskFull naming the path and
ENOSPC, no traceback; nothing half-written published (every lake exam folder whole, every
staged batch its rows name complete); no rows for files that did not land; nothing stored
before lost. Then the filler goes and the next run completes with exact counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.models import approve, register_versions
from tests.integration.stack import Stack
from tests.reliability.figures import record

PAGE = 4096
MODEL = "mammo-screening"
BEFORE, NEW = "2026-09-14", "2026-09-15"  # a night stored before the disk fills; the night that fills it
NEW_EXAMS = 3
STORE_SIZE, STAGING_SIZE = "24m", "4m"


@dataclasses.dataclass(frozen=True)
class Disks:
    store: Path  # the lake store's tmpfs
    staging: Path  # screening's staging area, a tmpfs mounted inside the store

    @property
    def lake(self) -> Path:
        return self.store / "lake"


def _mount(point: Path, size: str) -> None:
    point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
                   check=True, capture_output=True, timeout=30)


def _unmount(point: Path) -> None:
    if subprocess.run(["umount", str(point)], capture_output=True, timeout=60).returncode:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=60)  # busy: detach


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Disks]:
    """The two tmpfs mounts, unmounted afterwards whatever happened (inner one first)."""
    root = tmp_path_factory.mktemp("disk-full")
    disks = Disks(root / "store", root / "store" / "screening" / "staging")
    mounted: list[Path] = []
    try:
        for point, size in ((disks.store, STORE_SIZE), (disks.staging, STAGING_SIZE)):
            _mount(point, size)
            mounted.append(point)
        yield disks
    finally:
        for point in reversed(mounted):
            _unmount(point)


@pytest.fixture(scope="module")
def env(stack: Stack, disks: Disks) -> dict[str, str]:
    """Every command's environment: the lake store on the tmpfs, one exam per scoring batch
    (so a night is several batches and can fail between them)."""
    return {**stack.env, "RADFLOW_LAKE_STORE": str(disks.store), "RADFLOW_SCREENING_BATCH_EXAMS": "1"}


@pytest.fixture(scope="module")
def exams(stack: Stack, env: dict[str, str]) -> dict[str, int]:
    """One exam of the night stored before, NEW_EXAMS of the night that fills the disk."""
    nights = {BEFORE: 1, NEW: NEW_EXAMS}
    for seed, (night, n) in enumerate(nights.items(), start=51):
        stack.radflow("synth", "--exams", str(n), "--date", night, "--site", "north", "--seed", str(seed),
                      env=env)
    stack.wait_stable()
    return nights


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _footprint(files: list[Path]) -> int:
    """Bytes the files take on a tmpfs (whole pages)."""
    return sum(-(-f.stat().st_size // PAGE) * PAGE for f in files)


def _fill(mount: Path, leave: int) -> Path:
    """A filler file that leaves `leave` bytes free on the file system (whole pages)."""
    filler = mount / "filler"
    size = (_free(mount) - leave) // PAGE * PAGE
    assert size > 0, f"{mount} has only {_free(mount)} bytes free, cannot leave {leave}"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return filler


def _names_full_disk(out: dict[str, Any], path: Path) -> bool:
    return (out.get("type") == "DiskFull" and str(path) in out["error"] and "ENOSPC" in out["error"]
            and "Traceback" not in out["_stderr"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _loads(path: Path) -> bool:
    """A complete file: an array (.npy, .npz), a table (.parquet) or a JSON document that
    reads back whole."""
    import pandas as pd

    try:
        if path.suffix == ".npy":
            return np.load(path).size > 0
        if path.suffix == ".npz":
            with np.load(path) as arrays:
                return len(arrays["images"]) == len(arrays["heatmaps"]) > 0
        if path.suffix == ".parquet":
            return len(pd.read_parquet(path)) > 0
        return bool(json.loads(path.read_text()))
    except (OSError, ValueError, EOFError, KeyError):
        return False


def _exams_lost(stored: dict[Path, str]) -> int:
    """Exams (folders) of which a file stored before is gone or changed."""
    return len({f.parent for f, digest in stored.items() if not f.is_file() or _sha(f) != digest})


def _lake_exams(lake: Path) -> dict[str, Path]:
    return {d.name: d for d in (lake / "images").glob("study_date=*/*") if d.is_dir()}


def _lake_audit(stack: Stack, lake: Path) -> dict[str, int]:
    """What a reader of the lake would find wrong: published exam folders that are not whole
    (a file that does not read back, a view without its header, a view the manifest does
    not list), manifest rows whose file is missing or truncated, exams without rows."""
    rows = stack.query("SELECT exam_id, view, image_path FROM images")
    views: dict[str, set[str]] = {}
    for r in rows:
        views.setdefault(r["exam_id"], set()).add(r["view"])
    folders = _lake_exams(lake)
    partial = 0
    for exam_id, folder in folders.items():
        files = list(folder.iterdir())
        arrays = {f.name.removesuffix(".npy") for f in files if f.suffix == ".npy"}
        headers = {f.name.removesuffix(".dcm.json") for f in files if f.name.endswith(".dcm.json")}
        if not all(_loads(f) for f in files) or arrays != headers or arrays != views.get(exam_id, set()):
            partial += 1
    hidden = [p for p in lake.rglob(".*") if p.relative_to(lake).parts[0] != ".staging"]
    return {
        "partial_files_published": partial + len(hidden),
        "rows_without_files": sum(not _loads(Path(r["image_path"])) for r in rows),
        "exams_without_rows": len(set(folders) - set(views)),
        "staging_leftovers": len(list((lake / ".staging").glob("*"))) if (lake / ".staging").is_dir() else 0,
    }


def test_a_full_lake_fails_ingest_cleanly_and_the_next_run_ingests_every_exam_once(
        stack: Stack, env: dict[str, str], disks: Disks, exams: dict[str, int]) -> None:
    started = time.monotonic()
    first = stack.radflow("ingest", "--limit", "1", env=env)  # one exam stored before the disk fills
    assert first["ingested_exams"] == 1
    stored = {f: _sha(f) for d in _lake_exams(disks.lake).values() for f in d.iterdir()}
    one_exam = max(_footprint(list(d.iterdir())) for d in _lake_exams(disks.lake).values())
    filler = _fill(disks.store, leave=one_exam * 3 // 2)  # room for one more exam, not two
    try:
        failed = stack.radflow("ingest", env=env, ok=False)
        after_failure = _lake_audit(stack, disks.lake)
        landed = len(_lake_exams(disks.lake))
        quarantined = stack.query("SELECT item_id FROM quarantine WHERE stage = 'ingest'")
        lost = _exams_lost(stored)
    finally:
        filler.unlink(missing_ok=True)
    assert _names_full_disk(failed, disks.lake / ".staging"), failed
    assert 1 < landed < 1 + NEW_EXAMS, f"the disk did not fill part-way: {landed} exams in the lake"
    assert after_failure == {**after_failure, "partial_files_published": 0, "rows_without_files": 0,
                             "exams_without_rows": 0}, after_failure
    assert quarantined == [], "a full disk quarantined a study (its watermark would skip it)"
    assert lost == 0, "an exam stored before the disk filled changed or went"

    again = stack.radflow("ingest", env=env)  # space is back
    recovered = _lake_audit(stack, disks.lake)
    per_exam = stack.query("SELECT exam_id, count(*) AS views FROM images GROUP BY exam_id")
    total = sum(exams.values())
    assert again["ingested_exams"] == total - landed and again["quarantined"] == []
    assert len(per_exam) == total and {r["views"] for r in per_exam} == {4}
    assert recovered == {"partial_files_published": 0, "rows_without_files": 0, "exams_without_rows": 0,
                         "staging_leftovers": 0}, recovered
    assert _exams_lost(stored) == 0
    assert stack.radflow("ingest", env=env)["new_studies"] == 0  # nothing left, nothing twice
    record(5, "disk_full_lake", {
        "runs_failed_clean": 1, "error_names_path": True, "exams_landed_before_full": landed - 1,
        "partial_files_published": after_failure["partial_files_published"],
        "rows_without_files": after_failure["rows_without_files"],
        "staging_leftovers_after_failure": after_failure["staging_leftovers"],
        "studies_quarantined_by_full_disk": len(quarantined), "exams_lost": lost,
        "exams_after_recovery": len(per_exam), "exams_ingested_twice": sum(r["views"] != 4 for r in per_exam),
    }, seconds=time.monotonic() - started,
        note=f"lake store on a {STORE_SIZE} tmpfs (ingest staging on it), filled to 1.5 exams of room "
             f"before ingesting {NEW_EXAMS} new exams; then the filler removed and ingest rerun")


@pytest.fixture(scope="module")
def served(stack: Stack, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """A registered, approved and deployed champion (no training)."""
    assert list(register_versions(stack, MODEL, [(128, 96)], tmp_path_factory.mktemp("onnx"))) == [1]
    approve(stack, MODEL, 1)
    stack.radflow("deploy", env=env)


def _night(stack: Stack, night: str) -> list[dict[str, Any]]:
    return stack.query("SELECT exam_id, score, suspicion, flagged FROM exam_results "
                       "WHERE study_date = :d ORDER BY exam_id", d=night)


def _staging_audit(stack: Stack, folder: Path) -> dict[str, int]:
    """The night's staged batches (rows); those whose arrays or features (the files their row
    names) do not read back whole; staged exams of no staged batch; files no row names (a
    half-written array the merge would never read, but left behind)."""
    batches = stack.query("SELECT batch, plan_id, arrays FROM screening_batches WHERE study_date = :d", d=NEW)
    named = [folder / f"batch-{b['batch']:04d}.{b['plan_id']}.{b['arrays']}.{suffix}"
             for b in batches for suffix in ("npz", "parquet")]
    staged = {r["batch"] for r in stack.query(
        "SELECT DISTINCT batch FROM screening_staged WHERE study_date = :d", d=NEW)}
    files = set(folder.iterdir()) if folder.is_dir() else set()
    return {
        "staged_batches": len(batches),
        "partial_files_published": sum(not (f in files and _loads(f)) for f in named),
        "unnamed_files": len(files - set(named)),
        "staged_exams_without_batch": len(staged - {b["batch"] for b in batches}),
    }


def test_a_full_staging_area_fails_screening_cleanly_and_the_next_run_screens_every_exam_once(
        stack: Stack, env: dict[str, str], disks: Disks, exams: dict[str, int], served: None) -> None:
    started = time.monotonic()
    before = stack.radflow("screen", "--date", BEFORE, env=env)
    assert before["exams"] == exams[BEFORE] and before["batches"] == exams[BEFORE]
    stored = _night(stack, BEFORE)
    worklist = Path(before["worklist"])
    page = _sha(worklist)
    staged_before = [f for f in (disks.staging / "mammo" / BEFORE).iterdir()]
    one_batch = _footprint(staged_before)  # one exam: one batch's arrays and features
    # planning the new night drops the completed night's staged files (one batch): count them
    # as room the run will have, so that it has room for one and a half batches, not two
    filler = _fill(disks.staging, leave=one_batch * 3 // 2 - one_batch)
    folder = disks.staging / "mammo" / NEW
    try:
        failed = stack.radflow("screen", "--date", NEW, env=env, ok=False)
        after_failure = _staging_audit(stack, folder)
        results_of_failed_night = len(_night(stack, NEW))
        (run,) = stack.query("SELECT status, error FROM screening_runs WHERE study_date = :d", d=NEW)
        pruned = not (disks.staging / "mammo" / BEFORE).exists()
    finally:
        filler.unlink(missing_ok=True)
    assert pruned, "the completed night's staging was not dropped at planning: the fill is off"
    assert _names_full_disk(failed, folder), failed
    assert run["status"] == "failed" and "DiskFull" in run["error"]
    assert 1 <= after_failure["staged_batches"] < NEW_EXAMS, f"the disk did not fill mid-way: {after_failure}"
    assert after_failure == {**after_failure, "partial_files_published": 0, "unnamed_files": 0,
                             "staged_exams_without_batch": 0}, after_failure
    assert results_of_failed_night == 0, "results were written for a night whose batches did not all land"
    lost = len(stored) - sum(r in _night(stack, BEFORE) for r in stored)
    assert lost == 0 and _sha(worklist) == page

    again = stack.radflow("screen", "--date", NEW, env=env)  # space is back
    results = _night(stack, NEW)
    views = stack.query("SELECT exam_id, count(*) AS n FROM view_results WHERE study_date = :d "
                        "GROUP BY exam_id", d=NEW)
    assert (again["exams"], again["batches"], again["quarantined"]) == (NEW_EXAMS, NEW_EXAMS, [])
    assert len(results) == len({r["exam_id"] for r in results}) == NEW_EXAMS
    assert len(views) == NEW_EXAMS and {v["n"] for v in views} == {4}
    assert again["write_back"]["exams"] == NEW_EXAMS and again["write_back"]["replaced"] == 0
    assert _night(stack, BEFORE) == stored
    record(5, "disk_full_staging", {
        "runs_failed_clean": 1, "error_names_path": True,
        "batches_staged_before_full": after_failure["staged_batches"],
        "partial_files_published": after_failure["partial_files_published"],
        "half_written_files_left": after_failure["unnamed_files"],
        "rows_without_files": results_of_failed_night + after_failure["staged_exams_without_batch"],
        "exams_lost": lost, "exams_after_recovery": len(results),
        "exams_screened_twice": NEW_EXAMS - len({r["exam_id"] for r in results}),
        "earlier_write_backs_replaced": again["write_back"]["replaced"],
    }, seconds=time.monotonic() - started,
        note=f"screening staging on its own {STAGING_SIZE} tmpfs, filled to 1.5 batches of room before a "
             f"night of {NEW_EXAMS} one-exam batches; then the filler removed and the night rerun")
