"""A registered model's outputs on a stack of views: probability and, when given, heatmap.

A model returns either a bare probability tensor [N, 1] or the tuple
(probability [N, 1], heatmap [N, 1, h, w] in [0, 1]); both are read here.

MLflow 3 logs PyTorch models as exported programs (pt2), which are already in eval mode
and refuse `.eval()`, so nothing here calls it (unlike `training.fit.predict`).

The model runs on RADFLOW_DEVICE (pipelines/modelfiles/device.py) and goes back to where
it was afterwards; batches go to that device and the outputs come back as CPU numpy. Big
views (the clinical profile) are scored in smaller batches, so that one batch's input
stays near MAX_BATCH_PIXELS pixels.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from pipelines.modelfiles.device import placed, resolve_device

MAX_BATCH_PIXELS = 1 << 26  # 256 MB of float32 input per forward pass


def batch_views(images: np.ndarray, batch_size: int) -> int:
    """Views per forward pass: at most `batch_size`, fewer when the views are large."""
    pixels = int(np.prod(images.shape[1:])) if images.ndim > 1 else 1
    return max(1, min(batch_size, MAX_BATCH_PIXELS // max(pixels, 1)))


def view_outputs(model: Any, images: np.ndarray, batch_size: int = 64,
                 device: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's probability per view [N] and its heatmaps [N, 1, h, w].

    Args:
        model: a callable on a float32 tensor [n, 1, H, W] in [0, 1].
        images: [N, 1, H, W] float32.
        batch_size: views per forward pass (fewer for large views, see batch_views).
        device: where to run: a torch device; None resolves RADFLOW_DEVICE.

    Returns:
        (scores, heatmaps) as CPU numpy; heatmaps is None when the model returns a bare tensor.

    Raises:
        PermanentError: RADFLOW_DEVICE asks for CUDA on a machine without it.
    """
    import torch

    module = isinstance(model, torch.nn.Module)
    target = (device or resolve_device()) if module else "cpu"  # a plain callable runs as it is
    step = batch_views(images, batch_size)
    scores, heatmaps = [], []
    with torch.no_grad(), placed(model, target) if module else contextlib.nullcontext(model) as run:
        for i in range(0, len(images), step):
            out = run(torch.from_numpy(images[i:i + step]).to(target))
            if isinstance(out, tuple | list):
                out, heatmap = out[0], out[1]
                heatmaps.append(heatmap.float().cpu().numpy())
            scores.append(out.float().cpu().numpy()[:, 0])
    if not scores:
        return np.zeros(0, np.float32), None
    return np.concatenate(scores), np.concatenate(heatmaps) if heatmaps else None


def view_scores(model: Any, images: np.ndarray, batch_size: int = 64,
                device: str | None = None) -> np.ndarray:
    """The model's probability per view [N], whichever of the two outputs it returns."""
    return view_outputs(model, images, batch_size, device)[0]

