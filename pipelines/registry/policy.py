"""The registered-model policy, mlflow/registered_models.yaml, as typed settings.

The promotion gate reads its margins, subgroups, bootstrap and approvers from here and
nowhere else; a missing or malformed entry is a PolicyInvalid error naming the field.
The file itself, and the `outcomes` block monitoring reads too (another stage, which cannot
import this one), live in the shared pipelines/model_policy.py.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.model_policy import POLICY_FILE as POLICY_FILE  # re-exported: tests read it here
from pipelines.model_policy import OutcomesPolicy, invalid, model_entry


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


class FloorPolicy(BaseModel):
    """What every champion stands on, whatever it replaces (registry/floor.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # the lower bound of the challenger's test AUC CI; checked at the first promotion (later
    # ones are held to the champion, which passed it)
    min_auc_ci_low: float = Field(ge=0.5, le=1.0)
    # fine-tuned from a base: the lower bound of the CI of AUC(challenger) - AUC(base as is)
    # must be above -base_auc_margin, at every promotion
    base_auc_margin: float = Field(ge=0.0, le=0.5)


class PromotionPolicy(BaseModel):
    """The gate a challenger must pass to become champion (margins are positive drops)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auc_margin: float = Field(ge=0.0, le=0.5)
    sensitivity_margin: float = Field(ge=0.0, le=1.0)
    subgroup_margin: float = Field(ge=0.0, le=1.0)
    subgroup_min_exams: int = Field(ge=2)
    subgroups: tuple[str, ...] = ()
    bootstrap: BootstrapPolicy
    floor: FloorPolicy | None = None  # None: a first promotion is not scored at all
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
    outcomes: OutcomesPolicy | None = None  # realised performance minimum (monitoring alert)


def load_policy(model_name: str, path: Path | None = None) -> ModelPolicy:
    """The policy of `model_name` in `path`.

    Raises:
        PolicyInvalid: the file is missing or unreadable, has no entry for the model, or
            the entry is invalid (the message names the field).
    """
    entry, path = model_entry(model_name, path)
    try:
        return ModelPolicy.model_validate(entry)
    except ValidationError as exc:
        raise invalid(path, model_name, exc) from exc
