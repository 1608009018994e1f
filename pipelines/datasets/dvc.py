"""The DVC repository of datasets: `dvc add` gives the version, `dvc push` the backup.

DVC runs as its own CLI (`python -m dvc`), the stable interface, in `<state>/datasets`
initialised without git. The version of a dataset is the md5 DVC computes for the
folder (`<md5>.dir`): the same content gives the same version wherever it lives.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import yaml

from pipelines.errors import DvcError
from pipelines.processes import run_tied

log = logging.getLogger(__name__)
REMOTE = "default"
TIMEOUT_S = 1800
# Build staging folders and the JSON summaries are not part of any dataset.
DVCIGNORE = ".staging-*\n*.version.json\n"


def dvc(repo: Path, *args: str) -> str:
    """Run `dvc <args>` in `repo`; its stdout. The DVC process dies with this one, even
    a SIGKILLed one: it never runs on beside (or holds DVC's lock against) the rerun."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = run_tied([sys.executable, "-m", "dvc", *args], cwd=repo, env=env,
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
    """The default remote's URL, read from `.dvc/config` (no DVC process needed).

    DVC writes the section as `['remote "default"']` (configobj quotes a name holding double
    quotes) and configparser keeps those quotes in the name: both spellings are looked up.
    Reading only the unquoted one found no remote, and every build ran `dvc remote add` again.
    """
    import configparser

    config = configparser.ConfigParser()
    config.read(repo / ".dvc" / "config")
    if config.get("core", "remote", fallback=None) != REMOTE:
        return None
    for section in (f'remote "{REMOTE}"', f"'remote \"{REMOTE}\"'"):
        if config.has_section(section):
            return config.get(section, "url", fallback=None)
    return None
