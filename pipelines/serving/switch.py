"""Switching a Triton model to a new version without a moment of doubt.

`switch` verifies the files, loads the new version BESIDE the serving one (version policy:
both), waits for readiness, checks a smoke inference against onnxruntime's answer on the
same file, and only then sets the policy to the new version, which unloads the old one.
Any failure puts the old version back alone (or unloads a first deploy).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from pipelines.config import get_settings
from pipelines.errors import DeploymentFailed
from pipelines.modelfiles import integrity
from pipelines.modelfiles.onnx import OUTPUTS
from pipelines.serving import repository
from pipelines.triton_client import TritonClient

SMOKE_TOLERANCE = 1e-4
READY_TIMEOUT_S = 120


def smoke_input(height: int, width: int) -> np.ndarray:
    """A fixed input (seeded noise) whose expected output onnxruntime computes in-process."""
    return np.random.default_rng(0).random((2, 1, height, width), dtype=np.float32)


def _wait_ready(triton: TritonClient, model: str, version: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not triton.model_ready(model, str(version)):
        if time.monotonic() > deadline:
            raise DeploymentFailed(f"{model} version {version} not ready after {READY_TIMEOUT_S} s")
        time.sleep(0.3)


def smoke_check(triton: TritonClient, model: str, version: int, onnx_file: Path,
                size: tuple[int, int]) -> float:
    """Serve the fixed input through `model` `version`; returns its first probability.

    Raises:
        DeploymentFailed: an output differs from onnxruntime's in-process answer on the same file.
    """
    import onnxruntime as ort

    s = get_settings()
    example = smoke_input(*size)
    try:
        want = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(
            list(OUTPUTS), {"image": example})
        got = triton.infer_outputs(model, example, s.triton_batch_size, str(version))
    except Exception as exc:  # a model that cannot answer the configured input is never switched to
        raise DeploymentFailed(f"{model} v{version} failed its smoke inference on input "
                               f"{list(example.shape)}: {exc}; not switched") from exc
    for name, expected in zip(OUTPUTS, want, strict=True):
        diff = float(np.abs(got[name] - expected).max())
        if diff > SMOKE_TOLERANCE:
            raise DeploymentFailed(f"{model} v{version} answered a {name} {diff:.2e} away from "
                                   f"onnxruntime on the same file (> {SMOKE_TOLERANCE:.0e}); not switched")
    return float(got["probability"][0, 0])


def _set_policy(triton: TritonClient, model: str, versions: list[int]) -> None:
    """Write the served versions into the model's config and (re)load it."""
    folder = get_settings().triton_repository / model
    repository.write_config(folder, repository.render(
        repository.classifier(model, get_settings().triton_profile, versions)))
    triton.load(model)


def switch(triton: TritonClient, model: str, new: int, new_sha: str, old: int | None,
           old_sha: str, model_name: str, keep: int | None, size: tuple[int, int]) -> float:
    """Load `new` beside `old`, check it, then serve `new` alone. Returns the smoke probability.

    Version folders other than `new`, `old` and `keep` (the rollback target) are deleted.

    Raises:
        ModelIntegrityError: a file differs from its registered SHA-256 (nothing loaded).
        DeploymentFailed: the new version did not become ready or answered wrongly; the old
            version (if any) is serving alone again.
    """
    repo = get_settings().triton_repository / model
    integrity.verify(repo / str(new) / "model.onnx", model_name, new, new_sha)
    if old is not None:
        integrity.verify(repo / str(old) / "model.onnx", model_name, old, old_sha)
    both = [new] if old is None else [old, new]
    try:
        _set_policy(triton, model, both)
        _wait_ready(triton, model, new)
        smoke = smoke_check(triton, model, new, repo / str(new) / "model.onnx", size)
    except Exception:
        if old is not None:
            _set_policy(triton, model, [old])  # the approved version keeps serving
        else:
            triton.unload(model)
        raise
    _set_policy(triton, model, [new])  # Triton unloads every version the policy leaves out
    for folder in repo.iterdir():
        if folder.is_dir() and folder.name.isdigit() and int(folder.name) not in (*both, keep):
            shutil.rmtree(folder)
    return smoke
