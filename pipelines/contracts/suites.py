"""Load a versioned contract file (`data_contracts/<name>.v<N>.json`) as GX suites.

A contract is data: a GX suite whose expectations each name, in their `meta.frame`, the
frame they run on. `rows` (the default) is the table itself; the other frames are derived
from it by `pipelines.contracts.frames` (one row per exam, per patient, per split), so
that "every exam has exactly the 4 views" or "no patient is in two splits" are ordinary
column expectations on a derived table. The file's `meta.source` says which table the
contract guards: the manifest (`images`, the default) or the frozen dataset (`dataset`).
"""

from __future__ import annotations

import dataclasses
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
ROWS = "rows"


@dataclasses.dataclass(frozen=True)
class Contract:
    """One contract file: its identity, the table it guards and its expectations by frame."""

    name: str
    version: int
    path: Path
    source: str
    meta: dict[str, Any]
    expectations: dict[str, list[dict[str, Any]]]

    @property
    def suite_name(self) -> str:
        """`<name>.v<N>`, as recorded with every run that relied on the contract."""
        return f"{self.name}.v{self.version}"

    @property
    def frames(self) -> list[str]:
        return list(self.expectations)

    def suite(self, frame: str) -> ExpectationSuite:
        """The GX suite of the expectations that run on `frame`."""
        return _suite(f"{self.suite_name}.{frame}", self.expectations[frame])


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


def contract_path(name: str, version: int | None = None, folder: Path = CONTRACTS_DIR) -> Path:
    """The file of contract `name` at `version` (default: the latest)."""
    if version is None:
        return latest(name, folder)
    path = folder / f"{name}.v{version}.json"
    if not path.exists():
        raise PermanentError(f"no data contract {path.name} in {folder}")
    return path


def load_contract(path: Path) -> Contract:
    """The contract in `path`, its expectations grouped by the frame they run on."""
    spec = json.loads(path.read_text())
    meta = spec.get("meta") or {}
    match = VERSIONED.match(path.name)
    if not match:
        raise PermanentError(f"{path.name} is not named <contract>.v<N>.json")
    by_frame: dict[str, list[dict[str, Any]]] = {}
    for e in spec["expectations"]:
        by_frame.setdefault((e.get("meta") or {}).get("frame", ROWS), []).append(e)
    return Contract(name=match["name"], version=int(match["version"]), path=path,
                    source=meta.get("source", "images"), meta=meta, expectations=by_frame)


def load_suite(path: Path) -> tuple[ExpectationSuite, dict[str, Any]]:
    """All expectations of the file as one suite, and the file's meta."""
    spec = json.loads(path.read_text())
    return _suite(spec["name"], spec["expectations"]), spec.get("meta", {})


def _suite(name: str, expectations: list[dict[str, Any]]) -> ExpectationSuite:
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    configs = [
        ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta") or {})
        for e in expectations
    ]
    return ExpectationSuite(name=name, expectations=configs)
