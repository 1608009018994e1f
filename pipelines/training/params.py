"""TrainParams: read from params.yaml (shared with DVC), overridable from the CLI."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from pipelines.config import PROJECT_DIR


class TrainParams(BaseModel, frozen=True):
    epochs: int = 14
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    target_sensitivity: float = 0.9


def load_params(path: Path = PROJECT_DIR / "params.yaml", **overrides: object) -> TrainParams:
    """params.yaml's `train` section with the non-None overrides applied."""
    data = yaml.safe_load(path.read_text()).get("train", {}) if path.exists() else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainParams(**data)
