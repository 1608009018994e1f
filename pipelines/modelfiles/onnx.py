"""PyTorch to ONNX, with a numeric parity check before anything is served."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import DeploymentFailed
from pipelines.modelfiles.device import onnx_providers, placed

if TYPE_CHECKING:
    import torch

PARITY_TOLERANCE = 1e-4
ONNX_ARTIFACT_DIR = "onnx"  # run artifact folder of the serving file
INPUT = "image"
OUTPUTS = ("probability", "heatmap")  # [N, 1] and [N, 1, h, w] (H/16, W/16 for the demo model)


def export(model: torch.nn.Module, example: np.ndarray, path: Path) -> float:
    """Export `model` to `path` (dynamic batch, the example's image size); returns the max
    abs difference to PyTorch over both outputs.

    Raises:
        DeploymentFailed: onnxruntime's output differs by more than PARITY_TOLERANCE.
    """
    import onnxruntime as ort
    import torch

    model = model.eval()
    x = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    # on the CPU, both sides: the check is about the export, not about a GPU's arithmetic
    with placed(model, "cpu"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                model, (x,), str(path), dynamo=False, opset_version=17,
                input_names=[INPUT], output_names=list(OUTPUTS),
                # the image size is the trained one (top-k pooling counts its locations)
                dynamic_axes={INPUT: {0: "batch"}, OUTPUTS[0]: {0: "batch"}, OUTPUTS[1]: {0: "batch"}},
            )
        with torch.no_grad():
            want = [t.numpy() for t in model(x)]
    session = ort.InferenceSession(str(path), providers=onnx_providers("cpu"))
    got = session.run(list(OUTPUTS), {INPUT: x.numpy()})
    diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
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
