"""The `promotions` audit table: one append-only row per promotion attempt and rollback."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pipelines import db

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

PROMOTE, ROLLBACK = "promote", "rollback"
PROMOTED, REFUSED, ROLLED_BACK = "promoted", "refused", "rolled_back"


def record(conn: Connection, *, model_name: str, action: str, version: str, alias: str,
           previous_version: str | None, approver: str, reason: str, outcome: str,
           gates: Mapping[str, Any], dataset_version: str | None = None,
           report_run_id: str | None = None, approver_name: str = "",
           approved_via: str = "") -> int:
    """Append one audit row (`approver` is the login, `approver_name` its display name);
    returns its id."""
    result = conn.execute(db.promotions.insert().values(
        model_name=model_name, action=action, version=version, alias=alias,
        previous_version=previous_version, approver=approver, reason=reason, outcome=outcome,
        gates=json.dumps(gates, sort_keys=True), dataset_version=dataset_version,
        report_run_id=report_run_id, approver_name=approver_name or approver,
        approved_via=approved_via or None,
    ))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def last_promotion(conn: Connection, model_name: str, version: str) -> Mapping[str, Any] | None:
    """The latest row that made `version` champion by promotion, or None if none did."""
    table = db.promotions
    row = conn.execute(
        sa.select(table)
        .where(table.c.model_name == model_name, table.c.version == version,
               table.c.action == PROMOTE, table.c.outcome == PROMOTED)
        .order_by(table.c.id.desc()).limit(1)
    ).mappings().first()
    return dict(row) if row is not None else None
