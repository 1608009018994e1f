"""The training loop: from scratch or fine-tuning a base model, early-stopped on
validation exam AUC, repeatable by seed.

Fine-tuning follows a layer-freezing schedule (`TrainParams.unfreeze_at`): the saliency
head adapts first while the convolutional features keep what the base learned, then the
deeper features and last the stem join, at a lower learning rate than from scratch.
Frozen groups also keep their batch-norm statistics. Class imbalance is handled by
weighting positive views in the loss by the negative/positive ratio of the training set.

The model is the profile's (pipelines/training/profiles.py, RADFLOW_MODEL_PROFILE): the
demo ViewClassifier or the clinical GMIC-style model, whose training adds gradient
checkpointing and, on CUDA, mixed precision (pipelines/training/step.py). It trains on
RADFLOW_DEVICE (pipelines/modelfiles/device.py) and comes back on the CPU.

Distributed data parallel: started by `torchrun` (WORLD_SIZE > 1), each process trains on
its share of every shuffled epoch (the same seeded order everywhere) and DDP averages the
gradients (gloo on CPU, NCCL when the model is on CUDA, each rank on cuda:LOCAL_RANK). Every
process scores the whole validation split, so they take the same early-stopping decisions
without talking; only rank 0 logs and registers (pipelines/training/run.py).
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import torch
from torch import nn

from pipelines.modelfiles.device import distributed_backend, training_device
from pipelines.params import TrainParams
from pipelines.scoring import Aggregation, exam_table
from pipelines.training.data import Split
from pipelines.training.model import LAYER_GROUPS
from pipelines.training.profiles import Profile, ViewModel, build_model, get_profile, prepare
from pipelines.training.step import TrainingLogits, make_step

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Augmentation that keeps a mammogram plausible: vertical flip (the other breast's
    geometry), gamma, contrast and brightness jitter (another detector's response).

    No horizontal flip (every view has the chest wall on the left by construction) and
    no rotation or crop that could cut a lesion at the image edge.
    """
    n = batch.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(2), batch)
    gamma = torch.exp(0.2 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5))  # about 0.9-1.1
    gain = 1.0 + 0.1 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    bias = 0.05 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    return (batch.clamp(0.0, 1.0) ** gamma * gain + bias).clamp(0.0, 1.0)


def predict(model: ViewModel, images: np.ndarray, batch_size: int = 64,
            device: str | None = None) -> np.ndarray:
    """The view probabilities [N] of a model being trained (put in eval mode first), on
    `device` (None: RADFLOW_DEVICE)."""
    from pipelines.modelfiles.inference import view_scores

    return view_scores(model.eval(), images, batch_size, device)


def exam_scores(model: ViewModel, split: Split, aggregation: Aggregation = "breast_mean_exam_max",
                device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(exam scores, exam labels) of a split, aggregated as everywhere (pipelines/scoring.py)."""
    exams = exam_table(split.rows(), predict(model, split.images, device=device), aggregation)
    return exams.score.to_numpy(), exams.label.to_numpy()


def exam_auc(model: ViewModel, split: Split, aggregation: Aggregation = "breast_mean_exam_max",
             device: str | None = None) -> float:
    from sklearn.metrics import roc_auc_score

    scores, labels = exam_scores(model, split, aggregation, device)
    return float(roc_auc_score(labels, scores))


def operating_point(model: ViewModel, split: Split, sensitivity: float,
                    aggregation: Aggregation = "breast_mean_exam_max") -> float:
    """The highest threshold whose exam-level sensitivity on `split` reaches `sensitivity`."""
    scores, labels = exam_scores(model, split, aggregation)
    positives = np.sort(scores[labels == 1])[::-1]
    k = max(1, int(np.ceil(sensitivity * len(positives))))
    return float(positives[k - 1])


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless started by torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _trainer(model: ViewModel, device: str) -> nn.Module:
    """What the training pass calls: the training logits, wrapped in DDP under torchrun
    (the model already on `device`, this rank's GPU or the CPU)."""
    rank, size = world()
    if size == 1:
        return TrainingLogits(model)
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if not dist.is_initialized():
        dist.init_process_group(distributed_backend(device))
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
        index = torch.device(device).index
        return DistributedDataParallel(TrainingLogits(model), device_ids=[index], output_device=index)
    return DistributedDataParallel(TrainingLogits(model))  # broadcasts rank 0's weights


def _same_buffers(model: ViewModel) -> None:
    """Rank 0's batch-norm statistics everywhere, so validation and selection agree."""
    if world()[1] > 1:
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def trainable_groups(epoch: int, params: TrainParams, fine_tuning: bool,
                     groups: tuple[str, ...] = LAYER_GROUPS) -> set[str]:
    """The layer groups (of a model with `groups`) that train in `epoch` (all of them from
    scratch); a group `unfreeze_at` does not name trains from epoch 0."""
    if not fine_tuning:
        return set(groups)
    return {g for g in groups if epoch >= params.unfreeze_at.get(g, 0)}


def _set_trainable(model: ViewModel, groups: set[str]) -> None:
    model.train()
    for name, module in model.groups().items():
        if name not in groups:
            module.eval()  # a frozen group keeps its batch-norm statistics too


def _model(params: TrainParams, base: nn.Module | None, profile: Profile,
           height: int, width: int) -> ViewModel:
    """The model to train: `base` set up for the profile, else the profile's new model."""
    if profile.min_input and (height < profile.min_input[0] or width < profile.min_input[1]):
        log.warning("train: %dx%d input is below the %s profile's %dx%d (fine in tests, not "
                    "for screening)", height, width, profile.name, *profile.min_input)
    return prepare(base, profile) if base is not None else build_model(profile, params)


def fit(train: Split, val: Split, params: TrainParams, base: nn.Module | None = None,
        aggregation: Aggregation = "breast_mean_exam_max", profile: Profile | str | None = None,
        device: str | None = None) -> tuple[ViewModel, list[dict[str, float]]]:
    """Train from scratch, or fine-tune `base`; returns the model of the best validation
    exam AUC (exam scores by the task's `aggregation`), on the CPU, and the per-epoch
    history. Stops after `params.patience` epochs without a better validation AUC.

    Args:
        profile: the model profile (or its name); None reads RADFLOW_MODEL_PROFILE.
        device: auto, cpu, cuda or cuda:N; None reads RADFLOW_DEVICE.

    Raises:
        PermanentError: `base` is not the profile's architecture, or the device asks for
            CUDA where there is none.
    """
    chosen = profile if isinstance(profile, Profile) else get_profile(profile)
    dev = training_device(device)
    seed_everything(params.seed)
    fine_tuning = base is not None
    model = _model(params, base, chosen, *train.images.shape[2:]).to(dev)
    names = tuple(model.groups())
    pos = float(train.labels.sum())
    x_all, y_all = torch.from_numpy(train.images), torch.from_numpy(train.labels)[:, None]
    rank, size = world()
    # one shuffle stream shared by every process (same order), augmentation per process
    shuffle = torch.Generator().manual_seed(params.seed)
    gen = torch.Generator().manual_seed(params.seed + 7919 * rank)
    usable = len(x_all) // size * size  # equal shares: every process takes as many steps
    step = make_step(model, params, chosen, dev, pos_weight=(len(train.labels) - pos) / max(pos, 1.0),
                     fine_tuning=fine_tuning, trainer=_trainer(model, dev))
    best, best_auc, stale, history = None, -1.0, 0, []
    for epoch in range(params.epochs):
        groups = trainable_groups(epoch, params, fine_tuning, names)
        started = time.monotonic()
        _set_trainable(model, groups)
        order, total = torch.randperm(len(x_all), generator=shuffle)[:usable][rank::size], 0.0
        for i in range(0, len(order), params.batch_size):
            idx = order[i:i + params.batch_size]
            total += step(augment(x_all[idx], gen), y_all[idx], groups) * len(idx)
        secs = time.monotonic() - started
        _same_buffers(model)
        auc = exam_auc(model, val, aggregation, dev)
        history.append({"train_loss": total / len(order), "val_auc": auc, "epoch_s": secs,
                        "images_per_s": len(order) / max(secs, 1e-6),
                        "trainable_groups": float(len(groups))})
        log.info("train: epoch %d/%d loss %.4f val_auc %.3f (%.0f images/s, training %s)",
                 epoch + 1, params.epochs, total / len(order), auc, len(order) / max(secs, 1e-6),
                 "+".join(g for g in names if g in groups))
        if auc > best_auc:
            best_auc, stale = auc, 0
            best = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= params.patience:
                log.info("train: no better validation AUC for %d epochs: stopping", stale)
                break
    if best is not None:
        model.load_state_dict(best)
    return model.cpu().eval(), history
