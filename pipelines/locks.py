"""Stage locks: two runs of the same stage on one state folder are serialized."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import LockHeld


@contextlib.contextmanager
def stage_lock(state: Path, stage: str, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold `<state>/locks/<stage>.lock`; wait up to timeout_s, then raise LockHeld."""
    path = state / "locks" / f"{stage}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockHeld(f"another {stage} run holds {path}") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
