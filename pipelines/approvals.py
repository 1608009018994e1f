"""Whether a version holding `champion` was approved: the read side of the `promotions` audit.

A version is the approved champion when the newest `promoted` or `rolled_back` row of the
`promotions` audit table names it. Deploy serves nothing else in the champion slot, and the
integrity check reports an alias or a served version no row approved: moving the alias in
MLflow by hand skips the gate, so it is refused. Who may approve is the registry's
(pipelines/registry/approval.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pipelines import db
from pipelines.errors import UnapprovedChampion

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

APPROVED = ("promoted", "rolled_back")


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
