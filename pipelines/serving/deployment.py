"""What is deployed: a small record under the state dir, read by screening."""

from __future__ import annotations

import dataclasses
import json
import os
import uuid

from pipelines.config import get_settings
from pipelines.errors import PermanentError


@dataclasses.dataclass(frozen=True)
class Deployment:
    model_name: str
    model_version: str
    triton_model: str
    triton_version: int
    operating_point: float
    sha256: str
    deployed_at: str


def _path() -> os.PathLike[str]:
    s = get_settings()
    return s.state / "serving" / f"{s.triton_model}.json"


def record(dep: Deployment) -> None:
    path = get_settings().state / "serving" / f"{dep.triton_model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.json")
    tmp.write_text(json.dumps(dataclasses.asdict(dep), indent=2))
    os.replace(tmp, path)


def current_deployment() -> Deployment:
    """The deployed champion; PermanentError when nothing was deployed yet."""
    path = _path()
    if not os.path.exists(path):
        raise PermanentError("no model is deployed to Triton yet: run `radflow deploy`")
    with open(path) as fh:
        return Deployment(**json.load(fh))
