"""Which model a training run starts from, and how its lineage names it.

Fine-tuning the hospital's own data onto a base model is the point of retraining, so a
run without an explicit choice starts from the task's registered base
(`models:/<registered model>-base@base`, written by `radflow pretrain` or registered by the
ML team), and from scratch only when no base is registered. An explicit choice is an MLflow
model URI, a weights file the hospital brings, or `scratch`.

The lineage pins what was used: an alias is resolved to its version number
(`models:/mammo-screening-base/3`), a file is named with its SHA-256. `uri` is where the
base as it was can be loaded from for the three-way comparison (base as is, fine-tuned,
champion) of evaluation and promotion: the pinned registered version, or, for a file, the
copy of the base the training run logs (set by the caller once it is logged).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import PermanentError
from pipelines.training import weights

if TYPE_CHECKING:
    from torch import nn

BASE_ALIAS = "base"
SCRATCH = "scratch"
FROM_SCRATCH = "none (from scratch)"
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")


@dataclasses.dataclass(frozen=True)
class BaseChoice:
    """The starting point of one training run.

    Attributes:
        source: the lineage tag `base_model`: a pinned MLflow URI, `file <name> sha256 <hex>`,
            or FROM_SCRATCH.
        requested: what was asked for (`registered base`, the given URI or path, or SCRATCH).
        uri: an MLflow URI the base as-is loads from (None from scratch, or for a file
            until the run has logged its copy).
        model: the base's weights, loaded (None from scratch).
    """

    source: str
    requested: str
    uri: str | None
    model: nn.Module | None

    @property
    def fine_tuning(self) -> bool:
        return self.model is not None

    @property
    def start(self) -> str:
        """The lineage tag `training_start`: `fine-tuned` or `from scratch`."""
        return "fine-tuned" if self.fine_tuning else "from scratch"


def registered_base_name(registered_model: str) -> str:
    return f"{registered_model}-base"


def choose(base: str | None, registered_model: str) -> BaseChoice:
    """The base of a run of `registered_model`.

    Args:
        base: None for the registered base if there is one (else from scratch); SCRATCH (or
            "none") for from scratch; an MLflow model URI or a weights file.

    Raises:
        PermanentError: the given URI or file does not exist or does not hold a model of
            a known architecture (the message names it).
    """
    if base is None:
        return _registered_or_scratch(registered_model)
    if base.strip().lower() in (SCRATCH, "none"):
        return BaseChoice(FROM_SCRATCH, SCRATCH, None, None)
    if base.startswith(("models:/", "runs:/")):
        pinned = _pinned(base)
        return BaseChoice(pinned, base, pinned, weights.load(pinned))
    path = Path(base)
    model = weights.load(base)  # names a missing or foreign file
    return BaseChoice(f"file {path.name} sha256 {_sha256(path)}", base, None, model)


def _registered_or_scratch(registered_model: str) -> BaseChoice:
    from pipelines.tracking import mlflow_client, version_by_alias

    name = registered_base_name(registered_model)
    version = version_by_alias(mlflow_client(), name, BASE_ALIAS)
    if version is None:
        return BaseChoice(FROM_SCRATCH, f"models:/{name}@{BASE_ALIAS} (not registered)", None, None)
    pinned = f"models:/{name}/{version.version}"
    return BaseChoice(pinned, f"models:/{name}@{BASE_ALIAS}", pinned, weights.load(pinned))


def _pinned(uri: str) -> str:
    """`models:/NAME@ALIAS` as `models:/NAME/VERSION`; other URIs as given.

    Raises:
        PermanentError: the alias is not set on any version.
    """
    from pipelines.tracking import mlflow_client, version_by_alias

    match = _ALIAS_URI.match(uri)
    if match is None:
        return uri
    version = version_by_alias(mlflow_client(), match["name"], match["alias"])
    if version is None:
        raise PermanentError(f"base model {uri!r} not found in MLflow: no version of "
                             f"{match['name']!r} holds alias {match['alias']!r}")
    return f"models:/{match['name']}/{version.version}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
