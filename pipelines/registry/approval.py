"""Who approves a change of champion.

The approver is a login, never a typed name: the Airflow user who triggered the deploy DAG
(`approved_via="airflow"`, Airflow's own authentication put the name on the run), or the
MLflow login the CLI's credentials belong to (`"mlflow"`, checked by the server on every
call). The policy's approver list (mlflow/registered_models.yaml) names the logins that may
approve and the display name the audit keeps beside each. The pipeline's service login
never approves. Whether a version was approved is pipelines/approvals.py.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

from pipelines.config import PIPELINE_MLFLOW_LOGIN
from pipelines.errors import PermanentError

if TYPE_CHECKING:
    from pipelines.registry.policy import PromotionPolicy

Via = Literal["airflow", "mlflow"]


@dataclasses.dataclass(frozen=True)
class Identity:
    login: str
    name: str  # display name from the policy (the login when the policy gives none)
    via: Via
    refusal: str  # why this login may not approve; "" when it may

    @property
    def allowed(self) -> bool:
        return not self.refusal


def identify(policy: PromotionPolicy, via: Via, login: str | None) -> Identity:
    """The approving identity: `login` as Airflow authenticated it, or this process's MLflow login.

    Raises:
        PermanentError: there is no authenticated login (a deploy run nobody triggered).
    """
    if via == "mlflow":
        from pipelines.tracking import logged_in_user

        login = logged_in_user()
    login = (login or "").strip()
    if not login:
        where = ("the deploy DAG run has no triggering user: trigger it while logged in to Airflow"
                 if via == "airflow" else "no MLflow login: set RADFLOW_MLFLOW_USERNAME/_PASSWORD")
        raise PermanentError(f"a change of champion needs an authenticated approver; {where}")
    if via == "mlflow" and login == PIPELINE_MLFLOW_LOGIN:
        return Identity(login, login, via, f"{login!r} is the pipeline's service login, which never "
                        "approves: set RADFLOW_MLFLOW_USERNAME and RADFLOW_MLFLOW_PASSWORD to your own "
                        "MLflow login")
    listed = policy.approver(login)
    if listed is None:
        names = ", ".join(a.login for a in policy.approvers)
        return Identity(login, login, via, f"login {login!r} ({via}) is not an approver listed in the "
                        f"promotion policy ({names})")
    return Identity(login, listed.display_name, via, "")
