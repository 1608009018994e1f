"""DatasetParams: params.yaml's `dataset` section (shared with DVC), overridable from the CLI."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from pipelines.config import PROJECT_DIR


class DatasetParams(BaseModel, frozen=True):
    name: str = "mammo"
    seed: int = 42
    val_fraction: float = Field(default=0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    contract: str = "mammo_dataset"
    # DVC remote URL (a folder, s3://...). None: the local remote <state>/dvc-remote.
    remote: str | None = None

    @property
    def fractions(self) -> dict[str, float]:
        return {"train": 1.0 - self.val_fraction - self.test_fraction,
                "val": self.val_fraction, "test": self.test_fraction}


def load_dataset_params(path: Path = PROJECT_DIR / "params.yaml", **overrides: object) -> DatasetParams:
    """params.yaml's `dataset` section with the non-None overrides applied."""
    data = (yaml.safe_load(path.read_text()) or {}).get("dataset", {}) if path.exists() else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return DatasetParams(**data)
