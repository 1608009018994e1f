"""Atomic publishing (pipelines/publish.py): a reader sees the old version or the new one,
never a half-written one, and a failed or crashed writer leaves the old version in place;
plus the dialect-independent insert-if-absent of pipelines/db.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from pipelines import db, publish
from pipelines.ingest import lake


class WriterFailed(Exception):
    pass


def _fail(_: Path) -> None:
    raise WriterFailed("disk full")


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _crash(snippet: str) -> None:
    """Run `snippet` in a new interpreter that dies (os._exit) where the snippet says so."""
    code = "import os\nfrom pathlib import Path\nfrom pipelines import publish\n" + textwrap.dedent(snippet)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 17, done.stderr


# --- files -------------------------------------------------------------------------------

def test_a_written_file_replaces_the_old_one_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "out" / "record.json"
    publish.write_text(target, '{"v": 1}')
    assert publish.write_text(target, '{"v": 2}') == target
    assert target.read_text() == '{"v": 2}'
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("ne")
        raise WriterFailed("disk full")

    with pytest.raises(WriterFailed):
        publish.write_file(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_failing_first_write_leaves_no_file_at_all(tmp_path: Path) -> None:
    with pytest.raises(WriterFailed):
        publish.write_file(tmp_path / "record.json", _fail)
    assert list(tmp_path.iterdir()) == []


def test_a_reader_during_the_write_sees_the_old_file_and_never_the_partial_one(tmp_path: Path) -> None:
    target = tmp_path / "slot.json"
    seen: list[tuple[str | None, list[str]]] = []

    def write_while_reading(tmp: Path) -> None:
        tmp.write_text('{"half": ')
        # what a reader finds mid-write: the target as it was, and no other *.json
        seen.append((target.read_text() if target.exists() else None,
                     [p.name for p in tmp_path.glob("*.json")]))
        with tmp.open("a") as out:
            out.write("true}")

    publish.write_file(target, write_while_reading)
    publish.write_file(target, write_while_reading)
    assert seen == [(None, []), ('{"half": true}', ["slot.json"])]
    assert target.read_text() == '{"half": true}'


def test_a_crashed_writer_leaves_the_old_file_complete(tmp_path: Path) -> None:
    target = tmp_path / "manifest.parquet"
    target.write_bytes(b"old, complete")
    _crash(f"""
        def die(tmp):
            tmp.write_bytes(b"new, half")
            os._exit(17)
        publish.write_file(Path({str(target)!r}), die)
    """)
    assert target.read_bytes() == b"old, complete"
    # the leftover is hidden and does not look like the target's kind of file
    assert [p.name for p in tmp_path.glob("*.parquet")] == ["manifest.parquet"]


def test_mode_is_applied_before_the_file_appears(tmp_path: Path) -> None:
    target = publish.write_bytes(tmp_path / "index.html", b"<html>", mode=0o640)
    assert target.stat().st_mode & 0o777 == 0o640


# --- folders swapped in by rename ---------------------------------------------------------

def _old_folder(target: Path) -> None:
    target.mkdir(parents=True)
    (target / "a.npy").write_text("old a")
    (target / "only-old.npy").write_text("old only")


def test_a_published_folder_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "exam"
    _old_folder(target)
    with publish.publish_dir(target) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".staging-")
        assert _tree(target) == {"a.npy": "old a", "only-old.npy": "old only"}  # still the old one
        (staging / "a.npy").write_text("new a")
    assert _tree(target) == {"a.npy": "new a"}
    assert [p.name for p in tmp_path.iterdir()] == ["exam"]


def test_a_failing_folder_writer_leaves_the_old_folder_and_no_staging(tmp_path: Path) -> None:
    target = tmp_path / "exam"
    _old_folder(target)
    with pytest.raises(WriterFailed), publish.publish_dir(target) as staging:
        (staging / "a.npy").write_text("new a")
        _fail(staging)
    assert _tree(target) == {"a.npy": "old a", "only-old.npy": "old only"}
    assert [p.name for p in tmp_path.iterdir()] == ["exam"]


def test_a_first_folder_publish_creates_the_parents(tmp_path: Path) -> None:
    target = tmp_path / "2024-03-01" / "ex-1"
    with publish.publish_dir(target, staging_root=tmp_path / ".staging", prefix="ex-1-") as staging:
        (staging / "L-CC.npy").write_text("x")
    assert _tree(target) == {"L-CC.npy": "x"}
    assert list((tmp_path / ".staging").iterdir()) == []


def test_a_crashed_exam_publish_leaves_the_old_exam_and_clear_staging_finds_the_rest(tmp_path: Path) -> None:
    views = {"L-CC": np.zeros((4, 4), np.float32)}
    final = lake.publish_exam(tmp_path, "2024-03-01", "ex-1", views)
    before = {p.name: p.read_bytes() for p in final.iterdir()}
    _crash(f"""
        from pipelines.ingest import lake
        with publish.publish_dir(Path({str(final)!r}), staging_root=Path({str(tmp_path)!r}) / lake.STAGING,
                                 prefix="ex-1-") as staging:
            (staging / "L-CC.npy").write_bytes(b"half")
            os._exit(17)
    """)
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before
    assert lake.clear_staging(tmp_path) == 1
    assert list((tmp_path / lake.STAGING).iterdir()) == []


# --- folders published through a symlink --------------------------------------------------

def test_a_linked_folder_is_replaced_and_its_old_versions_removed(tmp_path: Path) -> None:
    live = tmp_path / "2024-03-01"
    with publish.publish_linked_dir(live) as first:
        (first / "index.html").write_text("night 1")
    with publish.publish_linked_dir(live) as second:
        assert (live / "index.html").read_text() == "night 1"  # readers still see the old night
        (second / "index.html").write_text("night 2")
    assert live.is_symlink() and live.resolve() == second.resolve()
    assert (live / "index.html").read_text() == "night 2"
    assert second.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, second.name])


def test_a_failing_linked_writer_leaves_the_previous_version_and_no_new_folder(tmp_path: Path) -> None:
    live = tmp_path / "2024-03-01"
    with publish.publish_linked_dir(live) as first:
        (first / "index.html").write_text("night 1")
    with pytest.raises(WriterFailed), publish.publish_linked_dir(live) as second:
        (second / "index.html").write_text("half")
        _fail(second)
    assert (live / "index.html").read_text() == "night 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, first.name])


def test_a_plain_folder_is_replaced_and_other_targets_versions_are_kept(tmp_path: Path) -> None:
    live = tmp_path / "a"
    live.mkdir()
    (live / "index.html").write_text("copied in by hand")
    neighbour = tmp_path / ".a.b.keepme"  # a version of a target named "a.b"
    neighbour.mkdir()
    with publish.publish_linked_dir(live) as staged:
        (staged / "index.html").write_text("published")
    assert (live / "index.html").read_text() == "published"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a", staged.name, neighbour.name])


# --- insert if absent ---------------------------------------------------------------------

def test_a_second_insert_of_the_same_key_is_a_no_op_that_keeps_the_first_row(tmp_path: Path) -> None:
    engine = db.engine_for(f"sqlite:///{tmp_path / 'results.db'}")
    keys = ["kind", "original"]
    with engine.begin() as conn:
        assert db.insert_if_absent(conn, db.pseudonyms,
                                   {"kind": "study", "original": "1.2.3", "pseudonym": "ex-first"}, keys)
        assert not db.insert_if_absent(conn, db.pseudonyms,
                                       {"kind": "study", "original": "1.2.3", "pseudonym": "ex-second"}, keys)
        rows = conn.execute(sa.select(db.pseudonyms.c.kind, db.pseudonyms.c.original,
                                      db.pseudonyms.c.pseudonym)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("study", "1.2.3", "ex-first")]
