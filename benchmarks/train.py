"""Training throughput against the compute-only limit of the same machine.

- radflow: `pipelines.training.fit.fit` on in-memory views (augmentation, shuffling,
  batching, loss with class weights, optimizer), images/s of its training loop (the
  validation pass after each epoch is timed apart and left out);
- limit: the same model, batch size, optimizer and loss on tensors already in memory,
  forward + backward + step and nothing else.
value = radflow images/s; ratio = value / limit. Target 0.8.

    python -m benchmarks.train [--quick] [--views N] [--epochs N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import write_result


def compute_only(images: np.ndarray, labels: np.ndarray, batch_size: int, width: int,
                 top_k: float, epochs: int) -> float:
    """Images/s of the bare optimization loop on tensors already in memory."""
    import torch
    from torch import nn

    from pipelines.training.model import ViewClassifier

    torch.manual_seed(0)
    model = ViewClassifier(width, top_k).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    x, y = torch.from_numpy(images), torch.from_numpy(labels)[:, None]
    batches = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    seen, started = 0, time.monotonic()
    for _ in range(epochs):
        for xb, yb in batches:
            loss = loss_fn(model.logits(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(xb)
    return seen / (time.monotonic() - started)


def main() -> None:
    import torch

    from pipelines.config import get_settings
    from pipelines.params import load_params
    from pipelines.training.data import Split
    from pipelines.training.fit import fit

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="512 views, 1 epoch")
    parser.add_argument("--views", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    views = args.views or (512 if args.quick else 2048)
    epochs = args.epochs or (1 if args.quick else 2)
    s = get_settings()
    params = load_params(epochs=epochs, patience=epochs)
    rng = np.random.default_rng(0)
    images = rng.random((views, 1, s.image_height, s.image_width), dtype=np.float32)
    labels = (rng.random(views) < 0.3).astype(np.float32)
    exams = np.array([f"ex-{i // 4}" for i in range(views)])
    sides = np.array(["R", "R", "L", "L"] * (views // 4 + 1))[:views]
    split = Split(images, labels, exams, sides)
    val = Split(images[:128], labels[:128], exams[:128], sides[:128])
    limit = compute_only(images, labels, params.batch_size, params.width, params.top_k, epochs)
    _, history = fit(split, val, params)
    value = float(np.mean([h["images_per_s"] for h in history]))
    print(f"train: radflow {value:.1f} images/s, compute-only {limit:.1f} images/s")
    write_result(
        "train", "images/s", value, limit,
        "the same model, batch and optimizer on tensors already in memory: forward, backward, "
        "step only", 0.8,
        {"views": views, "epochs": epochs, "batch_size": params.batch_size, "width": params.width,
         "image_height": s.image_height, "image_width": s.image_width,
         "threads": torch.get_num_threads()},
        {"compute_only_images_s": round(limit, 1),
         "epoch_s": [round(h["epoch_s"], 2) for h in history]},
    )


if __name__ == "__main__":
    main()
