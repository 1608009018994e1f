"""Run by torchrun in test_training_ddp.py: fit on fixed data, write this rank's weights digest."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import torch

from pipelines.params import TrainParams
from pipelines.training.data import Split
from pipelines.training.fit import fit

if __name__ == "__main__":
    rng = np.random.default_rng(0)
    n = 64
    images = (rng.random((n, 1, 32, 32)) * 0.3).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.float32)
    images[labels == 1, 0, 10:16, 10:16] = 1.0
    split = Split(images, labels, np.array([f"ex-{i}" for i in range(n)]), np.array(["L"] * n))
    params = TrainParams(epochs=3, batch_size=8, width=4, patience=3,
                         unfreeze_at={"saliency": 0, "features": 1, "stem": 2})
    base = torch.load(sys.argv[2], weights_only=False) if len(sys.argv) > 2 else None
    model, history = fit(split, split, params, base=base)
    digest = hashlib.sha256(b"".join(t.numpy().tobytes()
                                     for t in model.state_dict().values())).hexdigest()
    out = {"rank": int(os.environ.get("RANK", "0")), "digest": digest, "epochs": len(history),
           "world": torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1}
    with open(sys.argv[1] + f".{out['rank']}", "w") as handle:
        json.dump(out, handle)
