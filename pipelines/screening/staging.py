"""What a screening night's scoring batches staged for its merge.

A batch stages in one transaction: its row in `screening_batches` and one row per planned
study in `screening_staged` (scores, suspicion, QC flags, or the quarantine reason) replace
that batch's earlier rows, and no other batch's. The pixels the merge needs (model inputs
and heatmaps, PHI-free float arrays) and the monitoring features go to files under the lake
store (`<store>/screening/staging/<task>/<date>/`, shared by the workers), written before
the transaction under a fresh token that the row names: the row always names complete files.
Once committed, a batch deletes the files of the token its row named before, and no others:
another worker staging the same batch at the same time (a retry while the first attempt
still runs) may have written its files already, and the row may name them next. Files of
an attempt that died before its commit stay until the night is planned anew or pruned.
DICOM headers are never staged: the merge reads them again from the gateway Orthanc.

The merge reads a night in two steps, so that its memory is bounded by the batch size
(RADFLOW_SCREENING_BATCH_EXAMS), not by the night: `read_staged` returns every batch's
small parts (exams, scores, QC flags, features, shadow, stage seconds) without its arrays,
and `read_arrays` loads one batch's arrays when the merge comes to it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from pipelines import db
from pipelines.domain import QcFlag
from pipelines.errors import PermanentError
from pipelines.publish import write_file
from pipelines.screening.plans import Plan, folder, night
from pipelines.screening.shadow import ShadowScores

if TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True)
class StagedView:
    view: str
    score: float
    device: str
    instance_id: str  # Orthanc id: the merge reads the header again by it
    input_box: tuple[int, int, int, int] | None
    flags: tuple[QcFlag, ...]


@dataclasses.dataclass(frozen=True)
class StagedExam:
    """One planned study as its batch left it: scored, or quarantined with its `reason`."""

    position: int
    exam_id: str
    study_id: str
    reason: str | None = None
    score: float = 0.0
    suspicion: int = 0
    all_flagged: bool = False
    views: tuple[StagedView, ...] = ()
    shadow_score: float | None = None


@dataclasses.dataclass(frozen=True)
class StagedBatch:
    """A batch's staged results: `exams` in plan order, quarantined ones included; `images`
    [V, H, W] and `heatmaps` [V, h, w] of the scored exams' views, exam by exam."""

    batch: int
    exams: tuple[StagedExam, ...]
    images: np.ndarray
    heatmaps: np.ndarray
    features: pd.DataFrame
    shadow: ShadowScores | None
    stage_seconds: dict[str, float]


@dataclasses.dataclass(frozen=True)
class StagedRecord:
    """A staged batch without its arrays, which stay in the file `arrays` until `read_arrays`
    loads them: what the merge holds of every batch of the night at once."""

    batch: int
    exams: tuple[StagedExam, ...]
    features: pd.DataFrame
    shadow: ShadowScores | None
    stage_seconds: dict[str, float]
    arrays: Path


def _files(plan: Plan, batch: int, token: str) -> tuple[Path, Path]:
    base = folder(plan.task, plan.study_date)
    name = f"batch-{batch:04d}.{plan.plan_id}.{token}"
    return base / f"{name}.npz", base / f"{name}.parquet"


def write_batch(plan: Plan, staged: StagedBatch) -> None:
    """Stage one batch of `plan`, replacing what that batch staged before (and nothing else).

    Raises:
        PermanentError: the night was planned again since (its batch list may differ).
    """
    token = secrets.token_hex(6)
    arrays, features = _files(plan, staged.batch, token)
    write_file(arrays, lambda tmp: _save_arrays(tmp, staged.images, staged.heatmaps))
    write_file(features, lambda tmp: staged.features.to_parquet(tmp, index=False))
    keys = sa.and_(night(db.screening_staged, plan.task, plan.study_date),
                   db.screening_staged.c.batch == staged.batch)
    try:
        with db.get_engine().begin() as conn:
            # the plan's row lock serializes the night's staging transactions
            current = conn.execute(sa.select(db.screening_plans.c.plan_id).where(
                night(db.screening_plans, plan.task, plan.study_date)).with_for_update()).scalar()
            if current != plan.plan_id:
                raise PermanentError(f"{plan.task} {plan.study_date} was planned again (plan "
                                     f"{current}) after batch {staged.batch} of plan {plan.plan_id} "
                                     "started: run the new plan's batches")
            replaced = conn.execute(sa.select(db.screening_batches.c.arrays).where(
                night(db.screening_batches, plan.task, plan.study_date),
                db.screening_batches.c.batch == staged.batch)).scalar()
            conn.execute(sa.delete(db.screening_staged).where(keys))
            db.upsert(conn, db.screening_batches, [{
                "task": plan.task, "study_date": plan.study_date, "batch": staged.batch,
                "plan_id": plan.plan_id, "model_version": plan.model_version, "arrays": token,
                "shadow": None if staged.shadow is None else {  # its scores are the exams'
                    "model_version": staged.shadow.model_version,
                    "operating_point": staged.shadow.operating_point, "error": staged.shadow.error},
                "stage_seconds": staged.stage_seconds, "staged_at": dt.datetime.now(dt.UTC)}],
                keys=["task", "study_date", "batch"])
            conn.execute(sa.insert(db.screening_staged), [
                _row(plan, staged.batch, e) for e in staged.exams])
    except BaseException:
        arrays.unlink(missing_ok=True)
        features.unlink(missing_ok=True)
        raise
    if replaced is not None:  # never another attempt's files: see above
        for old in folder(plan.task, plan.study_date).glob(f"batch-{staged.batch:04d}.*.{replaced}.*"):
            old.unlink(missing_ok=True)


def _save_arrays(path: Path, images: np.ndarray, heatmaps: np.ndarray) -> None:
    with path.open("wb") as fh:  # a file object: np.savez would append ".npz" to a path
        np.savez(fh, images=images, heatmaps=heatmaps)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON (PostgreSQL) has no NaN


def _row(plan: Plan, batch: int, e: StagedExam) -> dict[str, Any]:
    views = None if e.reason is not None else [
        {"view": v.view, "score": v.score, "device": v.device, "instance": v.instance_id,
         "box": None if v.input_box is None else list(v.input_box),
         "flags": [[f.code, f.reason, _finite(float(f.value))] for f in v.flags]} for v in e.views]
    return {"task": plan.task, "study_date": plan.study_date, "batch": batch, "position": e.position,
            "plan_id": plan.plan_id, "exam_id": e.exam_id, "study_id": e.study_id, "reason": e.reason,
            "score": None if e.reason is not None else e.score,
            "suspicion": None if e.reason is not None else e.suspicion,
            "all_flagged": None if e.reason is not None else e.all_flagged, "views": views,
            "shadow_score": e.shadow_score}


def _box(box: Sequence[int]) -> tuple[int, int, int, int]:
    top, bottom, left, right = (int(x) for x in box)
    return top, bottom, left, right


def _exam(row: Any) -> StagedExam:
    if row["reason"] is not None:
        return StagedExam(row["position"], row["exam_id"], row["study_id"], reason=row["reason"])
    views = tuple(StagedView(
        v["view"], float(v["score"]), v["device"], v["instance"],
        None if v["box"] is None else _box(v["box"]),
        tuple(QcFlag(c, r, math.nan if x is None else float(x)) for c, r, x in v["flags"]))
        for v in row["views"])
    return StagedExam(row["position"], row["exam_id"], row["study_id"], None, float(row["score"]),
                      int(row["suspicion"]), bool(row["all_flagged"]), views, row["shadow_score"])


def missing_batches(plan: Plan) -> list[int]:
    """The plan's batches that have not staged every one of their studies for this plan."""
    staged = db.screening_staged
    with db.get_engine().connect() as conn:
        counts = {int(batch): int(n) for batch, n in conn.execute(
            sa.select(staged.c.batch, sa.func.count())
            .where(night(staged, plan.task, plan.study_date), staged.c.plan_id == plan.plan_id)
            .group_by(staged.c.batch))}
    return [i for i, studies in enumerate(plan.batches()) if counts.get(i, 0) != len(studies)]


def read_staged(plan: Plan) -> list[StagedRecord]:
    """Every batch of the plan as it staged it, in order, without its arrays (`read_arrays`).

    Raises:
        PermanentError: a batch has not staged its results for this plan (named by index),
            or its files are gone.
    """
    missing = missing_batches(plan)
    if missing:
        raise PermanentError(
            f"{plan.task} {plan.study_date}: batch(es) {', '.join(map(str, missing))} of "
            f"{len(plan.batches())} (plan {plan.plan_id}) have no staged results: score them, "
            "then merge")
    import pandas as pd

    with db.get_engine().connect() as conn:
        rows = {r["batch"]: r for r in conn.execute(sa.select(db.screening_batches).where(
            night(db.screening_batches, plan.task, plan.study_date),
            db.screening_batches.c.plan_id == plan.plan_id)).mappings()}
        exams = [_exam(r) for r in conn.execute(sa.select(db.screening_staged).where(
            night(db.screening_staged, plan.task, plan.study_date),
            db.screening_staged.c.plan_id == plan.plan_id).order_by(
            db.screening_staged.c.position)).mappings()]
    out = []
    for i, studies in enumerate(plan.batches()):
        arrays, features = _files(plan, i, rows[i]["arrays"])
        if not arrays.is_file() or not features.is_file():
            raise _gone(plan, i, arrays)
        positions = {p.position for p in studies}
        mine = tuple(e for e in exams if e.position in positions)
        out.append(StagedRecord(i, mine, pd.read_parquet(features), _shadow(rows[i]["shadow"], mine),
                                dict(rows[i]["stage_seconds"]), arrays))
    return out


def read_arrays(plan: Plan, staged: StagedRecord) -> tuple[np.ndarray, np.ndarray]:
    """One batch's `images` [V, H, W] and `heatmaps` [V, h, w], the views of its scored exams
    exam by exam.

    Raises:
        PermanentError: the batch's arrays are gone (named by index), or hold another number
            of views than its exams.
    """
    try:
        with np.load(staged.arrays) as loaded:
            images, heatmaps = loaded["images"], loaded["heatmaps"]
    except FileNotFoundError:
        raise _gone(plan, staged.batch, staged.arrays) from None
    views = sum(len(e.views) for e in staged.exams if e.reason is None)
    if len(images) != views or len(heatmaps) != views:
        raise PermanentError(f"{plan.task} {plan.study_date}: batch {staged.batch} staged {views} "
                             f"views but {len(images)} images and {len(heatmaps)} heatmaps: score "
                             "the batch again")
    return images, heatmaps


def _gone(plan: Plan, batch: int, arrays: Path) -> PermanentError:
    return PermanentError(f"{plan.task} {plan.study_date}: the staged arrays of batch {batch} "
                          f"are missing under {arrays.parent} (is RADFLOW_LAKE_STORE shared "
                          "by every worker?): score the batch again")


def _shadow(recorded: dict[str, Any] | None, exams: Sequence[StagedExam]) -> ShadowScores | None:
    if recorded is None:
        return None
    scores = () if recorded["error"] is not None else tuple(
        float(e.shadow_score) for e in exams if e.reason is None and e.shadow_score is not None)
    return ShadowScores(recorded["model_version"], float(recorded["operating_point"]), scores,
                        recorded["error"])
