"""Serving on the real Triton and MLflow: versions loaded beside each other, switched,
rolled back, verified by SHA-256; the shadow slot in a screening night; the MLflow
deployments plugin from the `mlflow deployments` CLI.

The registered versions are small classifiers with known weights (seeded), logged and
registered as training does (ONNX artifact, `onnx_sha256` and `operating_point` tags),
so every served answer can be compared with onnxruntime on the same file.
The tests run in file order and build on each other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.models import approve, register_versions
from tests.integration.stack import Stack

MODEL = "mammo-screening"
H, W = 128, 96  # the default model input
NIGHT = "2026-10-07"
MLFLOW_CLI = str(Path(sys.executable).parent / "mlflow")


@pytest.fixture(scope="module")
def versions(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Registered versions 1-4 ({version: its ONNX file}): 1-3 good models (different
    seeds), 4 exported for another input size (registered, but answers nothing here)."""
    import mlflow

    files = register_versions(stack, MODEL, [(H, W), (H, W), (H, W), (64, 48)],
                              tmp_path_factory.mktemp("onnx"))
    approve(stack, MODEL, 1)
    mlflow.MlflowClient().set_registered_model_alias(MODEL, "challenger", "3")
    return files


def _admin(stack: Stack) -> dict[str, str]:
    key = (stack.state / "secrets" / "triton.env").read_text().strip().split("=", 1)[1]
    return {"radflow-admin-key": key}


def ready_versions(stack: Stack, model: str = "mammo_screening") -> list[str]:
    url = f"http://127.0.0.1:{stack.env['RADFLOW_TRITON_HTTP_PORT']}/v2/repository/index"
    index = httpx.post(url, headers=_admin(stack), json={}).json()
    return sorted(m["version"] for m in index if m["name"] == model and m.get("state") == "READY")


def served(stack: Stack, x: np.ndarray, model: str = "mammo_screening") -> np.ndarray:
    import tritonclient.http as http

    client = http.InferenceServerClient(f"127.0.0.1:{stack.env['RADFLOW_TRITON_HTTP_PORT']}")
    inp = http.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp]).as_numpy("probability").reshape(-1)


def expected(onnx: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx)).run(["probability"], {"image": x})[0].reshape(-1)


X = np.linspace(0, 1, 3 * H * W, dtype=np.float32).reshape(3, 1, H, W)


def test_deploy_loads_the_verified_version(stack: Stack, versions: dict[int, Path]) -> None:
    out = stack.radflow("deploy", "--model-uri", f"models:/{MODEL}/1")
    assert (out["triton_version"], out["previous_version"], out["action"]) == (1, None, "deployed")
    assert ready_versions(stack) == ["1"]
    np.testing.assert_allclose(served(stack, X), expected(versions[1], X), atol=1e-5)
    # the champion slot brings the preprocessing model and the ensemble over the classifier
    assert ready_versions(stack, "mammo_preprocessing") == ["1"]
    assert ready_versions(stack, "mammo_screening_ensemble") == ["1"]


def test_a_new_version_is_switched_to_and_the_old_one_kept_for_rollback(
        stack: Stack, versions: dict[int, Path]) -> None:
    approve(stack, MODEL, 2)
    out = stack.radflow("deploy", "--model-uri", f"models:/{MODEL}/2")
    assert (out["triton_version"], out["previous_version"]) == (2, 1)
    assert ready_versions(stack) == ["2"]  # version 1 unloaded: nothing references it
    np.testing.assert_allclose(served(stack, X), expected(versions[2], X), atol=1e-5)
    assert not np.allclose(expected(versions[1], X), expected(versions[2], X))
    repo = Path(out["repository"]) / "mammo_screening"
    assert sorted(p.name for p in repo.iterdir() if p.name.isdigit()) == ["1", "2"]


def test_rollback_serves_the_previous_version_again(stack: Stack, versions: dict[int, Path]) -> None:
    out = stack.radflow("deploy", "--rollback")
    assert (out["triton_version"], out["previous_version"], out["action"]) == (1, 2, "rolled_back")
    assert ready_versions(stack) == ["1"]
    np.testing.assert_allclose(served(stack, X), expected(versions[1], X), atol=1e-5)


def test_a_version_that_answers_wrongly_is_not_switched_to(stack: Stack, versions: dict[int, Path]) -> None:
    approve(stack, MODEL, 4)
    failed = stack.radflow("deploy", "--model-uri", f"models:/{MODEL}/4", ok=False)
    assert failed["type"] == "DeploymentFailed" and "not switched" in failed["error"], failed
    assert ready_versions(stack) == ["1"]  # the serving version never stopped
    np.testing.assert_allclose(served(stack, X), expected(versions[1], X), atol=1e-5)
    record = stack.query("SELECT triton_version FROM deployments WHERE triton_model = 'mammo_screening'")
    assert record == [{"triton_version": 1}]


def test_a_tampered_file_is_refused_before_loading(stack: Stack, versions: dict[int, Path]) -> None:
    approve(stack, MODEL, 2)
    stack.radflow("deploy", "--model-uri", f"models:/{MODEL}/2")
    assert ready_versions(stack) == ["2"]
    previous = stack.state / "triton_repo" / "mammo_screening" / "1" / "model.onnx"
    approved = previous.read_bytes()
    previous.write_bytes(approved + b"\0")  # someone changed the approved file
    try:
        refused = stack.radflow("deploy", "--rollback", ok=False)
    finally:
        previous.write_bytes(approved)
    assert refused["type"] == "ModelIntegrityError"
    assert "SHA-256" in refused["error"] and "version 1" in refused["error"]
    assert ready_versions(stack) == ["2"]
    np.testing.assert_allclose(served(stack, X), expected(versions[2], X), atol=1e-5)


def test_a_registered_hash_that_does_not_match_the_artifact_is_refused(
        stack: Stack, versions: dict[int, Path]) -> None:
    import mlflow

    client = mlflow.MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    client.set_model_version_tag(MODEL, "3", "onnx_sha256", "0" * 64)
    approve(stack, MODEL, 3)
    try:
        refused = stack.radflow("deploy", "--model-uri", f"models:/{MODEL}/3", ok=False)
    finally:
        from pipelines.modelfiles.onnx import sha256

        client.set_model_version_tag(MODEL, "3", "onnx_sha256", sha256(versions[3]))
    assert refused["type"] == "ModelIntegrityError" and "SHA-256" in refused["error"]
    assert ready_versions(stack) == ["2"]
    approve(stack, MODEL, 2)  # back to the version that serves


def test_an_alias_moved_by_hand_is_refused_by_deploy_and_the_plugin_and_fails_integrity(
        stack: Stack, versions: dict[int, Path]) -> None:
    import mlflow

    client = mlflow.MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    client.set_registered_model_alias(MODEL, "champion", "1")  # one REST call, no gate, no audit
    before = sorted(p.name for p in (stack.state / "triton_repo" / "mammo_screening").iterdir())
    refused = stack.radflow("deploy", ok=False)
    assert refused["type"] == "UnapprovedChampion"
    assert "version 1 holds alias champion" in refused["error"]
    assert "approved champion is version 2" in refused["error"]
    plugin = _mlflow(stack, "update", "--name", "mammo", "-m", f"models:/{MODEL}@champion", ok=False)
    assert "UnapprovedChampion" in plugin.stderr
    assert ready_versions(stack) == ["2"]  # nothing loaded, nothing unloaded
    assert sorted(p.name for p in (stack.state / "triton_repo" / "mammo_screening").iterdir()) == before
    checked = stack.radflow("check-integrity", ok=False)
    unapproved = [p for p in checked["problems"] if p["status"] == "unapproved"]
    assert [(p["triton_model"], p["version"]) for p in unapproved] == [(f"registry:{MODEL}@champion", "1")]
    client.set_registered_model_alias(MODEL, "champion", "2")
    assert stack.radflow("check-integrity")["ok"] is True


def test_the_shadow_is_scored_beside_the_champion_but_kept_off_the_worklist(
        stack: Stack, versions: dict[int, Path], tmp_path: Path) -> None:
    stack.radflow("synth", "--exams", "6", "--date", NIGHT, "--site", "north", "--seed", "21",
                  "--out", str(tmp_path / "night"))
    stack.wait_stable()
    shadow = stack.radflow("deploy", "--slot", "shadow")  # the challenger (version 3)
    assert (shadow["triton_model"], shadow["triton_version"]) == ("mammo_screening_shadow", 3)
    assert ready_versions(stack, "mammo_screening_shadow") == ["3"]
    night = stack.radflow("screen", "--date", NIGHT)
    agreement = night["shadow"]
    assert agreement["model_version"] == "3" and agreement["exams"] == night["exams"] == 6
    assert agreement["error"] is None and 0.0 <= agreement["flag_agreement"] <= 1.0
    assert agreement["score_correlation"] is not None and -1.0 <= agreement["score_correlation"] <= 1.0
    rows = stack.query("SELECT * FROM shadow_results WHERE study_date = :d", d=NIGHT)
    assert len(rows) == 6 and {r["champion_version"] for r in rows} == {"2"}
    champion = {r["exam_id"]: r["score"] for r in stack.query(
        "SELECT exam_id, score FROM exam_results WHERE study_date = :d", d=NIGHT)}
    assert {r["exam_id"]: r["champion_score"] for r in rows} == pytest.approx(champion)
    assert all(r["model_version"] == "2" for r in stack.query(
        "SELECT model_version FROM exam_results WHERE study_date = :d", d=NIGHT))
    page = Path(night["worklist"]).read_text()
    assert "model version 2." in page and "version 3" not in page
    removed = stack.radflow("deploy", "--slot", "shadow", "--undeploy")
    assert removed["unloaded"] == ["mammo_screening_shadow"]
    assert ready_versions(stack, "mammo_screening_shadow") == []
    assert stack.radflow("screen", "--date", NIGHT)["shadow"] is None


def _mlflow(stack: Stack, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}"}
    proc = subprocess.run([MLFLOW_CLI, "deployments", *args, "-t", "triton"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc


def test_the_mlflow_deployments_cli_drives_the_same_deploy(
        stack: Stack, versions: dict[int, Path], tmp_path: Path) -> None:
    stack.radflow("deploy", "--undeploy")  # the champion slot is free for the plugin
    assert ready_versions(stack) == [] == ready_versions(stack, "mammo_screening_ensemble")
    approve(stack, MODEL, 1)
    _mlflow(stack, "create", "--name", "mammo", "-m", f"models:/{MODEL}@champion")
    assert ready_versions(stack) == ["1"]
    refused = _mlflow(stack, "create", "--name", "mammo", "-m", f"models:/{MODEL}/2", ok=False)
    assert "exists" in refused.stderr
    approve(stack, MODEL, 2)
    _mlflow(stack, "update", "--name", "mammo", "-m", f"models:/{MODEL}/2")
    assert ready_versions(stack) == ["2"]
    got = _mlflow(stack, "get", "--name", "mammo").stdout
    assert "model_version: 2\n" in got and "previous_version: 1\n" in got
    assert "mammo" in _mlflow(stack, "list").stdout
    inputs = tmp_path / "views.json"
    inputs.write_text(json.dumps({"image": [X[i, 0].tolist() for i in range(len(X))]}))
    out = tmp_path / "out.json"
    _mlflow(stack, "predict", "--name", "mammo", "--input-path", str(inputs), "--output-path", str(out))
    predictions = json.loads(out.read_text())["predictions"]
    np.testing.assert_allclose([p["probability"] for p in predictions], expected(versions[2], X), atol=1e-5)
    _mlflow(stack, "update", "--name", "mammo", "-C", "rollback=true")
    assert ready_versions(stack) == ["1"]
    _mlflow(stack, "delete", "--name", "mammo")
    assert ready_versions(stack) == []
    assert "mammo" not in _mlflow(stack, "list").stdout.split("List of all deployments:")[-1]
