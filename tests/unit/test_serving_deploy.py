"""Deployment records per slot, file verification, shadow agreement and the MLflow plugin's
input handling (Triton and MLflow themselves are exercised in tests/integration/test_serving.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from pipelines import deployments as deployment
from pipelines.errors import DeploymentFailed, ModelIntegrityError, PermanentError
from pipelines.modelfiles import integrity
from pipelines.modelfiles.onnx import sha256
from pipelines.screening.shadow import agreement
from pipelines.serving.deploy import rollback
from pipelines.serving.mlflow_deployments import TritonDeploymentClient, _images


def _dep(slot: deployment.Slot, version: int, name: str) -> deployment.Deployment:
    return deployment.Deployment(
        model_name="mammo-screening", model_version=str(version),
        triton_model=deployment.triton_name(slot, "mammo_screening"),
        triton_version=version, operating_point=0.4, sha256="ab" * 32,
        deployed_at="2026-11-22T00:00:00+00:00", slot=slot, name=name)


def test_each_slot_has_its_own_record_and_triton_model(isolated_settings: Path) -> None:
    assert deployment.all_deployments() == []
    with pytest.raises(PermanentError, match="radflow deploy"):
        deployment.current_deployment("mammo_screening")
    deployment.record(_dep("champion", 3, "mammo"))
    deployment.record(_dep("shadow", 4, "mammo-shadow"))
    assert deployment.current_deployment("mammo_screening").triton_model == "mammo_screening"
    assert deployment.find("shadow", "mammo_screening").triton_model == "mammo_screening_shadow"  # type: ignore[union-attr]
    assert deployment.by_name("mammo-shadow").triton_version == 4  # type: ignore[union-attr]
    deployment.remove("shadow", "mammo_screening")
    assert [d.slot for d in deployment.all_deployments()] == ["champion"]
    with pytest.raises(PermanentError, match="unknown deployment slot 'canary'"):
        deployment.check_slot("canary")


def test_rollback_needs_a_previous_version(isolated_settings: Path) -> None:
    with pytest.raises(DeploymentFailed, match="nothing is deployed"):
        rollback("champion")
    deployment.record(_dep("champion", 1, "mammo"))
    with pytest.raises(DeploymentFailed, match="version 1 has no previous version"):
        rollback("champion")


def test_a_file_is_verified_against_its_registered_hash(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"approved weights")
    good = sha256(path)
    assert integrity.verify(path, "mammo-screening", 2, good) == good
    path.write_bytes(b"approved weights, edited")
    with pytest.raises(ModelIntegrityError, match="version 2 was registered with"):
        integrity.verify(path, "mammo-screening", 2, good)
    with pytest.raises(ModelIntegrityError, match="missing"):
        integrity.verify(tmp_path / "gone.onnx", "mammo-screening", 2, good)


def test_only_registered_versions_can_be_deployed() -> None:
    with pytest.raises(PermanentError, match="expected models:/<name>@<alias>"):
        integrity.resolve(None, "runs:/abc/onnx")  # type: ignore[arg-type]


def test_shadow_agreement_counts_equal_flags_and_correlates_scores() -> None:
    champion = np.array([0.1, 0.2, 0.8, 0.9])
    shadow = np.array([0.15, 0.3, 0.7, 0.2])
    r, rho, flags = agreement(champion, shadow, champion >= 0.5, shadow >= 0.5)
    assert flags == 0.75  # exam 4: champion flags, shadow does not
    assert r == pytest.approx(np.corrcoef(champion, shadow)[0, 1], abs=1e-4)
    assert rho == pytest.approx(0.4, abs=1e-4)
    one = np.array([0.3])
    assert agreement(one, one, one > 0.5, one > 0.5) == (None, None, 1.0)
    assert agreement(np.array([]), np.array([]), np.array([]), np.array([])) == (None, None, None)


def test_predict_inputs_are_images_in_a_column() -> None:
    img = np.zeros((4, 3), np.float32)
    frame = pd.DataFrame({"image": [img.tolist(), (img + 1)[None].tolist()]})
    assert _images(frame).shape == (2, 1, 4, 3)
    assert _images(np.stack([img[None]] * 3)).shape == (3, 1, 4, 3)
    with pytest.raises(MlflowException, match="column 'image'"):
        _images(pd.DataFrame({"pixels": [img.tolist()]}))
    with pytest.raises(MlflowException, match=r"\[H\]\[W\]"):
        _images({"image": [[1.0, 2.0]]})


def test_the_plugin_names_unknown_deployments(isolated_settings: Path) -> None:
    client = TritonDeploymentClient("triton")
    assert client.list_deployments() == []
    with pytest.raises(MlflowException, match="no triton deployment named 'mammo'"):
        client.get_deployment("mammo")
    client.delete_deployment("mammo")  # deleting what is not there is not an error
    deployment.record(_dep("champion", 2, "mammo"))
    with pytest.raises(MlflowException, match="exists"):
        client.create_deployment("mammo", "models:/mammo-screening/3")
    with pytest.raises(MlflowException, match="served by deployment 'mammo'"):
        client.create_deployment("other", "models:/mammo-screening/3")
    assert client.get_deployment("mammo")["model_version"] == "2"
