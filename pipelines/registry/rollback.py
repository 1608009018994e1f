"""`radflow rollback`: move alias `champion` back to the version the current one replaced.

Which version that was comes from the audit table (the promotion that made the current
champion), so repeated rollbacks walk back through the promotion history. A named
approver and a reason are required; the rollback is audited and tagged on both versions.
It moves the alias only: `radflow deploy` (or the deploy DAG) then serves it.
"""

from __future__ import annotations

import datetime as dt
import logging

from pipelines import db
from pipelines.config import get_settings
from pipelines.domain import RollbackResult
from pipelines.errors import RegistryError
from pipelines.registry import audit
from pipelines.registry.client import mlflow_client, require_version
from pipelines.registry.policy import load_policy
from pipelines.registry.promote import CHAMPION, check_approver, get_version, required_text

log = logging.getLogger(__name__)


def run(approver: str, reason: str) -> RollbackResult:
    """Restore the previous champion and audit it.

    Raises:
        PermanentError: the approver or the reason is blank, or the approver is not listed.
        RegistryError: there is no champion, or nothing recorded to roll back to.
    """
    approver = required_text(approver, "approver", "--approver NAME")
    reason = required_text(reason, "reason", "--reason TEXT")
    name = get_settings().registered_model
    check_approver(approver, load_policy(name).promotion)
    client = mlflow_client()
    current = str(require_version(client, name, CHAMPION).version)
    with db.get_engine().begin() as conn:
        promoted = audit.last_promotion(conn, name, current)
        if promoted is None:
            raise RegistryError(f"nothing to roll back to: {name} version {current} did not "
                                "become champion through `radflow promote`")
        if promoted["previous_version"] is None:
            raise RegistryError(f"nothing to roll back to: {name} version {current} was the "
                                "first champion")
        target = str(get_version(client, name, promoted["previous_version"]).version)
        audit_id = audit.record(
            conn, model_name=name, action=audit.ROLLBACK, version=target, alias=CHAMPION,
            previous_version=current, approver=approver, reason=reason,
            outcome=audit.ROLLED_BACK, gates={"checks": [], "skipped_subgroups": []})
        client.set_registered_model_alias(name, CHAMPION, target)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for key, value in {"rolled_back_by": approver, "rolled_back_at": stamp,
                       "rollback_reason": reason, "rolled_back_from": current}.items():
        client.set_model_version_tag(name, target, key, value)
    client.set_model_version_tag(name, current, "demoted_at", stamp)
    log.info("rollback: %s champion is version %s again (was %s), approved by %s",
             name, target, current, approver)
    return RollbackResult(model_name=name, version=target, alias=CHAMPION, approver=approver,
                          reason=reason, rolled_back_from=current, audit_id=audit_id)
