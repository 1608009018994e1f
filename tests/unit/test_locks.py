"""Stage locks in the results database: runs on separate hosts (separate processes, state
dirs and connections) exclude each other, a waiter gives up naming the stage, and a lock
outlives neither its block nor its process (issue 17). PostgreSQL is the real server the
tests use (tests/postgres.py, never skipped); SQLite keeps the file lock of unit tests."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines import config, db
from pipelines.errors import LockHeld
from pipelines.locks import lock_key, stage_lock

PROJECT = Path(__file__).resolve().parents[2]

# Another host's worker: holds the stage's lock until its stdin says go (or it is killed).
_HOLDER = """
import sys
from pipelines.locks import stage_lock
with stage_lock(sys.argv[1], timeout_s=60):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


@pytest.fixture
def pg(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process's results database is the PostgreSQL one; returns its URL."""
    monkeypatch.setenv("RADFLOW_DATABASE_URL", postgres_url)
    config.reset_settings()
    assert db.get_engine().dialect.name == "postgresql"
    yield postgres_url


@pytest.fixture
def stage() -> str:
    return f"test-stage-{uuid.uuid4().hex[:8]}"


def _holder(url: str, stage: str, state: Path) -> subprocess.Popen[str]:
    """A process with its own state dir holding `stage`'s lock (returns once it holds it)."""
    env = {**os.environ, "RADFLOW_DATABASE_URL": url, "RADFLOW_STATE_DIR": str(state)}
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, stage], cwd=PROJECT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "held":
        proc.kill()
        pytest.fail(f"the holder did not take the lock: {line!r} {proc.communicate()[1][-2000:]}")
    return proc


def _held_elsewhere(url: str, key: int) -> bool:
    """Whether some session holds advisory lock `key` (asked from a connection of its own)."""
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as conn:
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one()
            if got:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
            return not got
    finally:
        eng.dispose()


def test_the_key_is_stable_and_a_signed_64_bit_integer() -> None:
    # A change would let an old and a new worker run the same stage at once.
    assert lock_key("ingest") == 1160852124485440423
    assert lock_key("ingest") != lock_key("outcomes")
    assert all(-(2**63) <= lock_key(s) < 2**63 for s in ("ingest", "outcomes", "build_dataset-mammo"))


def test_another_hosts_run_excludes_this_one_until_it_releases(
    pg: str, stage: str, tmp_path: Path,
) -> None:
    holder = _holder(pg, stage, tmp_path / "other-host")
    try:
        started = time.monotonic()
        with pytest.raises(LockHeld, match=f"another {stage} run holds its lock") as err:
            with stage_lock(stage, timeout_s=1.0):
                pytest.fail("entered a block another process holds")
        assert time.monotonic() - started >= 1.0
        assert str(lock_key(stage)) in str(err.value)
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()
        with stage_lock(stage, timeout_s=60):  # waits for the release, then holds it
            assert _held_elsewhere(pg, lock_key(stage))
    finally:
        out, errors = holder.communicate(timeout=60)
    assert holder.returncode == 0 and out.strip() == "released", errors[-2000:]


def test_this_run_excludes_another_hosts_run(pg: str, stage: str, tmp_path: Path) -> None:
    env = {**os.environ, "RADFLOW_DATABASE_URL": pg, "RADFLOW_STATE_DIR": str(tmp_path / "other")}
    waiter = ("import sys\nfrom pipelines.locks import stage_lock\n"
              "with stage_lock(sys.argv[1], timeout_s=1.0):\n    pass\n")
    with stage_lock(stage):
        proc = subprocess.run([sys.executable, "-c", waiter, stage], cwd=PROJECT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"LockHeld: another {stage} run holds its lock" in proc.stderr


def test_the_lock_is_released_after_the_block_and_its_connection_returned(pg: str, stage: str) -> None:
    engine = db.get_engine()
    with stage_lock(stage):
        assert _held_elsewhere(pg, lock_key(stage))
    assert not _held_elsewhere(pg, lock_key(stage))
    with pytest.raises(ValueError, match="stage failed"), stage_lock(stage):
        raise ValueError("stage failed")
    assert not _held_elsewhere(pg, lock_key(stage))
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_killed_holder_leaves_no_lock_behind(pg: str, stage: str, tmp_path: Path) -> None:
    holder = _holder(pg, stage, tmp_path / "other-host")
    assert _held_elsewhere(pg, lock_key(stage))
    os.kill(holder.pid, signal.SIGKILL)  # no finally runs: PostgreSQL ends the session
    holder.communicate(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    with stage_lock(stage, timeout_s=30):
        pass


def test_on_sqlite_a_file_lock_beside_the_database_excludes_a_second_holder(
    isolated_settings: Path, stage: str,
) -> None:
    assert db.get_engine().dialect.name == "sqlite"
    with stage_lock(stage):
        with pytest.raises(LockHeld, match=f"another {stage} run holds"), stage_lock(stage, timeout_s=0.6):
            pass
        assert (isolated_settings / "locks" / f"{stage}.lock").exists()  # beside radflow.db
    with stage_lock(stage, timeout_s=0.6):
        pass
