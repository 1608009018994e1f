"""`radflow deploy`: the champion, exported to ONNX, loaded into the running Triton.

The version folder is staged and published by one rename; Triton loads it through
explicit model control; readiness and a smoke inference against onnxruntime's answer on
the same input are checked before the deployment is recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from pipelines.config import PROJECT_DIR, get_settings
from pipelines.domain import DeployResult
from pipelines.errors import DeploymentFailed
from pipelines.registry.client import mlflow_client, require_version
from pipelines.serving.deployment import Deployment, record
from pipelines.serving.onnx_export import ONNX_ARTIFACT_DIR, sha256
from pipelines.serving.triton_client import TritonClient

log = logging.getLogger(__name__)
REVIEWED = PROJECT_DIR / "serving" / "triton_repo"
SMOKE_TOLERANCE = 1e-4


def smoke_input(height: int, width: int) -> np.ndarray:
    """A fixed input (seeded noise) whose expected output onnxruntime computes in-process."""
    return np.random.default_rng(0).random((2, 1, height, width), dtype=np.float32)


def write_version(repo: Path, triton_model: str, version: int, onnx_file: Path) -> Path:
    """Publish `<repo>/<model>/<version>/` (model.onnx + the reviewed model.py) by rename."""
    model_dir = repo / triton_model
    model_dir.mkdir(parents=True, exist_ok=True)
    reviewed = REVIEWED / triton_model
    if model_dir.resolve() != reviewed.resolve():
        shutil.copy2(reviewed / "config.pbtxt", model_dir / "config.pbtxt")
    staging = model_dir / f".staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    shutil.copy2(onnx_file, staging / "model.onnx")
    shutil.copy2(reviewed / "model.py", staging / "model.py")
    final = model_dir / str(version)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def fetch_onnx(run_id: str, expected_sha: str, dest: Path) -> Path:
    """Download the version's ONNX file from MLflow and check it is the registered one.

    Raises:
        DeploymentFailed: the file is missing or its SHA-256 differs from the version's tag.
    """
    import mlflow.artifacts

    dest.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{ONNX_ARTIFACT_DIR}/model.onnx", dst_path=str(dest)))
    except Exception as exc:
        raise DeploymentFailed(f"run {run_id} has no {ONNX_ARTIFACT_DIR}/model.onnx: {exc}") from exc
    actual = sha256(local)
    if not expected_sha or actual != expected_sha:
        raise DeploymentFailed(f"model file of run {run_id} has SHA-256 {actual[:12]}..., "
                               f"the registered version says {expected_sha[:12] or 'nothing'}...; "
                               "refusing to deploy")
    return local


def run(alias: str = "champion") -> DeployResult:
    """Deploy the version holding `alias` to Triton and check it answers correctly."""
    import onnxruntime as ort

    s = get_settings()
    client = mlflow_client()
    mv = require_version(client, s.registered_model, alias)
    tags = dict(mv.tags or {})
    work = s.state / "serving" / "downloads" / f"{s.registered_model}-{mv.version}-{uuid.uuid4().hex[:6]}"
    onnx_file = fetch_onnx(str(mv.run_id), tags.get("onnx_sha256", ""), work)
    example = smoke_input(s.image_height, s.image_width)
    version = int(mv.version)
    folder = write_version(s.triton_repository, s.triton_model, version, onnx_file)
    triton = TritonClient(s)
    triton.load(s.triton_model)
    deadline = time.monotonic() + 60
    while not triton.model_ready(s.triton_model, str(version)):
        if time.monotonic() > deadline:
            raise DeploymentFailed(f"{s.triton_model} version {version} not ready after 60 s")
        time.sleep(0.5)
    expected = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"image": example})[0]
    served = triton.infer(s.triton_model, example, s.triton_batch_size, str(version))
    diff = float(np.abs(served - expected.reshape(-1)).max())
    if diff > SMOKE_TOLERANCE:
        raise DeploymentFailed(f"{s.triton_model} v{version} answered {served.tolist()}, "
                               f"expected {expected.reshape(-1).tolist()} (diff {diff:.2e})")
    shutil.rmtree(work, ignore_errors=True)
    record(Deployment(
        model_name=s.registered_model, model_version=str(mv.version), triton_model=s.triton_model,
        triton_version=version, operating_point=float(tags.get("operating_point", 0.5)),
        sha256=sha256(folder / "model.onnx"),
        deployed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    ))
    log.info("deploy: %s v%s serving as %s/%d", s.registered_model, mv.version, s.triton_model, version)
    return DeployResult(model_name=s.registered_model, version=str(mv.version),
                        triton_model=s.triton_model, triton_version=version,
                        repository=str(s.triton_repository), ready=True,
                        smoke_probability=round(float(served[0]), 6))
