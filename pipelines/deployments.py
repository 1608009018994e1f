"""What is deployed, per slot: a small JSON record under the state dir.

Each screening task (pipelines/tasks.yaml) has two slots: `champion` (Triton
model `<task's triton_model>`, read by screening) and `shadow` (`<triton_model>_shadow`,
scored beside the champion, never on the worklist). The record, one file per Triton model,
names the served version and the previous one, which stays on disk for rollback.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

from pipelines.config import get_settings
from pipelines.errors import PermanentError
from pipelines.publish import write_text

Slot = Literal["champion", "shadow"]
SLOTS: tuple[Slot, ...] = ("champion", "shadow")
DEFAULT_NAMES: dict[Slot, str] = {"champion": "mammo", "shadow": "mammo-shadow"}


@dataclasses.dataclass(frozen=True)
class Deployment:
    model_name: str
    model_version: str
    triton_model: str
    triton_version: int
    operating_point: float
    sha256: str
    deployed_at: str
    slot: Slot = "champion"
    name: str = "mammo"  # the deployment's name in `mlflow deployments`
    previous_version: int | None = None  # kept loaded-able on disk for rollback
    previous_sha256: str = ""
    suspicion_cuts: str = ""
    task: str = "mammo"  # the version's validation deciles (JSON), for suspicion 1-10


def triton_name(slot: Slot, base: str) -> str:
    """The Triton model serving a slot of the task whose champion model is `base` (the
    task's `triton_model`)."""
    return base if slot == "champion" else f"{base}_shadow"


def check_slot(slot: str) -> Slot:
    if slot not in SLOTS:
        raise PermanentError(f"unknown deployment slot {slot!r}: expected one of {', '.join(SLOTS)}")
    return slot  # type: ignore[return-value]


def _folder() -> Path:
    return get_settings().state / "serving"


def record(dep: Deployment) -> None:
    """Write the slot's record in one rename."""
    write_text(_folder() / f"{dep.triton_model}.json", json.dumps(dataclasses.asdict(dep), indent=2))


def remove(slot: Slot, base: str) -> None:
    (_folder() / f"{triton_name(slot, base)}.json").unlink(missing_ok=True)


def find(slot: Slot, base: str) -> Deployment | None:
    """The slot's deployment, or None when nothing is deployed there."""
    path = _folder() / f"{triton_name(slot, base)}.json"
    if not path.exists():
        return None
    return Deployment(**json.loads(path.read_text()))


def all_deployments() -> list[Deployment]:
    """Every slot of every task that serves something, by Triton model name."""
    return [Deployment(**json.loads(p.read_text())) for p in sorted(_folder().glob("*.json"))
            if not p.name.startswith(".")]


def by_name(name: str) -> Deployment | None:
    return next((d for d in all_deployments() if d.name == name), None)


def current_deployment(base: str) -> Deployment:
    """The deployed champion (of the task whose Triton model is `base`); PermanentError
    when nothing was deployed yet."""
    found = find("champion", base)
    if found is None:
        raise PermanentError(f"no model is deployed to Triton as {triton_name('champion', base)} yet: "
                             "run `radflow deploy`")
    return found
