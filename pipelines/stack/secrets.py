"""The embedded stack's generated secrets: `<state>/secrets/<service>.env`, one `NAME=value`
line per secret, folder 0700 and files 0600. A value given in the environment always wins
(settings read it first); these files only hold what `radflow stack up` generated."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from pipelines.config import read_secret_file as read


def ensure(path: Path, name: str, given: str = "", nbytes: int = 18,
           make: Callable[[], str] | None = None) -> str:
    """`given` if set, else the value of `name` in the file, else a new random one
    (`make()`, default URL-safe text of `nbytes` random bytes) added to it."""
    if given:
        return given
    found = read(path, name)
    if found:
        return found
    value = make() if make else secrets.token_urlsafe(nbytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    lines = path.read_text().splitlines() if path.exists() else []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join([*lines, f"{name}={value}"]) + "\n")
    os.chmod(path, 0o600)
    return value
