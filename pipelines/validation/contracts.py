"""Load a versioned contract file (`data_contracts/<name>.v<N>.json`) as a GX suite."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import PROJECT_DIR
from pipelines.errors import PermanentError

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

CONTRACTS_DIR = PROJECT_DIR / "data_contracts"
VERSIONED = re.compile(r"^(?P<name>.+)\.v(?P<version>\d+)\.json$")


def latest(name: str, folder: Path = CONTRACTS_DIR) -> Path:
    """The highest version of contract `name`."""
    found = []
    for path in folder.glob(f"{name}.v*.json"):
        match = VERSIONED.match(path.name)
        if match and match["name"] == name:
            found.append((int(match["version"]), path))
    if not found:
        raise PermanentError(f"no data contract {name!r} in {folder} (expected {name}.v<N>.json)")
    return max(found)[1]


def load_suite(path: Path) -> tuple[ExpectationSuite, dict[str, Any]]:
    """The suite described by the file, and the file's meta."""
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    spec = json.loads(path.read_text())
    configs = [
        ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta") or {})
        for e in spec["expectations"]
    ]
    return ExpectationSuite(name=spec["name"], expectations=configs), spec.get("meta", {})
