"""The registered-model policy, mlflow/registered_models.yaml, as typed settings.

The promotion gate reads its margins, subgroups, bootstrap and approvers from here and
nowhere else; a missing or malformed entry is a PolicyInvalid error naming the field.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.config import PROJECT_DIR
from pipelines.errors import PolicyInvalid

POLICY_FILE = PROJECT_DIR / "mlflow" / "registered_models.yaml"


def policy_file() -> Path:
    """RADFLOW_REGISTRY_POLICY_FILE, else mlflow/registered_models.yaml."""
    from pipelines.config import get_settings

    return get_settings().registry_policy_file or POLICY_FILE


class BootstrapPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    resamples: int = Field(ge=100)
    seed: int
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


class Approver(BaseModel):
    """A login allowed to approve a change of champion, with the name the audit shows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    login: str = Field(min_length=1)
    name: str = ""

    @model_validator(mode="before")
    @classmethod
    def _a_bare_login(cls, value: object) -> object:
        return {"login": value} if isinstance(value, str) else value

    @property
    def display_name(self) -> str:
        return self.name or self.login


class PromotionPolicy(BaseModel):
    """The gate a challenger must pass to become champion (margins are positive drops)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auc_margin: float = Field(ge=0.0, le=0.5)
    sensitivity_margin: float = Field(ge=0.0, le=1.0)
    subgroup_margin: float = Field(ge=0.0, le=1.0)
    subgroup_min_exams: int = Field(ge=2)
    subgroups: tuple[str, ...] = ()
    bootstrap: BootstrapPolicy
    # Logins (Airflow's, for the deploy DAG; MLflow's, for the CLI) that may approve.
    # Empty: any authenticated login (the login is still recorded).
    approvers: tuple[Approver, ...] = ()

    def approver(self, login: str) -> Approver | None:
        """The listed approver with this login; an unlisted one when the list is empty; None
        when the list names others."""
        if not self.approvers:
            return Approver(login=login)
        return next((a for a in self.approvers if a.login == login), None)


class ModelPolicy(BaseModel):
    """One registered model's entry (descriptive keys such as `task` are not checked)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    owners: tuple[str, ...] = Field(min_length=1)
    required_tags: tuple[str, ...] = ()
    promotion: PromotionPolicy


def load_policy(model_name: str, path: Path | None = None) -> ModelPolicy:
    """The policy of `model_name` in `path`.

    Raises:
        PolicyInvalid: the file is missing or unreadable, has no entry for the model, or
            the entry is invalid (the message names the field).
    """
    path = path or policy_file()
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyInvalid(f"registered-model policy {path} cannot be read: {exc}") from exc
    models = document.get("models") if isinstance(document, dict) else None
    entry = models.get(model_name) if isinstance(models, dict) else None
    if entry is None:
        raise PolicyInvalid(f"registered-model policy {path} has no entry models.{model_name}")
    try:
        return ModelPolicy.model_validate(entry)
    except ValidationError as exc:
        problems = "; ".join(
            f"models.{model_name}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors())
        raise PolicyInvalid(f"registered-model policy {path} is invalid: {problems}") from exc
