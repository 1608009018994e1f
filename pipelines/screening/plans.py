"""A screening night's plan: its studies in a stable order, cut into scoring batches.

The plan (`screening_plans`, one row per task and night) lists the night's studies as
(exam pseudonym, Orthanc id), ordered by Orthanc id, cut into batches of `batch_exams`.
Its `plan_id` is a digest of what it lists (task, night, champion version, batch size,
studies), so planning the same night again for the same studies keeps the plan and what
its batches staged (pipelines/screening/staging.py), and a different plan replaces it and
drops that.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pipelines import db
from pipelines.config import get_settings
from pipelines.errors import PermanentError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclasses.dataclass(frozen=True)
class Planned:
    position: int  # in the night
    exam_id: str  # pseudonym
    study_id: str  # Orthanc id


@dataclasses.dataclass(frozen=True)
class Plan:
    task: str
    study_date: str
    plan_id: str
    model_version: str
    batch_exams: int
    studies: tuple[Planned, ...]

    def batches(self) -> list[tuple[Planned, ...]]:
        """The studies cut into consecutive batches of `batch_exams` (the last may be short)."""
        n = self.batch_exams
        return [self.studies[i:i + n] for i in range(0, len(self.studies), n)]

    def batch(self, index: int) -> tuple[Planned, ...]:
        """The studies of one batch.

        Raises:
            PermanentError: the plan has no such batch.
        """
        cut = self.batches()
        if not 0 <= index < len(cut):
            raise PermanentError(f"plan {self.plan_id} of {self.task} {self.study_date} has "
                                 f"{len(cut)} batches, not a batch {index}")
        return cut[index]

    def check_champion(self, model_version: str) -> None:
        """Raise PermanentError unless `model_version` is the champion the night was planned for
        (a night is scored by one version: one batch scored by another would mix them)."""
        if model_version != self.model_version:
            raise PermanentError(f"{self.task} {self.study_date} was planned for champion version "
                                 f"{self.model_version} but version {model_version} is deployed now: "
                                 "plan the night again")


def make_plan(task: str, study_date: str, model_version: str, batch_exams: int,
              studies: Sequence[tuple[str, str]]) -> Plan:
    """The plan of (exam pseudonym, Orthanc id) pairs, ordered by Orthanc id (stable
    whatever order Orthanc lists them in)."""
    ordered = sorted(studies, key=lambda s: s[1])
    digest = hashlib.sha256(json.dumps([task, study_date, model_version, batch_exams, ordered])
                            .encode()).hexdigest()[:16]
    return Plan(task, study_date, digest, model_version, batch_exams,
                tuple(Planned(i, e, s) for i, (e, s) in enumerate(ordered)))


def folder(task: str, study_date: str) -> Path:
    """Where the night's batches stage their files: the lake store, which every worker mounts."""
    return get_settings().store / "screening" / "staging" / task / study_date


def save_plan(plan: Plan) -> bool:
    """Record the night's plan. Another plan of the night is replaced, with everything its
    batches staged; the same plan keeps it. Returns whether the plan changed."""
    keys = night(db.screening_plans, plan.task, plan.study_date)
    with db.get_engine().begin() as conn:
        current = conn.execute(sa.select(db.screening_plans.c.plan_id).where(keys)).scalar()
        if current == plan.plan_id:
            return False
        _drop_staged(conn, plan.task, [plan.study_date])
        db.upsert(conn, db.screening_plans, [{
            "task": plan.task, "study_date": plan.study_date, "plan_id": plan.plan_id,
            "model_version": plan.model_version, "batch_exams": plan.batch_exams,
            "studies": [[p.exam_id, p.study_id] for p in plan.studies],
            "planned_at": dt.datetime.now(dt.UTC)}], keys=["task", "study_date"])
    shutil.rmtree(folder(plan.task, plan.study_date), ignore_errors=True)
    return True


def load_plan(task: str, study_date: str) -> Plan:
    """The night's plan.

    Raises:
        PermanentError: the night has not been planned.
    """
    with db.get_engine().connect() as conn:
        row = conn.execute(sa.select(db.screening_plans).where(
            night(db.screening_plans, task, study_date))).mappings().first()
    if row is None:
        raise PermanentError(f"{task} {study_date} has no screening plan: plan the night first")
    return Plan(task, study_date, row["plan_id"], row["model_version"], row["batch_exams"],
                tuple(Planned(i, e, s) for i, (e, s) in enumerate(row["studies"])))


def prune(task: str, keep: str) -> list[str]:
    """Drop what the batches of the task's completed nights staged, except night `keep`'s
    (a completed night's merge can be rerun until the next night is planned). Returns the
    pruned dates."""
    runs, batches = db.screening_runs, db.screening_batches
    with db.get_engine().begin() as conn:
        dates = sorted(conn.execute(
            sa.select(batches.c.study_date).distinct()
            .join(runs, sa.and_(runs.c.task == batches.c.task, runs.c.study_date == batches.c.study_date))
            .where(batches.c.task == task, batches.c.study_date != keep, runs.c.status == "complete")
        ).scalars())
        _drop_staged(conn, task, dates)
    for date in dates:
        shutil.rmtree(folder(task, date), ignore_errors=True)
    return dates


def night(table: sa.Table, task: str, study_date: str) -> sa.ColumnElement[bool]:
    """The rows of one task's night in a table keyed by task and study date."""
    return sa.and_(table.c.task == task, table.c.study_date == study_date)


def _drop_staged(conn: Connection, task: str, dates: Sequence[str]) -> None:
    for table in (db.screening_batches, db.screening_staged):
        if dates:
            conn.execute(sa.delete(table).where(table.c.task == task, table.c.study_date.in_(dates)))
