"""The stages' hyperparameters from params.yaml (shared with DVC), overridable from the CLI:
`dataset` (DatasetParams), `train` (TrainParams) and `task_train` (per task of
pipelines/tasks.yaml, the `train` keys that differ for it).

Every key of params.yaml is read: a section not in SECTIONS, or a key its model has no field
for, is an error (extra="forbid"), so a stale key cannot make DVC rerun a stage for nothing.
The model input size is not a parameter here: it is RADFLOW_IMAGE_HEIGHT/_WIDTH
(pipelines/config.py), which a screening task may override (pipelines/tasks.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.config import PROJECT_DIR

PARAMS_FILE = PROJECT_DIR / "params.yaml"
# The layer groups a fine-tuning schedule names: those of every architecture
# (pipelines.training.profiles.all_groups(); a test keeps the two equal). Kept here so that
# reading params does not import torch.
UNFREEZE_GROUPS = ("stem", "features", "saliency", "global", "local", "fusion")


class DatasetParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # the dataset's name and contract are its task's (pipelines/tasks.yaml: dataset,
    # dataset_contract); these are how any task's dataset is split and where it is pushed
    seed: int = 42
    val_fraction: float = Field(default=0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    # DVC remote URL (a folder, s3://...). None: the local remote <state>/dvc-remote.
    remote: str | None = None

    @property
    def fractions(self) -> dict[str, float]:
        return {"train": 1.0 - self.val_fraction - self.test_fraction,
                "val": self.val_fraction, "test": self.test_fraction}


class TrainParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(default=14, ge=1)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = 2e-3  # from scratch
    finetune_learning_rate: float = 5e-4  # from a base model
    weight_decay: float = 1e-4
    seed: int = 42
    # The split of `radflow pretrain` (synthetic exams, no frozen dataset); `radflow train`
    # uses the frozen dataset's splits (DatasetParams).
    target_sensitivity: float = 0.9
    patience: int = Field(default=4, ge=1)  # epochs without a better validation AUC before stopping
    width: int = Field(default=16, ge=4)  # model channels (pipelines/training/model.py)
    top_k: float = Field(default=0.05, gt=0.0, le=1.0)  # heatmap share pooled into the view logit
    # The clinical profile's model (RADFLOW_MODEL_PROFILE=clinical, pipelines/training/gmic.py);
    # width and top_k above are its global network's.
    global_downsample: int = Field(default=4, ge=1)  # the global network reads the view at 1/4
    patch_size: int = Field(default=256, ge=16)  # full-resolution patches, a multiple of 16 x downsample
    patches: int = Field(default=6, ge=1)  # patches the local network reads (top-k of the saliency)
    local_width: int = Field(default=16, ge=4)  # the local network's channels
    # Fine-tuning: the epoch from which each layer group trains (frozen before it). From
    # scratch every group trains from epoch 0.
    unfreeze_at: dict[str, int] = {"saliency": 0, "features": 2, "stem": 4,  # demo
                                   "fusion": 0, "local": 2, "global": 4}  # clinical

    @model_validator(mode="after")
    def _patches_tile_the_saliency_grid(self) -> TrainParams:
        cell = 16 * self.global_downsample
        if self.patch_size % cell:
            raise ValueError(f"patch_size {self.patch_size} must be a multiple of 16 x "
                             f"global_downsample = {cell} (a patch covers whole saliency cells)")
        return self

    @field_validator("unfreeze_at")
    @classmethod
    def _known_groups(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(UNFREEZE_GROUPS))
        if unknown:
            raise ValueError(f"unfreeze_at names unknown layer groups {unknown}: "
                             f"the groups are {list(UNFREEZE_GROUPS)}")
        return value


class TaskTrainParams(BaseModel):
    """`task_train`: per task name, `train` keys that differ for that task's model (each a
    TrainParams field; the task must be in the tasks file)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    @model_validator(mode="after")
    def _known_tasks_and_keys(self) -> TaskTrainParams:
        from pipelines.tasks import configured

        tasks = configured()
        for name, keys in (self.model_extra or {}).items():
            if name not in tasks:
                raise ValueError(f"task_train.{name}: no such task (the tasks are {sorted(tasks)})")
            if not isinstance(keys, dict):
                raise ValueError(f"task_train.{name}: expected a mapping of train keys")
            TrainParams(**keys)  # an unknown key or a value out of range is refused here
        return self


# params.yaml's sections and the model each is read into; nothing else may be in the file.
SECTIONS: dict[str, type[BaseModel]] = {"dataset": DatasetParams, "train": TrainParams,
                                        "task_train": TaskTrainParams}


def load_dataset_params(path: Path = PARAMS_FILE, **overrides: object) -> DatasetParams:
    """params.yaml's `dataset` section with the non-None overrides applied.

    Raises:
        pydantic.ValidationError: a key DatasetParams does not read, or a value out of range.
    """
    return DatasetParams(**_section(path, "dataset", overrides))


def load_params(path: Path = PARAMS_FILE, task: str | None = None, **overrides: object) -> TrainParams:
    """params.yaml's `train` section, then `task_train.<task>`'s keys, then the non-None
    overrides.

    Raises:
        pydantic.ValidationError: a key TrainParams does not read, or a value out of range.
    """
    tree = _read(path)
    values = dict(tree.get("train") or {})
    if task:
        values.update((tree.get("task_train") or {}).get(task) or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainParams(**values)


def check_params_file(path: Path = PARAMS_FILE) -> None:
    """Check that every section and key of the params file is read by a stage.

    Raises:
        ValueError: a section that no model reads (named, with the known ones).
        pydantic.ValidationError: a key that its section's model has no field for.
    """
    unknown = sorted(set(_read(path)) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{path.name}: sections {unknown} are read by nothing "
                         f"(the sections are {sorted(SECTIONS)})")
    for name, model in SECTIONS.items():
        model(**_section(path, name, {}))


def _read(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) if path.exists() else None
    if not isinstance(data, dict | None):
        raise ValueError(f"{path.name}: expected a mapping of sections, got {type(data).__name__}")
    return data or {}


def _section(path: Path, name: str, overrides: dict[str, object]) -> dict[str, Any]:
    data = dict(_read(path).get(name) or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    return data
