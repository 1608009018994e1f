r"""`mlflow deployments -t triton`: radflow's deploy behind MLflow's deployments API.

Registered as the `mlflow.deployments` entry point `triton` (pyproject.toml), so

    mlflow deployments create -t triton --name mammo -m models:/mammo-screening@champion
    mlflow deployments create -t triton --name mammo-shadow -C slot=shadow \
        -m models:/mammo-screening@challenger
    mlflow deployments update -t triton --name mammo -m models:/mammo-screening/7
    mlflow deployments update -t triton --name mammo -C rollback=true
    mlflow deployments list|get|delete -t triton [--name mammo]
    mlflow deployments predict -t triton --name mammo --input-path views.json

run exactly the code of `radflow deploy` (SHA-256 verification, load beside, smoke check,
switch, rollback) against the Triton and MLflow that the RADFLOW_* settings name. A
deployment name owns one slot (champion or shadow). `predict` takes a JSON table with a
column `image` (one model input per row, [H][W] or [1][H][W], values in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.exceptions import MlflowException

from pipelines.deployments import Deployment, all_deployments, by_name, check_slot, find
from pipelines.errors import RadflowError
from pipelines.serving import deploy

T = TypeVar("T")
FLAVOR = "onnx"


def target_help() -> str:
    return ("radflow's Triton target (`-t triton`). The Triton server, MLflow server and state "
            "directory come from the RADFLOW_* settings (see README). Config (-C key=value): "
            "slot=champion|shadow and task=<screening task> on create (defaults champion, mammo); "
            "rollback=true on update serves the slot's previous version again. "
            "Model URIs: models:/NAME@ALIAS or models:/NAME/VERSION.")


def run_local(target: str, name: str, model_uri: str, flavor: str | None = None,
              config: dict[str, str] | None = None) -> None:
    raise MlflowException("run_local is not supported by the triton target: `radflow stack up` "
                          "starts a local Triton, then `mlflow deployments create -t triton`")


def _radflow(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a radflow call; its errors become MlflowException with the same message."""
    try:
        return fn(*args, **kwargs)
    except RadflowError as exc:
        raise MlflowException(f"{type(exc).__name__}: {exc}") from exc


def _describe(dep: Deployment) -> dict[str, Any]:
    return {"name": dep.name, "flavor": FLAVOR, "task": dep.task, "slot": dep.slot,
            "model_name": dep.model_name,
            "model_version": dep.model_version, "triton_model": dep.triton_model,
            "triton_version": dep.triton_version, "previous_version": dep.previous_version,
            "sha256": dep.sha256, "operating_point": dep.operating_point, "deployed_at": dep.deployed_at}


def _require(name: str) -> Deployment:
    found = by_name(name)
    if found is None:
        known = ", ".join(d.name for d in all_deployments()) or "none"
        raise MlflowException(f"no triton deployment named {name!r} (deployed: {known})")
    return found


def _images(inputs: Any) -> np.ndarray:
    """Model inputs [N, 1, H, W] from a DataFrame/dict with column `image`, or an array."""
    if hasattr(inputs, "columns") or isinstance(inputs, dict):
        if "image" not in inputs:
            raise MlflowException(f"predict expects a column 'image'; got {sorted(map(str, inputs))}")
        rows = list(inputs["image"])
    else:
        rows = list(np.asarray(inputs, dtype=np.float32))
    images = [np.asarray(r, dtype=np.float32) for r in rows]
    images = [i[None] if i.ndim == 2 else i for i in images]
    if not images or any(i.ndim != 3 or i.shape[0] != 1 for i in images):
        raise MlflowException(f"each image must be [H][W] or [1][H][W]; got {[i.shape for i in images][:3]}")
    return np.stack(images)


class TritonDeploymentClient(BaseDeploymentClient):
    """MLflow deployments on radflow's Triton (one deployment name per slot)."""

    def create_deployment(self, name: str, model_uri: str, flavor: str | None = None,
                          config: dict[str, str] | None = None,
                          endpoint: str | None = None) -> dict[str, Any]:
        from pipelines.tasks import get_task

        slot = _radflow(check_slot, (config or {}).get("slot", "champion"))
        task = _radflow(get_task, (config or {}).get("task", "mammo"))
        if by_name(name) is not None:
            raise MlflowException(f"triton deployment {name!r} exists: use `mlflow deployments update`")
        holder = find(slot, task.triton_model)
        if holder is not None:
            raise MlflowException(f"slot {slot} of task {task.name} is served by deployment "
                                  f"{holder.name!r}: update or delete it")
        _radflow(deploy.deploy, model_uri, slot, name, task.name)
        return _describe(_require(name))

    def update_deployment(self, name: str, model_uri: str | None = None, flavor: str | None = None,
                          config: dict[str, str] | None = None,
                          endpoint: str | None = None) -> dict[str, Any]:
        dep = _require(name)
        if str((config or {}).get("rollback", "")).lower() in ("1", "true", "yes"):
            _radflow(deploy.rollback, dep.slot, dep.task)
        else:
            uri = model_uri or f"models:/{dep.model_name}/{dep.model_version}"
            _radflow(deploy.deploy, uri, dep.slot, name, dep.task)
        return _describe(_require(name))

    def delete_deployment(self, name: str, config: dict[str, str] | None = None,
                          endpoint: str | None = None) -> None:
        dep = by_name(name)
        if dep is not None:  # deleting what is not there is not an error (MLflow's contract)
            _radflow(deploy.undeploy, dep.slot, dep.task)

    def list_deployments(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        return [_describe(d) for d in all_deployments()]

    def get_deployment(self, name: str, endpoint: str | None = None) -> dict[str, Any]:
        return _describe(_require(name))

    def predict(self, deployment_name: str | None = None, inputs: Any = None,
                endpoint: str | None = None) -> PredictionsResponse:
        from pipelines.config import get_settings
        from pipelines.triton_client import TritonClient

        dep = _require(deployment_name or "")
        images = _images(inputs)
        s = get_settings()
        out = _radflow(TritonClient(s).infer_outputs, dep.triton_model, images, s.triton_batch_size,
                       str(dep.triton_version))
        probs = out["probability"].reshape(-1)
        # per view; the operating point applies to exam scores (see training/aggregate.py)
        return PredictionsResponse({"predictions": [
            {"probability": float(p), "heatmap": h[0].tolist(), "model_version": dep.model_version}
            for p, h in zip(probs, out["heatmap"], strict=True)]})
