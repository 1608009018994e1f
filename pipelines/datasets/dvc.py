"""The DVC repository of datasets: `dvc add` gives the version, `dvc push` the backup.

DVC runs as its own CLI (`python -m dvc`), the stable interface, in `<state>/datasets`
initialised without git. The version of a dataset is the md5 DVC computes for the
folder (`<md5>.dir`): the same content gives the same version wherever it lives.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.errors import DvcError

log = logging.getLogger(__name__)
REMOTE = "default"
TIMEOUT_S = 1800
# Build staging folders and the JSON summaries are not part of any dataset.
DVCIGNORE = ".staging-*\n*.version.json\n"


def dvc(repo: Path, *args: str) -> str:
    """Run `dvc <args>` in `repo`; its stdout."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise DvcError(f"dvc {' '.join(args)} failed in {repo}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def ensure_repo(repo: Path, remote: str) -> None:
    """A DVC repository (no git) at `repo` whose default remote is `remote`."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".dvc").is_dir():
        dvc(repo, "init", "--no-scm", "--quiet")
        dvc(repo, "config", "core.analytics", "false")
        (repo / ".dvcignore").write_text(DVCIGNORE)
    if _remote_url(repo) != remote:
        dvc(repo, "remote", "add", "--default", "--force", REMOTE, remote)


def add(repo: Path, folder: str) -> str:
    """`dvc add <folder>`; the DVC hash of the folder (`<md5>.dir`)."""
    dvc(repo, "add", "--quiet", folder)
    return tracked_hash(repo / f"{folder}.dvc")


def push(repo: Path, folder: str) -> None:
    """Copy the tracked folder's content to the default remote."""
    dvc(repo, "push", "--quiet", f"{folder}.dvc")


def tracked_hash(dvc_file: Path) -> str:
    """The md5 recorded in a `.dvc` file."""
    spec = yaml.safe_load(dvc_file.read_text())
    return str(spec["outs"][0]["md5"])


def _remote_url(repo: Path) -> str | None:
    """The default remote's URL, read from `.dvc/config` (no DVC process needed)."""
    import configparser

    config = configparser.ConfigParser()
    config.read(repo / ".dvc" / "config")
    if config.get("core", "remote", fallback=None) != REMOTE:
        return None
    return config.get(f'remote "{REMOTE}"', "url", fallback=None)
