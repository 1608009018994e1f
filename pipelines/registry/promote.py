"""`radflow promote`: move alias `champion` to a challenger that passes the gate.

The challenger is compared with the current champion on the same frozen test split
(`registry.gate`, margins from mlflow/registered_models.yaml), and held to the policy's
floor (`registry.floor`: a first champion's AUC; a fine-tuned challenger against its base
as is). The report shows the base as is, the challenger and the champion side by side. The approver is an
authenticated login listed in the policy (pipelines/registry/approval.py: the Airflow user
who triggered the deploy DAG, or the CLI's MLflow login) and a reason is required; there is
no override. Every attempt writes a row in the audit table, refused ones included (a login
that may not approve is refused before the gate runs); a gate that ran also writes a
promotion report (JSON and HTML) to MLflow, and a passed gate moves the alias and tags the
version with who approved it, when and why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines import db
from pipelines.domain import PromotionResult
from pipelines.errors import PermanentError, PromotionRefused, RegistryError
from pipelines.registry import audit, compare, floor, gate, report
from pipelines.registry.approval import Identity, Via, identify
from pipelines.registry.policy import PromotionPolicy, load_policy
from pipelines.tasks import TaskDefinition, get_task
from pipelines.tracking import mlflow_client, reaching_mlflow, require_version, unavailable, version_by_alias

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"


def required_text(value: str | None, what: str, flag: str) -> str:
    """`value` stripped; a PermanentError naming `flag` if it is blank."""
    text = (value or "").strip()
    if not text:
        raise PermanentError(f"a change of champion needs a non-blank {what} ({flag})")
    return text


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if (outage := unavailable(exc, f"the lookup of {name} version {version}")) is not None:
            raise outage from exc
        raise RegistryError(f"registered model {name!r} has no version {version!r}") from exc


@reaching_mlflow("promotion")
def run(reason: str, version: str | None = None, *, task: str = "mammo", via: Via = "mlflow",
        approver: str | None = None) -> PromotionResult:
    """Gate `version` (default: the challenger) against the champion; promote it if it passes.

    Args:
        task: the task (pipelines/tasks.yaml) whose registered model, policy and dataset apply.
        via: "mlflow" (the CLI: the approver is this process's MLflow login) or "airflow"
            (the deploy DAG: `approver` is the login that triggered the run).

    Raises:
        PermanentError: the reason is blank, or there is no authenticated approver.
        PolicyInvalid: the registered-model policy is missing or invalid.
        RegistryError: the version (or the challenger) does not exist.
        PromotionRefused: the login may not approve, or a check of the gate failed (audited).
        MlflowUnavailable: MLflow could not be reached (retry); the alias moves with its
            audit row or neither is written.
    """
    reason = required_text(reason, "reason", "--reason TEXT")
    definition = get_task(task)
    name = definition.registered_model
    policy = load_policy(definition.policy).promotion
    client = mlflow_client()
    who = identify(policy, via, approver)
    target = get_version(client, name, version or str(require_version(client, name, CHALLENGER).version))
    champion = version_by_alias(client, name, CHAMPION)
    attempt = Attempt(name, str(target.version), str(champion.version) if champion else None,
                      who.login, reason, who.name, who.via)
    if not who.allowed:
        refuse_login(attempt, audit.PROMOTE, who)
    if attempt.previous_version == attempt.version:
        log.info("promote: %s version %s already is champion", name, attempt.version)
        return attempt.result("unchanged", None, None, None)
    result, dataset_version, compared = _run_gate(target, champion, policy, definition)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    outcome = audit.PROMOTED if result.passed else audit.REFUSED
    run_id = report.log_report({
        **attempt.as_json(), "outcome": outcome, "at": stamp, "dataset_version": dataset_version,
        "policy": policy.model_dump(mode="json"), "gate": result.as_json(), "comparison": compared})
    if not result.passed:
        with db.get_engine().begin() as conn:
            attempt.record(conn, audit.REFUSED, result, dataset_version, run_id)
        raise PromotionRefused(_refusal(attempt, result, run_id))
    audit_id = _move_alias(client, attempt, result, dataset_version, run_id)
    for key, value in {"approved_by": who.login, "approved_by_name": who.name, "approved_via": who.via,
                       "approved_at": stamp, "approval_reason": reason,
                       "promoted_from": attempt.previous_version or "",
                       "gate_summary": report.summary(result.as_json()),
                       "promotion_report_run": run_id}.items():
        client.set_model_version_tag(name, attempt.version, key, value)
    log.info("promote: %s version %s is champion (was %s), approved by %s (%s)",
             name, attempt.version, attempt.previous_version, who.login, who.via)
    return attempt.result(outcome, result, dataset_version, run_id, audit_id)


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One promotion attempt: which version would replace which, approved by whom and why."""

    model_name: str
    version: str
    previous_version: str | None
    approver: str  # the login
    reason: str
    approver_name: str = ""
    approved_via: str = ""

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def record(self, conn: Connection, outcome: str, result: gate.GateResult,
               dataset_version: str | None, run_id: str) -> int:
        return audit.record(
            conn, model_name=self.model_name, action=audit.PROMOTE, version=self.version,
            alias=CHAMPION, previous_version=self.previous_version, approver=self.approver,
            reason=self.reason, outcome=outcome, gates=result.as_json(),
            dataset_version=dataset_version, report_run_id=run_id,
            approver_name=self.approver_name, approved_via=self.approved_via)

    def result(self, outcome: str, gate_result: gate.GateResult | None,
               dataset_version: str | None, run_id: str | None,
               audit_id: int | None = None) -> PromotionResult:
        return PromotionResult(
            model_name=self.model_name, version=self.version, alias=CHAMPION,
            approver=self.approver, reason=self.reason, previous_version=self.previous_version,
            outcome=outcome, checks=gate_result.checks if gate_result else [],
            skipped_subgroups=gate_result.skipped if gate_result else [],
            dataset_version=dataset_version, report_run_id=run_id, audit_id=audit_id,
            approver_name=self.approver_name, approved_via=self.approved_via)


def refuse_login(attempt: Attempt, action: str, who: Identity) -> None:
    """Audit a change of champion refused because its login may not approve, and raise."""
    check = gate.GateCheck(name="approver", value=None, limit=None, passed=False, detail=who.refusal)
    refused = gate.GateResult(checks=[check], metrics={}, exams=0, positives=0, skipped=[])
    with db.get_engine().begin() as conn:
        audit.record(conn, model_name=attempt.model_name, action=action, version=attempt.version,
                     alias=CHAMPION, previous_version=attempt.previous_version, approver=who.login,
                     reason=attempt.reason, outcome=audit.REFUSED, gates=refused.as_json(),
                     approver_name=who.name, approved_via=who.via)
    log.warning("%s of %s version %s refused: %s", action, attempt.model_name, attempt.version, who.refusal)
    raise PromotionRefused(f"{action} of {attempt.model_name} version {attempt.version} refused, "
                           f"the champion stays version {attempt.previous_version}: {who.refusal}")


def _run_gate(target: ModelVersion, champion: ModelVersion | None, policy: PromotionPolicy,
              task: TaskDefinition) -> tuple[gate.GateResult, str | None, list[dict[str, Any]]]:
    """(the gate's result, the test split's dataset version, the comparison table of the
    base as is, the challenger and the champion on that split)."""
    if champion is None and policy.floor is None:
        return gate.first_promotion(), None, []
    scored = compare.score_versions(target, champion, policy, task.dataset, task.aggregation)
    if scored.champion is None:
        result = gate.first_promotion(scored.labels)
    else:
        result = gate.compare(scored.labels, scored.challenger, scored.champion, scored.attributes,
                              policy)
    if any(c.name == gate.TEST_SET for c in result.checks):  # one class: nothing is measurable
        return result, scored.dataset_version, []
    checks, metrics = floor.checks(scored.labels, scored.challenger, policy,
                                   first=scored.champion is None, base=scored.base,
                                   base_uri=scored.base_uri, base_problem=scored.base_problem)
    return (gate.extended(result, checks, metrics), scored.dataset_version,
            _comparison(scored, target, champion, policy))


def _comparison(scored: compare.GateInput, target: ModelVersion, champion: ModelVersion | None,
                policy: PromotionPolicy) -> list[dict[str, Any]]:
    """The three-way table (pipelines/metrics/comparison.py) from the gate's own scores."""
    from pipelines.metrics import comparison

    contenders = []
    if scored.base is not None:
        point = scored.base.operating_point
        contenders.append(comparison.Contender(comparison.BASE, scored.base_uri, scored.base.scores,
                                               None if np.isnan(point) else point))
    role = comparison.CHALLENGER if scored.base_uri else comparison.CHALLENGER_FROM_SCRATCH
    contenders.append(comparison.Contender(role, f"{target.name} version {target.version}",
                                           scored.challenger.scores, scored.challenger.operating_point))
    if scored.champion is not None and champion is not None:
        contenders.append(comparison.Contender(
            comparison.CHAMPION, f"{champion.name} version {champion.version}",
            scored.champion.scores, scored.champion.operating_point))
    rows = comparison.compare(scored.labels, contenders, resamples=policy.bootstrap.resamples,
                              seed=policy.bootstrap.seed, level=policy.bootstrap.confidence)
    return comparison.as_json(rows)


def _move_alias(client: MlflowClient, attempt: Attempt, result: gate.GateResult,
                dataset_version: str | None, run_id: str) -> int:
    """Audit and move the alias in one transaction: a failed alias move leaves no row."""
    name = attempt.model_name
    with db.get_engine().begin() as conn:
        audit_id = attempt.record(conn, audit.PROMOTED, result, dataset_version, run_id)
        now = version_by_alias(client, name, CHAMPION)
        if (str(now.version) if now is not None else None) != attempt.previous_version:
            raise PermanentError(
                f"the champion of {name} changed from version {attempt.previous_version} to "
                f"{now.version if now else None} while the gate ran: run promote again")
        client.set_registered_model_alias(name, CHAMPION, attempt.version)
    return audit_id


def _refusal(attempt: Attempt, result: gate.GateResult, run_id: str) -> str:
    failed = "; ".join(f"{c.name} failed: {c.detail}" for c in result.failed)
    return (f"promotion of {attempt.model_name} version {attempt.version} refused, the champion "
            f"stays version {attempt.previous_version}: {failed}. Report: MLflow run {run_id}")
