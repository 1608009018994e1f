"""Atomic publishing: a reader of a published folder or file sees the old version or the
new one, never a half-written one.

Every writer of something another process may read at the same time (a worklist page,
a lake exam, a dataset, a Triton version folder, a JSON record) goes through here:

- `write_file` / `write_text` / `write_bytes`: write a hidden temporary file in the
  target's folder, then `os.replace` it over the target (one rename).
- `publish_dir`: fill a hidden staging folder, then swap it in for the target folder with
  renames (POSIX cannot rename a folder over a non-empty one, so the old folder is
  renamed aside first, then the new one into place, then the old one is deleted).
- `publish_linked_dir`: fill a hidden version folder, then point a symlink at it with one
  rename; for folders readers browse (worklists, reports), where even the instant between
  `publish_dir`'s two renames must not show a missing folder.

Temporary and staging names start with a dot and never end in the target's own suffix, so
a reader listing `*.json` or `*.parquet` never picks one up. What a crashed process leaves
behind is hidden, never at the target's path; `publish_linked_dir` removes it on the next
publish of the same target, and callers of `publish_dir` that pass `staging_root` clear
that folder themselves (e.g. `pipelines.ingest.lake.clear_staging`).

A full file system (ENOSPC, or EDQUOT over a quota) met by any of them raises `DiskFull`
naming the path being written and its file system, after the temporary or staging files
are removed: nothing half-written is published, and the target is left as it was.

The promise covers a crashed or killed process, not a power cut: nothing is fsync-ed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pipelines.errors import DiskFull

STAGING_PREFIX = ".staging-"
FULL_ERRNOS = {errno.ENOSPC: "ENOSPC", errno.EDQUOT: "EDQUOT"}


def _token() -> str:
    return secrets.token_hex(4)


def _remove(path: Path) -> None:
    """Delete a file, symlink or folder; quietly, since it is already unpublished."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _mount_point(path: Path) -> Path:
    """The mount point of the file system `path` is (or would be) on."""
    here = path.absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    while not os.path.ismount(here) and here != here.parent:
        here = here.parent
    return here


@contextlib.contextmanager
def disk_full_named(path: Path, publishing: Path | None = None) -> Iterator[None]:
    """Raise `DiskFull` naming `path` (and the `publishing` target) for a full file system
    met in the block; any other error passes unchanged.

    Raises:
        DiskFull: an OSError with errno ENOSPC or EDQUOT was raised in the block.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL_ERRNOS:
            raise
        target = f" to publish {publishing}" if publishing is not None and publishing != path else ""
        raise DiskFull(
            f"disk full ({FULL_ERRNOS[exc.errno]}: {os.strerror(exc.errno)}) writing {path}{target}, "
            f"on the file system mounted at {_mount_point(path)}: nothing was published; free "
            "space there, then rerun") from exc


def write_file(path: Path, write: Callable[[Path], object], *, mode: int | None = None) -> Path:
    """Publish the file that `write` produces at `path` with one rename.

    `write` gets a temporary path (`.<name>.<token>.tmp`) in the same folder and must
    create the complete file there; its return value is ignored. The parent folder is
    created if missing.

    Args:
        path: the final file; replaced if it exists.
        write: creates the file at the path it is given (e.g. `frame.to_parquet`). It must
            write to that exact path: a writer that appends its own extension
            (`numpy.save`) needs a file object opened on the path instead.
        mode: permission bits to give the file before it appears (default: as created,
            i.e. from the umask).

    Returns:
        `path`.

    Raises:
        DiskFull: the file system of `path` is full.
        Whatever `write` raises, or OSError from the rename; the temporary file is removed
        then and `path` is left as it was (absent, or the previous version).
    """
    tmp = path.with_name(f".{path.name}.{_token()}.tmp")
    with disk_full_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write(tmp)
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path


def write_text(path: Path, text: str, *, encoding: str = "utf-8", mode: int | None = None) -> Path:
    """Publish `text` at `path` with one rename (see `write_file`)."""
    return write_file(path, lambda tmp: tmp.write_text(text, encoding=encoding), mode=mode)


def write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> Path:
    """Publish `data` at `path` with one rename (see `write_file`)."""
    return write_file(path, lambda tmp: tmp.write_bytes(data), mode=mode)


@contextlib.contextmanager
def publish_dir(target: Path, *, staging_root: Path | None = None,
                prefix: str = STAGING_PREFIX) -> Iterator[Path]:
    """Yield an empty staging folder; when the block ends without an exception, swap it in
    as `target`.

    The swap is two renames (old folder aside, new one in), then the old folder is
    deleted: a reader sees the old folder or the new one, never a mix, though a path
    lookup at the instant between the renames finds none. A crash between them leaves
    the complete old folder in the staging root (as `<prefix>old-<token>`), never a
    partial one at `target`.

    Args:
        target: the published folder; created, or replaced with everything in it.
        staging_root: where the staging folder is made (created if missing); it must be
            on the same file system as `target`. Default: `target`'s parent.
        prefix: the staging folder is `<staging_root>/<prefix><token>`, the old version
            is moved to `<staging_root>/<prefix>old-<token>` before it is deleted; keep
            it hidden (a leading dot) when the staging root is `target`'s parent.

    Yields:
        The staging folder, to fill with the new version's content.

    Raises:
        DiskFull: the staging folder's file system filled (in the block or the swap).
        Whatever the block raises, or OSError from the swap; the staging folder is
        deleted then and `target` is left as it was.
    """
    root = target.parent if staging_root is None else staging_root
    token = _token()
    staging = root / f"{prefix}{token}"
    with disk_full_named(staging, target):
        staging.mkdir(parents=True)
    try:
        with disk_full_named(staging, target):
            yield staging
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                trash = root / f"{prefix}old-{token}"
                os.replace(target, trash)
                os.replace(staging, target)
                _remove(trash)
            else:
                os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after a swap there is nothing left here


@contextlib.contextmanager
def publish_linked_dir(target: Path) -> Iterator[Path]:
    """Yield an empty version folder; when the block ends without an exception, make
    `target` a symlink to it with one rename and delete the target's older versions.

    Versions live beside `target` as `.<name>.<token>/` (mode 0755, readable by a web
    server) and the symlink is relative, so the parent folder can be moved or served
    as it is. A plain folder found at `target` (e.g. copied in by hand) is moved aside
    first and deleted with the old versions. Leftovers of a crashed publish are hidden
    `.<name>.*` entries, deleted by the next successful publish of the same target.

    Args:
        target: the published path; becomes (or stays) a symlink.

    Yields:
        The new version folder, to fill.

    Raises:
        DiskFull: the target's file system filled (in the block or the swap).
        Whatever the block raises, or OSError from the swap; the version folder is
        deleted then and `target` still shows the previous version.
    """
    parent = target.parent
    with disk_full_named(target):
        parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        with disk_full_named(staged, target):
            yield staged
            staged.chmod(0o755)  # mkdtemp makes it private; published folders are served read-only
            _relink(target, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def _relink(target: Path, staged: Path) -> None:
    """Point `target` at `staged` with one rename, then drop the target's older versions."""
    prefix = f".{target.name}."
    link = target.with_name(f"{prefix}link-{staged.name.removeprefix(prefix)}")
    os.symlink(staged.name, link)
    if target.is_dir() and not target.is_symlink():  # os.replace cannot put a link over a folder
        target.rename(target.with_name(f"{prefix}legacy"))
    os.replace(link, target)
    for old in target.parent.glob(f"{prefix}*"):
        # a dot after the prefix means another target's entry (`.a.b.x` is not one of `a`'s)
        if old.name != staged.name and "." not in old.name.removeprefix(prefix):
            _remove(old)
