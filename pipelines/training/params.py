"""TrainParams: read from params.yaml (shared with DVC), overridable from the CLI."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from pipelines.config import PROJECT_DIR


class TrainParams(BaseModel, frozen=True):
    epochs: int = Field(default=14, ge=1)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = 2e-3  # from scratch
    finetune_learning_rate: float = 5e-4  # from a base model
    weight_decay: float = 1e-4
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    target_sensitivity: float = 0.9
    patience: int = Field(default=4, ge=1)  # epochs without a better validation AUC before stopping
    width: int = Field(default=16, ge=4)  # model channels (pipelines/training/model.py)
    top_k: float = Field(default=0.05, gt=0.0, le=1.0)  # heatmap share pooled into the view logit
    # Fine-tuning: the epoch from which each layer group trains (frozen before it). From
    # scratch every group trains from epoch 0.
    unfreeze_at: dict[str, int] = {"saliency": 0, "features": 2, "stem": 4}


def load_params(path: Path = PROJECT_DIR / "params.yaml", **overrides: object) -> TrainParams:
    """params.yaml's `train` section with the non-None overrides applied."""
    data = yaml.safe_load(path.read_text()).get("train", {}) if path.exists() else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainParams(**data)
