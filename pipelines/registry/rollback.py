"""`radflow rollback`: move alias `champion` back to the version the current one replaced.

Which version that was comes from the audit table (the promotion that made the current
champion), so repeated rollbacks walk back through the promotion history. The approver is
the authenticated login (the CLI's MLflow login, listed in the policy) and a reason is
required; the rollback is audited (a refused login too) and tagged on both versions. It
moves the alias only: `radflow deploy` (or the deploy DAG) then serves it.
"""

from __future__ import annotations

import datetime as dt
import logging

from pipelines import db
from pipelines.domain import RollbackResult
from pipelines.errors import RegistryError
from pipelines.registry import audit
from pipelines.registry.approval import Via, identify
from pipelines.registry.policy import load_policy
from pipelines.registry.promote import CHAMPION, Attempt, get_version, refuse_login, required_text
from pipelines.tasks import get_task
from pipelines.tracking import mlflow_client, require_version

log = logging.getLogger(__name__)


def run(reason: str, *, task: str = "mammo", via: Via = "mlflow",
        approver: str | None = None) -> RollbackResult:
    """Restore the previous champion of `task`'s registered model and audit it (approver: as
    in promote.run).

    Raises:
        PermanentError: the reason is blank, or there is no authenticated approver.
        PromotionRefused: the login may not approve (audited).
        RegistryError: there is no champion, or nothing recorded to roll back to.
    """
    reason = required_text(reason, "reason", "--reason TEXT")
    definition = get_task(task)
    name = definition.registered_model
    policy = load_policy(definition.policy).promotion
    client = mlflow_client()
    who = identify(policy, via, approver)
    current = str(require_version(client, name, CHAMPION).version)
    if not who.allowed:
        refuse_login(Attempt(name, current, current, who.login, reason, who.name, who.via),
                     audit.ROLLBACK, who)
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
            previous_version=current, approver=who.login, reason=reason,
            outcome=audit.ROLLED_BACK, gates={"checks": [], "skipped_subgroups": []},
            approver_name=who.name, approved_via=who.via)
        client.set_registered_model_alias(name, CHAMPION, target)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for key, value in {"rolled_back_by": who.login, "rolled_back_at": stamp,
                       "rollback_reason": reason, "rolled_back_from": current}.items():
        client.set_model_version_tag(name, target, key, value)
    client.set_model_version_tag(name, current, "demoted_at", stamp)
    log.info("rollback: %s champion is version %s again (was %s), approved by %s (%s)",
             name, target, current, who.login, who.via)
    return RollbackResult(model_name=name, version=target, alias=CHAMPION, approver=who.login,
                          reason=reason, rolled_back_from=current, audit_id=audit_id,
                          approver_name=who.name, approved_via=who.via)
