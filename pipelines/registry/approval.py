"""Who approves a change of champion, and whether a version holding `champion` was approved.

The approver is a login, never a typed name: the Airflow user who triggered the deploy DAG
(`approved_via="airflow"`, Airflow's own authentication put the name on the run), or the
MLflow login the CLI's credentials belong to (`"mlflow"`, checked by the server on every
call). The policy's approver list (mlflow/registered_models.yaml) names the logins that may
approve and the display name the audit keeps beside each. The pipeline's service login
never approves.

A version is the approved champion when the newest `promoted` or `rolled_back` row of the
`promotions` audit table names it. Deploy serves nothing else in the champion slot, and the
integrity check reports an alias or a served version no row approved: moving the alias in
MLflow by hand skips the gate, so it is refused here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from pipelines import db
from pipelines.config import PIPELINE_MLFLOW_LOGIN
from pipelines.errors import PermanentError, UnapprovedChampion

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from pipelines.registry.policy import PromotionPolicy

Via = Literal["airflow", "mlflow"]
APPROVED = ("promoted", "rolled_back")


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
        from pipelines.registry.client import logged_in_user

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


def approved_champion(conn: Connection, model_name: str) -> Mapping[str, Any] | None:
    """The newest audit row that made a version champion (promoted or rolled back), or None."""
    table = db.promotions
    row = conn.execute(
        sa.select(table).where(table.c.model_name == model_name, table.c.outcome.in_(APPROVED))
        .order_by(table.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row is not None else None


def approved_versions(conn: Connection, model_name: str) -> set[str]:
    """Every version an audited promotion or rollback ever made champion."""
    table = db.promotions
    return set(conn.execute(sa.select(table.c.version).where(
        table.c.model_name == model_name, table.c.outcome.in_(APPROVED))).scalars())


def unapproved_reason(model_name: str, version: str) -> str:
    """Why `version` may not serve as champion ("" when it is the approved champion)."""
    with db.get_engine().connect() as conn:
        row = approved_champion(conn, model_name)
    if row is not None and str(row["version"]) == str(version):
        return ""
    now = (f"the approved champion is version {row['version']} ({row['outcome']} by {row['approver']})"
           if row is not None else "no version was ever promoted")
    return (f"{model_name} version {version} holds alias champion, but no promotion or rollback in "
            f"the audit table made it champion ({now}): the alias was moved outside `radflow "
            "promote`/`rollback`. Promote it through the gate (deploy_mammo_model or `radflow "
            "promote`), or move the alias back")


def require_approved(model_name: str, version: str) -> None:
    """Raises UnapprovedChampion unless `version` is the audited champion of `model_name`."""
    reason = unapproved_reason(model_name, version)
    if reason:
        raise UnapprovedChampion(reason)
