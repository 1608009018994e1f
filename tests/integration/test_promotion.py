"""The promotion gate, its audit trail and rollback, through the CLI, against a real
MLflow server and PostgreSQL.

Three registered versions of mammo-screening, all scored by the gate from MLflow:
1. `radflow train`'s model, trained on the frozen dataset;
2. an answer key: it looks up each view of the frozen test split and returns its label,
   so its AUC and sensitivity on that split are 1 in every bootstrap resample;
3. a blind model, the training architecture with its output layer zeroed: the same score
   for every view (AUC 0.5 in every resample, nothing flagged at its operating point).
A model trained on the few exams a test can afford is close to chance on ~10 test exams,
so a trained model against a blind one could rightly go either way; the answer key and
the blind model are the best and worst a model can be, so the gate's answers are certain.

The tests run in file order, as a hospital would live it: the blind model is refused as
first champion by the policy's floor; the trained model becomes the first champion (this
module's policy has no floor: ~10 test exams give too wide a CI for one); the answer key
beats it and is promoted with its approver recorded, the blind model is refused with the
failing gates named, and rollback brings back the trained model. The approver is the ML
team's MLflow login `ada`, listed in the policy as "Dr. Ada Reviewer"; the stack's admin
login is not listed and is refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.stack import Stack, policy_with_approvers

DATE, EXAMS = "2026-11-02", 48
MODEL = "mammo-screening"
APPROVER, APPROVER_NAME, REASON = "ada", "Dr. Ada Reviewer", "higher AUC on the frozen test set"
PASSWORD = "ada-test-Passw0rd-1"


def stack_settings(folder: Path) -> dict[str, str]:
    policy = policy_with_approvers(folder, [{"login": APPROVER, "name": APPROVER_NAME}])
    return {"RADFLOW_REGISTRY_POLICY_FILE": str(policy)}


def as_ada(stack: Stack) -> dict[str, str]:
    return stack.login_env(APPROVER, PASSWORD)
BLIND_SCORE, BLIND_OPERATING_POINT = 0.3, 0.9  # every view 0.3: AUC 0.5, nothing flagged


@pytest.fixture(scope="module")
def registry(stack: Stack) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")


@pytest.fixture(scope="module")
def versions(stack: Stack, registry: Any) -> dict[str, str]:
    """{"trained", "answer_key", "blind"}: their registered version numbers."""
    stack.radflow("synth", "--exams", str(EXAMS), "--date", DATE, "--site", "general",
                  "--seed", "31", "--positive-rate", "0.5")
    stack.wait_stable()
    stack.radflow("ingest")
    stack.radflow("validate")
    stack.radflow("build-dataset")
    trained = stack.radflow("train")["model_version"]
    added = stack.radflow("user", "add", APPROVER, "--role", "ml-team", "--name", "Ada Reviewer",
                          env={**stack.env, "RADFLOW_NEW_USER_PASSWORD": PASSWORD})
    assert (added["mlflow_role"], added["airflow"]) == ("ml-team", "not set up")  # no Airflow here
    with settings_of(stack):
        return {"trained": trained, "answer_key": register_answer_key(),
                "blind": register_blind_model()}


@contextmanager
def settings_of(stack: Stack) -> Iterator[None]:
    """radflow's settings (state dir, MLflow port) pointed at the stack, in this process."""
    from pipelines import config

    with pytest.MonkeyPatch.context() as patch:
        for key, value in stack.env.items():
            if key.startswith("RADFLOW_"):
                patch.setenv(key, value)
        config.reset_settings()
        try:
            yield
        finally:
            config.reset_settings()


def register_answer_key() -> str:
    """Version 2: the test split's view labels, looked up by nearest stored image."""
    import torch

    from pipelines.frozen import load_split

    rows, images, _ = load_split("mammo", "test")
    labelled = rows.label.notna().to_numpy()

    class AnswerKey(torch.nn.Module):
        def __init__(self, keys: np.ndarray, answers: np.ndarray) -> None:
            super().__init__()
            flat = torch.from_numpy(keys).flatten(1)
            self.register_buffer("keys", flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-6))
            self.register_buffer("answers", torch.from_numpy(answers.astype(np.float32)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(1)
            nearest = (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-6) @ self.keys.T).argmax(1)
            return (0.01 + 0.98 * self.answers[nearest])[:, None]

    model = AnswerKey(images[labelled], rows.label.to_numpy()[labelled])
    return log_model(model, images[:2], operating_point=0.5, signature=None)


def register_blind_model() -> str:
    """Version 3: the training architecture whose output layer ignores the image."""
    import torch

    from pipelines.frozen import load_split
    from pipelines.training.model import ViewClassifier
    from pipelines.training.run import signature

    model = ViewClassifier().eval()
    output_layer = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        output_layer.weight.zero_()
        output_layer.bias.fill_(math.log(BLIND_SCORE / (1 - BLIND_SCORE)))
    example = load_split("mammo", "test")[1][:2]
    return log_model(model, example, BLIND_OPERATING_POINT, signature(model, example))


def log_model(model: Any, example: np.ndarray, operating_point: float, signature: Any) -> str:
    """Register `model` as training does (pt2 with an input example), tag its operating point."""
    import torch

    import mlflow
    from pipelines.tracking import mlflow_client

    client = mlflow_client()
    mlflow.set_experiment("mammo-screening")
    with mlflow.start_run(run_name=f"test-{type(model).__name__}"):
        info = mlflow.pytorch.log_model(
            model, name="model", registered_model_name=MODEL, input_example=example,
            signature=signature, pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    version = str(info.registered_model_version)
    client.set_model_version_tag(MODEL, version, "operating_point", str(operating_point))
    return version


def audit_rows(stack: Stack) -> list[dict[str, Any]]:
    return stack.query("SELECT action, version, previous_version, approver, approver_name, approved_via, "
                       "reason, outcome, gates, report_run_id, dataset_version FROM promotions ORDER BY id")


def champion(registry: Any) -> str:
    return str(registry.get_model_version_by_alias(MODEL, "champion").version)


def test_a_login_outside_the_approver_list_is_refused_and_audited(
        stack: Stack, versions: dict[str, str], registry: Any) -> None:
    refused = stack.radflow("promote", "--reason", "first champion", login="admin", ok=False)
    assert refused["type"] == "PromotionRefused"
    assert "login 'admin' (mlflow) is not an approver listed" in refused["error"]
    assert registry.get_registered_model(MODEL).aliases.get("champion") is None
    [row] = audit_rows(stack)
    assert (row["action"], row["outcome"], row["approver"], row["approved_via"]) == (
        "promote", "refused", "admin", "mlflow")
    assert [c["name"] for c in json.loads(row["gates"])["checks"]] == ["approver"]


def test_a_first_champion_below_the_policy_floor_is_refused_with_the_check_named(
        stack: Stack, versions: dict[str, str], registry: Any, tmp_path: Path) -> None:
    """The repository's floor (the lower bound of the test AUC CI), on the blind model."""
    import mlflow

    strict = policy_with_approvers(tmp_path, [{"login": APPROVER, "name": APPROVER_NAME}], floor=True)
    refused = stack.radflow("promote", "--version", versions["blind"], "--reason", "blind first",
                            ok=False, env={**as_ada(stack), "RADFLOW_REGISTRY_POLICY_FILE": str(strict)})
    assert refused["type"] == "PromotionRefused"
    assert "auc_floor failed: first champion: test AUC 0.500" in refused["error"]
    assert "the lower bound must reach the policy's floor 0.750" in refused["error"]
    assert registry.get_registered_model(MODEL).aliases.get("champion") is None
    row = audit_rows(stack)[-1]
    assert (row["version"], row["outcome"], row["approver"]) == (versions["blind"], "refused", APPROVER)
    assert [(c["name"], c["passed"]) for c in json.loads(row["gates"])["checks"]] == [
        ("no_champion", True), ("auc_floor", False)]
    mlflow.set_tracking_uri(registry.tracking_uri)
    report = mlflow.artifacts.load_dict(f"runs:/{row['report_run_id']}/promotion_report.json")
    [only] = report["comparison"]  # trained from scratch, no champion yet: itself alone
    assert (only["role"], only["auc"], only["auc_ci_low"]) == ("challenger (from scratch)", 0.5, 0.5)


def test_the_first_champion_has_nothing_to_compare_against(
        stack: Stack, versions: dict[str, str], registry: Any) -> None:
    out = stack.radflow("promote", "--reason", "first champion", env=as_ada(stack))
    assert out["version"] == versions["trained"]  # the challenger `radflow train` registered
    assert out["outcome"] == "promoted" and out["previous_version"] is None
    assert [(c["name"], c["passed"]) for c in out["checks"]] == [("no_champion", True)]
    assert champion(registry) == versions["trained"]
    *refused, row = audit_rows(stack)  # the two refused attempts above, then this
    assert [r["outcome"] for r in refused] == ["refused", "refused"]
    assert (row["action"], row["outcome"], row["approver"]) == ("promote", "promoted", APPROVER)
    assert (row["approver_name"], row["approved_via"]) == (APPROVER_NAME, "mlflow")


def test_a_better_challenger_passes_the_gate_with_its_approver_recorded(
        stack: Stack, versions: dict[str, str], registry: Any) -> None:
    registry.set_registered_model_alias(MODEL, "challenger", versions["answer_key"])
    out = stack.radflow("promote", "--reason", REASON, env=as_ada(stack))
    assert out["version"] == versions["answer_key"]
    assert out["outcome"] == "promoted" and out["previous_version"] == versions["trained"]
    checks = {c["name"]: c for c in out["checks"]}
    assert checks["auc_difference"]["passed"] and checks["auc_difference"]["limit"] == -0.02
    assert checks["auc_difference"]["value"] >= 0.0  # perfect in every resample
    assert checks["sensitivity_difference"]["passed"]
    assert all(c["passed"] for c in out["checks"])
    # one synthetic vendor with few test exams, and no density column: listed, not dropped
    assert {s["name"].split("=")[0] for s in out["skipped_subgroups"]} >= {
        "subgroup_auc_difference[manufacturer"}
    assert all(s["reason"] for s in out["skipped_subgroups"])
    assert champion(registry) == versions["answer_key"]

    row = audit_rows(stack)[-1]
    assert (row["action"], row["version"], row["previous_version"], row["outcome"]) == (
        "promote", versions["answer_key"], versions["trained"], "promoted")
    assert (row["approver"], row["reason"]) == (APPROVER, REASON)
    assert row["dataset_version"].endswith(".dir") and row["report_run_id"] == out["report_run_id"]
    assert json.loads(row["gates"])["checks"] == out["checks"]

    tags = registry.get_model_version(MODEL, versions["answer_key"]).tags
    assert tags["approved_by"] == APPROVER and tags["approval_reason"] == REASON
    assert tags["promoted_from"] == versions["trained"] and tags["approved_at"]
    assert "auc_difference=" in tags["gate_summary"] and "FAIL" not in tags["gate_summary"]

    import mlflow

    mlflow.set_tracking_uri(registry.tracking_uri)
    report = mlflow.artifacts.load_dict(f"runs:/{out['report_run_id']}/promotion_report.json")
    assert report["outcome"] == "promoted" and report["approver"] == APPROVER
    assert report["gate"]["metrics"]["challenger_auc"] == 1.0
    assert report["gate"]["exams"] >= 5 and report["policy"]["auc_margin"] == 0.02
    assert [(r["role"], r["model"]) for r in report["comparison"]] == [
        ("challenger (from scratch)", f"{MODEL} version {versions['answer_key']}"),
        ("champion", f"{MODEL} version {versions['trained']}")]
    assert report["comparison"][0]["auc"] == 1.0
    page = mlflow.artifacts.load_text(f"runs:/{out['report_run_id']}/promotion_report.html")
    assert "auc_difference" in page and APPROVER in page


def test_promoting_the_champion_again_changes_nothing(
        stack: Stack, versions: dict[str, str]) -> None:
    before = audit_rows(stack)
    out = stack.radflow("promote", "--version", versions["answer_key"], "--reason", "retry",
                        env=as_ada(stack))
    assert out["outcome"] == "unchanged" and out["audit_id"] is None
    assert audit_rows(stack) == before


def test_a_worse_challenger_is_refused_with_the_failing_gates_named(
        stack: Stack, versions: dict[str, str], registry: Any) -> None:
    refused = stack.radflow("promote", "--version", versions["blind"], "--reason", "try the blind one",
                            ok=False, env=as_ada(stack))
    assert refused["type"] == "PromotionRefused"
    assert "auc_difference failed" in refused["error"]
    assert "sensitivity_difference failed" in refused["error"]
    assert f"the champion stays version {versions['answer_key']}" in refused["error"]
    assert champion(registry) == versions["answer_key"]
    row = audit_rows(stack)[-1]
    assert (row["action"], row["version"], row["outcome"]) == ("promote", versions["blind"], "refused")
    assert (row["approver"], row["reason"]) == (APPROVER, "try the blind one")
    failed = {c["name"] for c in json.loads(row["gates"])["checks"] if not c["passed"]}
    assert failed == {"auc_difference", "sensitivity_difference"}
    assert "approved_by" not in registry.get_model_version(MODEL, versions["blind"]).tags


def test_rollback_restores_the_previous_champion(
        stack: Stack, versions: dict[str, str], registry: Any) -> None:
    out = stack.radflow("rollback", "--reason", "false positives up", env=as_ada(stack))
    assert out["version"] == versions["trained"]
    assert out["rolled_back_from"] == versions["answer_key"]
    assert champion(registry) == versions["trained"]
    row = audit_rows(stack)[-1]
    assert (row["action"], row["version"], row["previous_version"], row["outcome"]) == (
        "rollback", versions["trained"], versions["answer_key"], "rolled_back")
    assert (row["approver"], row["reason"]) == (APPROVER, "false positives up")
    tags = registry.get_model_version(MODEL, versions["trained"]).tags
    assert tags["rolled_back_by"] == APPROVER and tags["rolled_back_from"] == versions["answer_key"]

    # the trained model was the first champion: there is nothing before it
    again = stack.radflow("rollback", "--reason", "again", ok=False, env=as_ada(stack))
    assert "nothing to roll back to" in again["error"]
    assert champion(registry) == versions["trained"] and audit_rows(stack)[-1] == row
