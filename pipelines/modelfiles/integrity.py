"""Which MLflow registered version a model file is, checked by SHA-256 before Triton loads it.

Training logs the ONNX file and tags the registered version with its SHA-256
(`onnx_sha256`); deploy downloads the file and checks it against the tag, and every load
(deploy, rollback) checks the file in Triton's repository again: a file changed on disk
after it was approved is never served.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import DeploymentFailed, ModelIntegrityError, PermanentError
from pipelines.modelfiles.onnx import ONNX_ARTIFACT_DIR, sha256

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

SHA_TAG = "onnx_sha256"
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def resolve(client: MlflowClient, model_uri: str) -> ModelVersion:
    """The registered version a `models:/<name>@<alias>` or `models:/<name>/<version>` URI names.

    Raises:
        PermanentError: the URI has another form, or names no registered version.
        MlflowUnavailable: MLflow could not be reached (retry).
    """
    from mlflow.exceptions import MlflowException

    match = _MODEL_URI.match(model_uri)
    if match is None:
        raise PermanentError(f"model URI {model_uri!r}: expected models:/<name>@<alias> or "
                             "models:/<name>/<version> (a registered version, so the file is verifiable)")
    try:
        if match["alias"]:
            return client.get_model_version_by_alias(match["name"], match["alias"])
        return client.get_model_version(match["name"], match["version"])
    except MlflowException as exc:
        from pipelines.tracking import unavailable

        if (outage := unavailable(exc, f"the lookup of {model_uri}")) is not None:
            raise outage from exc  # a retry may find it
        raise PermanentError(f"model URI {model_uri!r} names no registered version: "
                             f"{exc.message}") from exc


def registered_sha(mv: ModelVersion) -> str:
    """The SHA-256 the registered version was approved with.

    Raises:
        DeploymentFailed: the version carries no SHA-256 tag (not registered by radflow).
    """
    sha = (mv.tags or {}).get(SHA_TAG, "")
    if not sha:
        raise DeploymentFailed(f"{mv.name} version {mv.version} has no {SHA_TAG} tag: its ONNX "
                               "file cannot be verified, so it is not served")
    return str(sha)


def verify(path: Path, model_name: str, version: int | str, expected: str) -> str:
    """Check a model file against its registered SHA-256; returns the hash.

    Raises:
        ModelIntegrityError: the file is missing or its hash differs.
    """
    if not path.is_file():
        raise ModelIntegrityError(f"model file {path} of {model_name} version {version} is missing; "
                                  "refusing to load")
    actual = sha256(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"model file {path} has SHA-256 {actual[:16]}..., but {model_name} version {version} "
            f"was registered with {expected[:16]}...; refusing to load a file that is not the "
            "approved one")
    return actual


def fetch_onnx(run_id: str, expected_sha: str, dest: Path) -> Path:
    """Download the version's ONNX file from MLflow and check it is the registered one.

    Raises:
        DeploymentFailed: the file is missing; ModelIntegrityError: its SHA-256 differs.
    """
    import mlflow.artifacts

    dest.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{ONNX_ARTIFACT_DIR}/model.onnx", dst_path=str(dest)))
    except Exception as exc:
        raise DeploymentFailed(f"run {run_id} has no {ONNX_ARTIFACT_DIR}/model.onnx: {exc}") from exc
    verify(local, f"run {run_id}", "download", expected_sha)
    return local
