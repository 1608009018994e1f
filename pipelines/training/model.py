"""The per-view classifier: a small CNN giving the logit of malignancy for one view."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ViewClassifier(nn.Module):
    """Input [N, 1, H, W] in [0, 1]; output [N, 1] malignancy probability.

    Global max pooling lets a small lesion anywhere in the breast drive the score.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(1, width), _block(width, width * 2), _block(width * 2, width * 4),
            _block(width * 4, width * 4),
        )
        self.head = nn.Conv2d(width * 4, 1, kernel_size=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.head(self.features(x))
        return torch.amax(maps, dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))
