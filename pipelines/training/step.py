"""One optimisation step on a device: the training pass, the loss, the frozen groups'
gradients dropped, the update; with mixed precision when the profile asks for it and the
step runs on CUDA.

Mixed precision: autocast in bfloat16 where the GPU supports it, else in float16 with a
GradScaler (float16 gradients underflow without one). Never on the CPU: the demo's numbers
there stay those of full precision.

A model's `training_logits` may give several logits per view (the clinical model: fusion,
global, local); each is trained against the view's label and the loss is their mean.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn

from pipelines.params import TrainParams
from pipelines.training.profiles import Profile, ViewModel

if TYPE_CHECKING:
    from torch.amp import GradScaler


def autocast_dtype(profile: Profile, device: str) -> torch.dtype | None:
    """The autocast dtype of training on `device`: None (full precision) on the CPU or when
    the profile does not use mixed precision; bfloat16, else float16, on CUDA."""
    if not profile.mixed_precision or not device.startswith("cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def drop_frozen_gradients(model: ViewModel, trainable: Iterable[str]) -> None:
    """Frozen groups get no update: their gradients are dropped before the step (AdamW
    skips a parameter without a gradient, weight decay included). Gradients are still
    computed, so that DDP sees the same parameters in every step of the schedule."""
    keep = set(trainable)
    for name, module in model.groups().items():
        if name not in keep:
            for param in module.parameters():
                param.grad = None


@dataclasses.dataclass
class TrainStep:
    """Call with a batch (images [n, 1, H, W], labels [n, 1], on any device) and the
    trainable groups; returns the batch's loss.

    Attributes:
        model: the model being trained (on `device`).
        trainer: what the training pass calls: the training logits, DDP-wrapped under torchrun.
        optimizer: over the model's parameters.
        loss_fn: BCE with logits (positives weighted).
        device: where the batches go.
        dtype: the autocast dtype, None for full precision.
        scaler: the float16 GradScaler, None otherwise.
    """

    model: ViewModel
    trainer: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    device: str
    dtype: torch.dtype | None = None
    scaler: GradScaler | None = None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 trainable: Iterable[str] | None = None) -> float:
        x, y = images.to(self.device), labels.to(self.device)
        precision = (torch.autocast("cuda", dtype=self.dtype) if self.dtype is not None
                     else contextlib.nullcontext())
        with precision:
            out = self.trainer(x)
            loss = self.loss_fn(out.float(), y.expand_as(out))
        self.optimizer.zero_grad()
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        drop_frozen_gradients(self.model, self.model.groups() if trainable is None else trainable)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return float(loss.item())


class TrainingLogits(nn.Module):
    """The training logits as `forward`, so that DDP sees (and synchronizes) the training pass."""

    def __init__(self, model: ViewModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.training_logits(x)


def make_step(model: ViewModel, params: TrainParams, profile: Profile, device: str, *,
              pos_weight: float, fine_tuning: bool = False,
              trainer: nn.Module | None = None) -> TrainStep:
    """The step of a model already on `device`: AdamW at the from-scratch or fine-tuning
    learning rate, BCE with positives weighted by `pos_weight`, mixed precision as
    autocast_dtype() says.

    Args:
        trainer: the training pass (fit passes its DDP wrapper); None: TrainingLogits(model).
    """
    lr = params.finetune_learning_rate if fine_tuning else params.learning_rate
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=params.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
    dtype = autocast_dtype(profile, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return TrainStep(model, trainer or TrainingLogits(model), optimizer, loss_fn, device, dtype, scaler)
