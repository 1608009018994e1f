"""`radflow promote`: move alias `champion` to a version, with a named human approver.

The measured gate (challenger against champion) comes with issue 4; this records who
approved, when and why, in the audit table and as MLflow tags.
"""

from __future__ import annotations

import datetime as dt
import logging

from pipelines import db
from pipelines.config import get_settings
from pipelines.domain import PromotionResult
from pipelines.errors import PermanentError
from pipelines.registry.client import mlflow_client, require_version, version_by_alias

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"


def run(approver: str, reason: str = "", version: str | None = None) -> PromotionResult:
    """Point `champion` at `version` (default: the challenger) and audit it.

    Raises:
        PermanentError: no approver was named.
        RegistryError: there is no challenger to promote.
    """
    approver = (approver or "").strip()
    if not approver:
        raise PermanentError("promotion needs a named approver (--approver NAME)")
    s = get_settings()
    client = mlflow_client()
    target = version or str(require_version(client, s.registered_model, CHALLENGER).version)
    client.get_model_version(s.registered_model, target)  # raises if it does not exist
    current = version_by_alias(client, s.registered_model, CHAMPION)
    previous = str(current.version) if current is not None else None
    with db.get_engine().begin() as conn:
        conn.execute(db.promotions.insert().values(
            model_name=s.registered_model, version=target, alias=CHAMPION,
            previous_version=previous, approver=approver, reason=reason,
        ))
        client.set_registered_model_alias(s.registered_model, CHAMPION, target)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for key, value in {"approved_by": approver, "approved_at": stamp,
                       "approval_reason": reason, "promoted_from": previous or ""}.items():
        client.set_model_version_tag(s.registered_model, target, key, value)
    log.info("promote: %s version %s is champion (was %s), approved by %s",
             s.registered_model, target, previous, approver)
    return PromotionResult(model_name=s.registered_model, version=target, alias=CHAMPION,
                           approver=approver, previous_version=previous)
