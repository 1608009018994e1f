"""The per-view classifier: a malignancy probability and the heatmap it comes from.

Weakly supervised localization in the spirit of GMIC (Shen et al., arXiv 2002.07613): a
small CNN maps the view to a saliency map, one malignancy logit per location (a class
activation map), and the view's logit is the mean of the top k% of those locations. A
lesion is small, so pooling over the few most suspicious places (not the whole breast)
lets it drive the score, and the same map, through a sigmoid, is the heatmap a
radiologist sees. Only view labels are needed: no lesion outlines.

The network is fully convolutional, so any input size works; the heatmap has 1/16 of the
input's rows and columns. Channel width and top-k share are constructor arguments (small
on CPU for tests, wider with the full resolution on a GPU).
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURE = "view-classifier"
# The layer groups a fine-tuning schedule freezes and unfreezes, from input to output.
LAYER_GROUPS = ("stem", "features", "saliency")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def top_k_pool(maps: torch.Tensor, share: float) -> torch.Tensor:
    """Mean of the top `share` of each map's locations (at least one): [N, 1, h, w] -> [N, 1]."""
    flat = maps.flatten(1)
    # int(): the ONNX tracer gives the size as a tensor; the exported k is then a constant
    k = max(1, int(round(share * int(flat.shape[1]))))
    return flat.topk(k, dim=1).values.mean(dim=1, keepdim=True)


class ViewClassifier(nn.Module):
    """Input [N, 1, H, W] in [0, 1]; output (probability [N, 1], heatmap [N, 1, H/16, W/16]).

    Args:
        width: channels of the first block (doubled twice deeper in).
        top_k: share of heatmap locations averaged into the view's logit.
    """

    def __init__(self, width: int = 16, top_k: float = 0.05) -> None:
        super().__init__()
        self.width, self.top_k = width, top_k
        self.stem = _block(1, width)
        self.features = nn.Sequential(
            _block(width, width * 2), _block(width * 2, width * 4), _block(width * 4, width * 4),
        )
        self.saliency = nn.Conv2d(width * 4, 1, kernel_size=1)

    def config(self) -> dict[str, int | float]:
        """The constructor arguments (what a weights file records)."""
        return {"width": self.width, "top_k": self.top_k}

    def saliency_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The class activation map before the sigmoid: [N, 1, H/16, W/16]."""
        return self.saliency(self.features(self.stem(x)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The view's malignancy logit [N, 1] (what the training loss sees)."""
        return top_k_pool(self.saliency_logits(x), self.top_k)

    def training_logits(self, x: torch.Tensor) -> torch.Tensor:
        """What the training loss reads: the view logit [N, 1]."""
        return self.logits(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.saliency_logits(x)
        return torch.sigmoid(top_k_pool(maps, self.top_k)), torch.sigmoid(maps)

    def groups(self) -> dict[str, nn.Module]:
        """The layer groups by name (LAYER_GROUPS), for freezing schedules."""
        return {"stem": self.stem, "features": self.features, "saliency": self.saliency}
