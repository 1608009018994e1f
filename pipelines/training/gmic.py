"""The clinical profile's classifier: GMIC-style, a global look and a close look.

After Shen et al., "An interpretable classifier for high-resolution breast cancer screening
images" (GMIC, arXiv 2002.07613):

1. a global network reads the whole view downsampled by `downsample` and gives a saliency
   map (one malignancy logit per location, the heatmap) and a feature map; the mean of the
   map's top `top_k` share is the global logit;
2. the view is cut into a grid of non-overlapping `patch_size` squares at FULL resolution
   and the `patches` squares whose saliency peaks highest are kept (top-k over the grid,
   then a gather: deterministic, traceable, no loop over data);
3. a local network reads each kept patch and gives one vector per patch;
4. gated attention (Ilse et al. 2018, attention-based MIL) weighs the patch vectors into
   one, whose linear read-out is the local logit;
5. a fusion layer reads the global feature map's maximum and the attended patch vector and
   gives the view's malignancy logit, the model's answer.

Training sums the three logits' losses (`training_logits`), as GMIC does, so the global
network learns where to look while the local network learns what it sees. Patch
selection is not differentiable; the global network learns from its own and the fusion
logit. Group normalization instead of batch normalization: the batches of full-detector
views are a few images, and checkpointed blocks recompute their forward pass, which would
update batch-norm statistics twice. Gradient checkpointing (torch.utils.checkpoint, per
block of both networks) trades compute for memory when `checkpointing` is on.

The forward pass creates no tensor of its own (pads, reshapes, top-k and gathers of its
input), so it exports to ONNX at a fixed image size with a free batch dimension.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn
from torch.utils.checkpoint import checkpoint

from pipelines.training.model import top_k_pool

ARCHITECTURE = "gmic"
# The layer groups of the fine-tuning schedule, from input to output.
GMIC_GROUPS = ("global", "saliency", "local", "fusion")
NET_STRIDE = 16  # both networks halve the resolution four times


def _block(cin: int, cout: int) -> nn.Sequential:
    norm = lambda c: nn.GroupNorm(math.gcd(8, c), c)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, kernel_size=3, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ConvNet(nn.Module):
    """Four blocks (stride 16) of width w, 2w, 4w, 4w; each block checkpointed when asked."""

    def __init__(self, width: int, checkpointing: bool = False) -> None:
        super().__init__()
        self.checkpointing = checkpointing
        self.blocks = nn.ModuleList([_block(1, width), _block(width, width * 2),
                                     _block(width * 2, width * 4), _block(width * 4, width * 4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.checkpointing and torch.is_grad_enabled() and not _exporting():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def _exporting() -> bool:
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling())


class GatedAttention(nn.Module):
    """Attention-based MIL pooling with a gate: [N, K, C] -> ([N, C], weights [N, K, 1])."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.value, self.gate = nn.Linear(channels, hidden), nn.Linear(channels, hidden)
        self.score = nn.Linear(hidden, 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.score(torch.tanh(self.value(h)) * torch.sigmoid(self.gate(h))), dim=1)
        return (weights * h).sum(dim=1), weights


class GmicClassifier(nn.Module):
    """Input [N, 1, H, W] in [0, 1]; output (probability [N, 1], heatmap [N, 1, h, w]) with
    h = ceil(H / (16 * downsample)), w likewise.

    Args:
        width: channels of the global network's first block (4x deeper in).
        top_k: share of saliency locations averaged into the global logit.
        local_width: channels of the local network's first block.
        patch_size: side of the full-resolution patches, a multiple of 16 * downsample.
        patches: how many patches the local network reads (fewer if the view has fewer).
        downsample: the global network reads the view at 1/downsample of its size.
        checkpointing: gradient checkpointing in both networks (memory for compute).

    Raises:
        ValueError: a patch size that does not tile the saliency grid, or a size below 1.
    """

    def __init__(self, width: int = 16, top_k: float = 0.05, local_width: int = 16,
                 patch_size: int = 256, patches: int = 6, downsample: int = 4,
                 checkpointing: bool = False) -> None:
        super().__init__()
        cell = NET_STRIDE * downsample
        if min(width, local_width, patches, downsample) < 1 or patch_size % cell:
            raise ValueError(f"GMIC: patch_size {patch_size} must be a multiple of 16 x downsample "
                             f"= {cell}, and width {width}, local_width {local_width}, patches "
                             f"{patches}, downsample {downsample} at least 1")
        self.width, self.top_k, self.local_width = width, top_k, local_width
        self.patch_size, self.patches, self.downsample = patch_size, patches, downsample
        self.global_net = ConvNet(width, checkpointing)
        self.saliency = nn.Conv2d(width * 4, 1, kernel_size=1)
        self.local_net = ConvNet(local_width, checkpointing)
        self.attention = GatedAttention(local_width * 4, local_width * 2)
        self.local_head = nn.Linear(local_width * 4, 1)
        self.fusion = nn.Linear(width * 4 + local_width * 4, 1)

    @property
    def checkpointing(self) -> bool:
        return self.global_net.checkpointing

    @checkpointing.setter
    def checkpointing(self, on: bool) -> None:
        self.global_net.checkpointing = self.local_net.checkpointing = on

    def config(self) -> dict[str, int | float]:
        """The constructor arguments that define the weights' shapes and meaning."""
        return {"width": self.width, "top_k": self.top_k, "local_width": self.local_width,
                "patch_size": self.patch_size, "patches": self.patches,
                "downsample": self.downsample}

    def _global(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(saliency logits [N, 1, h, w], feature map [N, 4w, h, w]) of the whole view."""
        height, width = int(x.shape[2]), int(x.shape[3])  # int(): constants in an export
        cell = NET_STRIDE * self.downsample
        x = F.pad(x, (0, -width % cell, 0, -height % cell))  # zero = background
        small = F.avg_pool2d(x, self.downsample) if self.downsample > 1 else x
        features = self.global_net(small)
        return self.saliency(features), features

    def _patches(self, x: torch.Tensor, saliency: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The full-resolution patches under the `k` grid cells of highest saliency,
        [N*k, 1, P, P] (each view's k in a row, highest first), and k."""
        size, cells = self.patch_size, self.patch_size // (NET_STRIDE * self.downsample)
        scores = F.max_pool2d(saliency, cells, cells, ceil_mode=True)  # one per grid cell
        rows, cols = int(scores.shape[2]), int(scores.shape[3])
        k = min(self.patches, rows * cols)
        height, width = int(x.shape[2]), int(x.shape[3])
        grid = F.pad(x, (0, cols * size - width, 0, rows * size - height))
        grid = grid.reshape(-1, rows, size, cols, size).permute(0, 1, 3, 2, 4)
        grid = grid.reshape(-1, rows * cols, size * size)  # [N, cells, P*P]
        chosen = scores.flatten(1).topk(k, dim=1).indices  # [N, k], highest first
        picked = grid.gather(1, chosen.unsqueeze(2).expand(-1, -1, size * size))
        return picked.reshape(-1, 1, size, size), k

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fusion logit [N, 1], global logit [N, 1], local logit [N, 1], saliency [N, 1, h, w])."""
        saliency, features = self._global(x)
        patches, k = self._patches(x, saliency.detach())
        local = self.local_net(patches).mean(dim=(2, 3))  # [N*k, 4lw]
        attended, _ = self.attention(local.reshape(-1, k, self.local_width * 4))
        fused = self.fusion(torch.cat([features.amax(dim=(2, 3)), attended], dim=1))
        return fused, top_k_pool(saliency, self.top_k), self.local_head(attended), saliency

    def training_logits(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3]: the fusion, global and local logits, each trained against the view label."""
        fused, global_logit, local_logit, _ = self._heads(x)
        return torch.cat([fused, global_logit, local_logit], dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The view's malignancy logit [N, 1] (the fusion head's)."""
        return self._heads(x)[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fused, _, _, saliency = self._heads(x)
        return torch.sigmoid(fused), torch.sigmoid(saliency)

    def groups(self) -> dict[str, nn.Module]:
        """The layer groups by name (GMIC_GROUPS, input to output), for freezing schedules."""
        return {"global": self.global_net, "saliency": self.saliency, "local": self.local_net,
                "fusion": nn.ModuleList([self.attention, self.local_head, self.fusion])}
