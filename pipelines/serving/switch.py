"""Switching a Triton model to a new version without a moment of doubt.

`switch` verifies the files, loads the new version BESIDE the serving one (version policy:
both), waits for readiness, checks a smoke inference against onnxruntime's answer on the
same file (within the bound of the precision the profile serves at, see smoke.py), and
only then sets the policy to the new version, which unloads the old one. Any failure puts
the old version back alone (or unloads a first deploy).
"""

from __future__ import annotations

import shutil
import time

from pipelines.config import get_settings
from pipelines.errors import DeploymentFailed
from pipelines.modelfiles import integrity
from pipelines.serving import repository
from pipelines.serving.smoke import BOUNDS, SmokeBound, smoke_check
from pipelines.triton_client import TritonClient

READY_TIMEOUT_S = 120


def smoke_bound(profile: repository.Profile) -> SmokeBound:
    """The smoke bound of the precision `profile` serves at (FP32 on cpu, FP16 on gpu)."""
    return BOUNDS[repository.PRECISION[profile]]


def _wait_ready(triton: TritonClient, model: str, version: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not triton.model_ready(model, str(version)):
        if time.monotonic() > deadline:
            raise DeploymentFailed(f"{model} version {version} not ready after {READY_TIMEOUT_S} s")
        time.sleep(0.3)


def _set_policy(triton: TritonClient, model: str, versions: list[int]) -> None:
    """Write the served versions into the model's config and (re)load it."""
    s = get_settings()
    repository.write_config(s.triton_repository / model, repository.render(
        repository.classifier(model, s.triton_profile, versions), s.triton_profile))
    triton.load(model)


def switch(triton: TritonClient, model: str, new: int, new_sha: str, old: int | None,
           old_sha: str, model_name: str, keep: int | None, size: tuple[int, int],
           operating_point: float) -> float:
    """Load `new` beside `old`, check it, then serve `new` alone. Returns the smoke probability.

    Version folders other than `new`, `old` and `keep` (the rollback target) are deleted.
    `operating_point` is `new`'s (its model version tag): on an FP16 profile the smoke
    inputs must be flagged at it as onnxruntime's FP32 answers are.

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
        s = get_settings()
        smoke = smoke_check(triton, model, new, repo / str(new) / "model.onnx", size,
                            smoke_bound(s.triton_profile), operating_point, s.triton_batch_size).probability
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
