"""A registered model's outputs on a stack of views: probability and, when given, heatmap.

A model returns either a bare probability tensor [N, 1] or the tuple
(probability [N, 1], heatmap [N, 1, h, w] in [0, 1]); both are read here.

MLflow 3 logs PyTorch models as exported programs (pt2), which are already in eval mode
and refuse `.eval()`, so nothing here calls it (unlike `training.fit.predict`).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def view_outputs(model: Any, images: np.ndarray,
                 batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's probability per view [N] and its heatmaps [N, 1, h, w].

    Args:
        model: a callable on a float32 tensor [n, 1, H, W] in [0, 1].
        images: [N, 1, H, W] float32.
        batch_size: views per forward pass.

    Returns:
        (scores, heatmaps); heatmaps is None when the model returns a bare tensor.
    """
    import torch

    scores, heatmaps = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out = model(torch.from_numpy(images[i:i + batch_size]))
            if isinstance(out, tuple | list):
                out, heatmap = out[0], out[1]
                heatmaps.append(heatmap.numpy())
            scores.append(out.numpy()[:, 0])
    if not scores:
        return np.zeros(0, np.float32), None
    return np.concatenate(scores), np.concatenate(heatmaps) if heatmaps else None


def view_scores(model: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The model's probability per view [N], whichever of the two outputs it returns."""
    return view_outputs(model, images, batch_size)[0]
