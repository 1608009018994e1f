"""Who may approve a change of champion (logins, the policy's list) and which version the
audit table says is champion."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import approvals, db
from pipelines.errors import PermanentError, UnapprovedChampion
from pipelines.registry import approval, audit
from pipelines.registry.policy import Approver, BootstrapPolicy, PromotionPolicy, load_policy
from pipelines.tracking import CREDENTIALS

POLICY = PromotionPolicy(
    auc_margin=0.02, sensitivity_margin=0.05, subgroup_margin=0.05, subgroup_min_exams=20,
    bootstrap=BootstrapPolicy(resamples=300, seed=7))
LISTED = POLICY.model_copy(update={"approvers": (Approver(login="ada", name="Dr. Ada Reviewer"),
                                                 Approver(login="bob"))})


def test_an_airflow_login_listed_in_the_policy_approves_under_its_display_name() -> None:
    who = approval.identify(LISTED, "airflow", "ada")
    assert (who.login, who.name, who.via, who.allowed) == ("ada", "Dr. Ada Reviewer", "airflow", True)
    assert approval.identify(LISTED, "airflow", "bob").name == "bob"  # no display name given


def test_a_login_outside_the_list_is_refused_with_the_list_named() -> None:
    who = approval.identify(LISTED, "airflow", "eve")
    assert not who.allowed
    assert "'eve' (airflow) is not an approver" in who.refusal and "ada, bob" in who.refusal


def test_an_empty_list_admits_any_authenticated_login() -> None:
    assert approval.identify(POLICY, "airflow", "anyone").allowed


def test_a_run_nobody_triggered_has_no_approver() -> None:
    with pytest.raises(PermanentError, match="no triggering user"):
        approval.identify(POLICY, "airflow", None)


def test_the_cli_approves_as_its_mlflow_login_never_the_pipeline_service_user(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CREDENTIALS[0], "ada")
    assert approval.identify(LISTED, "mlflow", "typed-name-ignored").login == "ada"
    monkeypatch.setenv(CREDENTIALS[0], "radflow-pipeline")
    who = approval.identify(POLICY, "mlflow", None)
    assert not who.allowed and "service login" in who.refusal
    monkeypatch.delenv(CREDENTIALS[0])
    with pytest.raises(PermanentError, match="no MLflow login"):
        approval.identify(POLICY, "mlflow", None)


def test_the_policy_file_takes_bare_logins_and_logins_with_names(tmp_path: Path) -> None:
    import yaml

    from pipelines.registry.policy import POLICY_FILE

    document = yaml.safe_load(POLICY_FILE.read_text())
    document["models"]["mammo-screening"]["promotion"]["approvers"] = [
        "carol", {"login": "ada", "name": "Dr. Ada Reviewer"}]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    policy = load_policy("mammo-screening", path).promotion
    assert [(a.login, a.display_name) for a in policy.approvers] == [
        ("carol", "carol"), ("ada", "Dr. Ada Reviewer")]


def _row(conn, version: str, outcome: str, action: str = audit.PROMOTE) -> None:
    audit.record(conn, model_name="m", action=action, version=version, alias="champion",
                 previous_version=None, approver="ada", reason="r", outcome=outcome, gates={},
                 approver_name="Dr. Ada Reviewer", approved_via="airflow")


def test_the_approved_champion_is_the_newest_promoted_or_rolled_back_version() -> None:
    with db.get_engine().begin() as conn:
        assert approvals.approved_champion(conn, "m") is None
        _row(conn, "1", audit.PROMOTED)
        _row(conn, "2", audit.PROMOTED)
        _row(conn, "3", audit.REFUSED)
        assert approvals.approved_champion(conn, "m")["version"] == "2"  # type: ignore[index]
        _row(conn, "1", audit.ROLLED_BACK, audit.ROLLBACK)
        assert approvals.approved_champion(conn, "m")["version"] == "1"  # type: ignore[index]
        assert approvals.approved_versions(conn, "m") == {"1", "2"}
        stored = conn.execute(db.promotions.select()).mappings().first()
    assert (stored["approver"], stored["approver_name"], stored["approved_via"]) == (
        "ada", "Dr. Ada Reviewer", "airflow")


def test_a_version_no_audited_promotion_made_champion_is_refused_by_name() -> None:
    with pytest.raises(UnapprovedChampion, match="no version was ever promoted"):
        approvals.require_approved("m", "1")
    with db.get_engine().begin() as conn:
        _row(conn, "1", audit.PROMOTED)
    approvals.require_approved("m", "1")
    with pytest.raises(UnapprovedChampion, match=r"version 2 holds alias champion.*approved champion is "
                                                 r"version 1"):
        approvals.require_approved("m", "2")
