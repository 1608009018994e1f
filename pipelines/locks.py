"""Stage locks: two runs of the same stage are serialized, wherever they run.

The lock lives in the results database, so Airflow workers on separate hosts, each with
its own state dir, exclude each other (issue 17: nothing shared but services):
- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a connection
  of its own, held for the whole block. A session lock belongs to the connection, not to
  a transaction: if the holding process dies (even `kill -9`) or its host drops off the
  network, PostgreSQL ends the session and releases the lock with it (a silent network
  partition is noticed by TCP keepalive). See who holds one with
  `SELECT pid FROM pg_locks WHERE locktype = 'advisory'`.
- SQLite (unit tests only): an fcntl lock on `locks/<stage>.lock` beside the database
  file, which excludes processes on the one host that can open that file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pipelines import db
from pipelines.errors import LockHeld

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

POLL_S = 0.5


def lock_key(stage: str) -> int:
    """The stage's advisory-lock key: the first 8 bytes of SHA-256("radflow:<stage>") as a
    signed 64-bit integer (the same on every host and every release)."""
    return int.from_bytes(hashlib.sha256(f"radflow:{stage}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def stage_lock(stage: str, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold the lock of `stage` for the block, against every other holder of it.

    Args:
        stage: the stage's name ("ingest", "build_dataset-mammo", ...).
        timeout_s: how long to wait for another holder to finish.

    Raises:
        LockHeld: another run held the stage's lock for timeout_s (a retry may succeed).
    """
    engine = db.get_engine()
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, stage, timeout_s):
            yield
    else:
        with _file_lock(_lock_file(engine, stage), stage, timeout_s):
            yield


@contextlib.contextmanager
def _advisory_lock(engine: Engine, stage: str, timeout_s: float) -> Iterator[None]:
    key = lock_key(stage)
    # AUTOCOMMIT: no transaction stays open on this connection while the stage runs.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        deadline = time.monotonic() + timeout_s
        while not conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one():
            if time.monotonic() > deadline:
                raise LockHeld(f"another {stage} run holds its lock (PostgreSQL advisory lock {key}); "
                               f"waited {timeout_s:.0f} s")
            time.sleep(POLL_S)
        try:
            yield
        finally:
            try:
                released = conn.execute(sa.select(sa.func.pg_advisory_unlock(key))).scalar_one()
            except sa.exc.DBAPIError:
                released = False
            if not released:  # never hand a connection that may still hold it back to the pool
                conn.invalidate()


def _lock_file(engine: Engine, stage: str) -> Path:
    database = engine.url.database
    if database and database != ":memory:":
        return Path(database).resolve().parent / "locks" / f"{stage}.lock"
    from pipelines.config import get_settings

    return get_settings().state / "locks" / f"{stage}.lock"


@contextlib.contextmanager
def _file_lock(path: Path, stage: str, timeout_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockHeld(f"another {stage} run holds {path}; waited {timeout_s:.0f} s") from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
