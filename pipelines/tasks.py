"""Task definitions: everything task-specific, as data (pipelines/tasks.yaml).

The definitions live in pipelines/tasks.yaml (or the file RADFLOW_SCREENING_TASKS_FILE
names). Every stage that takes `--task` reads its task here and nothing else
task-specific: which studies and views, how each is preprocessed, which frozen dataset
training, evaluation and promotion read, which registered model and policy, which Triton
model serves it, how view scores become an exam score, and which split of the dataset the
monitoring reference is built from.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from pipelines.errors import PermanentError
from pipelines.scoring import Aggregation

if TYPE_CHECKING:
    from pipelines.imaging.qc import QcLimits

BUILTIN = Path(__file__).with_name("tasks.yaml")


class TaskDefinition(BaseModel):
    """One task (a tasks.yaml entry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    modality: str
    body_part: str
    views: tuple[str, ...]
    view_key: Literal["laterality-position", "position"]
    preprocessing: Literal["mammogram", "radiograph"]
    registered_model: str
    policy: str  # the entry of mlflow/registered_models.yaml promotion applies
    dataset: str  # the frozen dataset (<state>/datasets/<dataset>) of training, evaluation, promotion
    manifest_contract: str  # data contract of the task's rows of the ingest manifest
    dataset_contract: str  # data contract of its frozen dataset
    # how ingest labels an exam from its report: BI-RADS per breast, or an affirmed
    # (not negated) mention of one of `finding_terms` (pipelines/labels/findings.py)
    labels: Literal["birads", "findings"] = "birads"
    finding_terms: tuple[str, ...] = ()
    monitoring_reference: Literal["train", "val", "test"] = "val"  # the split the reference is built from
    triton_model: str
    aggregation: Aggregation
    qc: Literal["mammography", "none"] = "none"
    # overrides of the image QC limits (pipelines/imaging/qc.py QcLimits), by field name
    qc_limits: dict[str, float] = Field(default_factory=dict)
    image_height: int | None = None  # model input; default RADFLOW_IMAGE_HEIGHT/WIDTH
    image_width: int | None = None
    _limits: QcLimits | None = PrivateAttr(default=None)  # qc_limits applied, built once

    @model_validator(mode="after")
    def _views_match_the_key(self) -> TaskDefinition:
        if not self.views:
            raise ValueError("a task needs at least one view")
        paired = [v for v in self.views if "-" in v]
        if self.view_key == "laterality-position" and len(paired) != len(self.views):
            raise ValueError(f"views {list(self.views)} must be LATERALITY-POSITION, e.g. R-CC")
        if self.aggregation == "breast_mean_exam_max" and self.view_key != "laterality-position":
            raise ValueError("breast_mean_exam_max needs views with a laterality")
        if self.labels == "findings" and not self.finding_terms:
            raise ValueError("labels: findings needs finding_terms (the words of a positive finding)")
        if self.labels == "birads" and self.view_key != "laterality-position":
            raise ValueError("labels: birads labels breasts, so the views need a laterality")
        return self

    @model_validator(mode="after")
    def _qc_limits_are_known(self) -> TaskDefinition:
        if self.qc_limits and self.qc == "none":
            raise ValueError("qc_limits are set but the task runs no QC (qc: none)")
        self._limits = self._applied_limits()  # refused when the file is read, not at night
        return self

    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input: the task's own, else RADFLOW_IMAGE_HEIGHT/_WIDTH."""
        from pipelines.config import get_settings

        s = get_settings()
        return self.image_height or s.image_height, self.image_width or s.image_width

    def limits(self) -> QcLimits:
        """The QC limits of this task: QcLimits' defaults with `qc_limits` applied."""
        assert self._limits is not None  # set by the validator
        return self._limits

    def _applied_limits(self) -> QcLimits:
        """QcLimits' defaults with `qc_limits` applied.

        Raises:
            ValueError: a limit that QcLimits does not have, or a fraction where a count is
                expected.
        """
        from pipelines.imaging.qc import QcLimits

        defaults = QcLimits()
        known = {f.name for f in dataclasses.fields(QcLimits)}
        unknown = sorted(set(self.qc_limits) - known)
        if unknown:
            raise ValueError(f"unknown qc_limits {unknown}; QcLimits has {sorted(known)}")
        values: dict[str, Any] = {}  # float or int, as the field is
        for name, value in self.qc_limits.items():
            if isinstance(getattr(defaults, name), int):
                if not float(value).is_integer():
                    raise ValueError(f"qc_limits.{name} counts, so it must be whole: got {value}")
                values[name] = int(value)
            else:
                values[name] = float(value)
        return dataclasses.replace(defaults, **values)


def parse(definitions: Mapping[str, object], source: str) -> dict[str, TaskDefinition]:
    """Tasks by name from a parsed tasks file.

    Raises:
        PermanentError: the file has no `tasks` mapping or a definition is invalid (named).
    """
    tasks = definitions.get("tasks") if isinstance(definitions, Mapping) else None
    if not isinstance(tasks, Mapping) or not tasks:
        raise PermanentError(f"{source}: expected a non-empty `tasks:` mapping")
    out = {}
    for name, body in tasks.items():
        try:
            out[str(name)] = TaskDefinition(name=str(name), **dict(body or {}))
        except (ValidationError, TypeError) as exc:
            raise PermanentError(f"{source}: task {name!r} is invalid: {exc}") from exc
    by_modality: dict[str, str] = {}
    for name, task in out.items():  # ingest labels a study by the task of its modality
        if task.modality in by_modality:
            raise PermanentError(f"{source}: tasks {by_modality[task.modality]!r} and {name!r} both "
                                 f"take modality {task.modality}; ingest needs one task per modality")
        by_modality[task.modality] = name
    return out


def for_modality(modality: str) -> TaskDefinition | None:
    """The task of the configured tasks file whose studies have `modality`, if any."""
    return next((t for t in configured().values() if t.modality == modality), None)


def configured() -> dict[str, TaskDefinition]:
    """Every task of the configured tasks file (RADFLOW_SCREENING_TASKS_FILE or the built-in)."""
    from pipelines.config import get_settings

    return load(get_settings().screening_tasks_file or BUILTIN)


@functools.cache
def load(path: Path = BUILTIN) -> dict[str, TaskDefinition]:
    import yaml

    return parse(yaml.safe_load(path.read_text()), str(path))


def get_task(name: str) -> TaskDefinition:
    """The named task from the configured tasks file.

    Raises:
        PermanentError: no such task (the known ones are listed).
    """
    tasks = configured()
    if name not in tasks:
        raise PermanentError(f"unknown task {name!r}: defined are {', '.join(sorted(tasks))}")
    return tasks[name]
