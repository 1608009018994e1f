"""Tags every run carries: git sha, data hash, data contract versions."""

from __future__ import annotations

import subprocess

from pipelines.config import PROJECT_DIR


def git_sha() -> str:
    """The commit of the code that ran ("unknown" outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def contract_versions() -> str:
    """The data contract files in force, e.g. "mammo_manifest.v1"."""
    names = sorted(p.name.removesuffix(".json") for p in (PROJECT_DIR / "data_contracts").glob("*.v*.json"))
    return ",".join(names)
