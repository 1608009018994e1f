"""The registered-model policy file (mlflow/registered_models.yaml): where it is, one model's
entry, and the parts of an entry that stages other than the registry read.

The registry stage types the whole entry (pipelines/registry/policy.py: promotion gate,
approvers, and the `outcomes` block below) and refuses promotion when any of it is invalid.
Monitoring is another stage and may not import the registry, so what it needs, the realised
performance minimum, is typed here in the shared layer and read through
`load_outcomes_policy`; both read the file through `model_entry`, so they cannot disagree on
which file or which entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.config import PROJECT_DIR
from pipelines.errors import PolicyInvalid

POLICY_FILE = PROJECT_DIR / "mlflow" / "registered_models.yaml"


def policy_file() -> Path:
    """RADFLOW_REGISTRY_POLICY_FILE, else mlflow/registered_models.yaml."""
    from pipelines.config import get_settings

    return get_settings().registry_policy_file or POLICY_FILE


class OutcomesPolicy(BaseModel):
    """Realised performance of the champion once outcomes arrive (`radflow outcomes`).

    The monitoring alert fires when the lower bound of the champion's realised sensitivity
    CI (at its stored flags, all months pooled) is below `min_sensitivity`, once at least
    `min_exams_with_outcome` of its exams have an outcome. The CI is a stratified percentile
    bootstrap of `resamples` draws with `seed` at `confidence`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_sensitivity: float = Field(gt=0.0, le=1.0)
    min_exams_with_outcome: int = Field(ge=1)
    resamples: int = Field(default=2000, ge=100)
    seed: int = 20260401
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


def model_entry(model_name: str, path: Path | None = None) -> tuple[dict[str, Any], Path]:
    """The raw entry `models.<model_name>` of the policy file, and the file it came from.

    Raises:
        PolicyInvalid: the file is missing or unreadable, or has no entry for the model.
    """
    path = path or policy_file()
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyInvalid(f"registered-model policy {path} cannot be read: {exc}") from exc
    models = document.get("models") if isinstance(document, dict) else None
    entry = models.get(model_name) if isinstance(models, dict) else None
    if not isinstance(entry, dict):
        raise PolicyInvalid(f"registered-model policy {path} has no entry models.{model_name}")
    return entry, path


def invalid(path: Path, model_name: str, exc: ValidationError, prefix: str = "") -> PolicyInvalid:
    """The PolicyInvalid of a validation error, naming every bad field by its full key."""
    problems = "; ".join(
        f"models.{model_name}.{prefix}{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors())
    return PolicyInvalid(f"registered-model policy {path} is invalid: {problems}")


def load_outcomes_policy(model_name: str, path: Path | None = None) -> OutcomesPolicy | None:
    """The `outcomes` block of `model_name`'s entry; None when the entry has none.

    Raises:
        PolicyInvalid: the file or entry is missing, or the block is invalid (the message
            names the field, e.g. models.mammo-screening.outcomes.min_sensitivity).
    """
    entry, path = model_entry(model_name, path)
    block = entry.get("outcomes")
    if block is None:
        return None
    try:
        return OutcomesPolicy.model_validate(block)
    except ValidationError as exc:
        raise invalid(path, model_name, exc, prefix="outcomes.") from exc
