"""The training loop and the exam-level evaluation."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from pipelines.training.data import Split, exam_scores
from pipelines.training.model import ViewClassifier
from pipelines.training.params import TrainParams

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mammography-safe augmentation: vertical flip, small contrast and brightness jitter.

    No horizontal flip: every view has the chest wall on the left by construction.
    """
    flip = torch.rand(batch.shape[0], generator=gen) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(2), batch)
    gain = 1.0 + 0.1 * (torch.rand(batch.shape[0], 1, 1, 1, generator=gen) - 0.5)
    bias = 0.05 * (torch.rand(batch.shape[0], 1, 1, 1, generator=gen) - 0.5)
    return (batch * gain + bias).clamp(0.0, 1.0)


@torch.no_grad()
def predict(model: ViewClassifier, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(images[i:i + batch_size])).numpy()[:, 0]
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def exam_auc(model: ViewClassifier, split: Split) -> float:
    from sklearn.metrics import roc_auc_score

    scores, labels = exam_scores(predict(model, split.images), split.exam_ids, split.labels)
    return float(roc_auc_score(labels, scores))


def operating_point(model: ViewClassifier, split: Split, sensitivity: float) -> float:
    """The highest threshold whose exam-level sensitivity on `split` reaches `sensitivity`."""
    scores, labels = exam_scores(predict(model, split.images), split.exam_ids, split.labels)
    positives = np.sort(scores[labels == 1])[::-1]
    k = max(1, int(np.ceil(sensitivity * len(positives))))
    return float(positives[k - 1])


def fit(train: Split, val: Split, params: TrainParams) -> tuple[ViewClassifier, list[dict[str, float]]]:
    """Train with early model selection on validation exam AUC; returns the best model."""
    seed_everything(params.seed)
    model = ViewClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=params.learning_rate,
                            weight_decay=params.weight_decay)
    pos = float(train.labels.sum())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(train.labels) - pos) / max(pos, 1.0)))
    gen = torch.Generator().manual_seed(params.seed)
    x_all, y_all = torch.from_numpy(train.images), torch.from_numpy(train.labels)[:, None]
    best, best_auc, history = None, -1.0, []
    for epoch in range(params.epochs):
        started, model = time.monotonic(), model.train()
        order, total = torch.randperm(len(x_all), generator=gen), 0.0
        for i in range(0, len(order), params.batch_size):
            idx = order[i:i + params.batch_size]
            loss = loss_fn(model.logits(augment(x_all[idx], gen)), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        auc = exam_auc(model, val)
        secs = time.monotonic() - started
        history.append({"train_loss": total / len(order), "val_auc": auc, "epoch_s": secs})
        log.info("train: epoch %d/%d loss %.4f val_auc %.3f (%.0f images/s)", epoch + 1,
                 params.epochs, total / len(order), auc, len(order) / max(secs, 1e-6))
        if auc > best_auc:
            best_auc, best = auc, {k: v.clone() for k, v in model.state_dict().items()}
    if best is not None:
        model.load_state_dict(best)
    return model.eval(), history
