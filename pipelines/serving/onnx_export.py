"""PyTorch to ONNX, with a numeric parity check before anything is served."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import DeploymentFailed

if TYPE_CHECKING:
    import torch

PARITY_TOLERANCE = 1e-4
ONNX_ARTIFACT_DIR = "onnx"  # run artifact folder of the serving file


def export(model: torch.nn.Module, example: np.ndarray, path: Path) -> float:
    """Export `model` to `path` (dynamic batch); returns the max abs difference to PyTorch.

    Raises:
        DeploymentFailed: onnxruntime's output differs by more than PARITY_TOLERANCE.
    """
    import onnxruntime as ort
    import torch

    model = model.eval()
    x = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, opset_version=17,
            input_names=["image"], output_names=["probability"],
            dynamic_axes={"image": {0: "batch"}, "probability": {0: "batch"}},
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    diff = float(np.abs(got - want).max())
    if diff > PARITY_TOLERANCE:
        raise DeploymentFailed(f"ONNX export differs from PyTorch by {diff:.2e} "
                               f"(> {PARITY_TOLERANCE:.0e}); refusing to deploy")
    return diff


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (the integrity key between MLflow and Triton)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
