"""Monitoring's time series in the results database (PostgreSQL in production).

A night's tests and verdict are written in one transaction, keyed by (task, night, model
version), so a rerun of the monitor replaces the night and never duplicates it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pipelines import db
from pipelines.errors import TransientError
from pipelines.monitoring.records import DriftTest, IntegrityRow, NightStatus

if TYPE_CHECKING:
    import pandas as pd


def _day(study_date: str, delta: int) -> str:
    return (dt.date.fromisoformat(study_date) + dt.timedelta(days=delta)).isoformat()


def screened_by(task: str, study_date: str) -> tuple[str, str, int]:
    """(model name, model version, exams) of the night's completed screening run.

    Raises:
        TransientError: the night has not been screened (yet): the DAG retries later.
    """
    r = db.screening_runs.c
    with db.get_engine().connect() as conn:
        row = conn.execute(sa.select(r.model_name, r.model_version, r.exams)
                           .where(r.task == task, r.study_date == study_date, r.status == "complete")
                           .order_by(r.finished_at.desc()).limit(1)).first()
    if row is None:
        raise TransientError(f"{task} {study_date} has no completed screening run yet: nothing to monitor")
    return str(row.model_name), str(row.model_version), int(row.exams)


def history(task: str, model_version: str, before: str, nights: int) -> list[NightStatus]:
    """The verdicts of the `nights` calendar nights before `before`, oldest first."""
    m = db.monitoring_runs.c
    with db.get_engine().connect() as conn:
        rows = conn.execute(sa.select(m.study_date, m.drifted_families, m.judged)
                            .where(m.task == task, m.model_version == model_version, m.status == "complete",
                                   m.study_date < before, m.study_date >= _day(before, -nights))
                            .order_by(m.study_date)).all()
    return [NightStatus(r.study_date, tuple(r.drifted_families or ()), bool(r.judged)) for r in rows]


def alerts_before(task: str, model_version: str, before: str) -> dict[str, list[str]]:
    """The alerts raised before `before`: night -> the families sustained then."""
    m = db.monitoring_runs.c
    with db.get_engine().connect() as conn:
        rows = conn.execute(sa.select(m.study_date, m.sustained_families).where(
            m.task == task, m.model_version == model_version, m.alert, m.study_date < before))
        return {r.study_date: list(r.sustained_families or ()) for r in rows}


def qc_counts(first: str, last: str) -> pd.DataFrame:
    """Artifact counts per night, device and code, nights first..last (inclusive)."""
    import pandas as pd

    q = db.qc_device_rates.c
    with db.get_engine().connect() as conn:
        rows = conn.execute(sa.select(q.study_date, q.device, q.code, q.views, q.flagged, q.rate)
                            .where(q.study_date >= first, q.study_date <= last)).all()
    return pd.DataFrame(rows, columns=["study_date", "device", "code", "views", "flagged", "rate"])


def qc_night_and_baseline(study_date: str, nights: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The night's counts and each device's summed counts over the `nights` before it."""
    counts = qc_counts(_day(study_date, -nights), study_date)
    night = counts[counts.study_date == study_date][["device", "code", "views", "flagged"]]
    before = counts[counts.study_date < study_date]
    baseline = before.groupby(["device", "code"], as_index=False)[["views", "flagged"]].sum()
    return night.reset_index(drop=True), baseline


def drift_history(task: str, model_version: str, first: str, last: str) -> pd.DataFrame:
    import pandas as pd

    d = db.drift_metrics.c
    columns = ["study_date", "family", "feature", "test", "statistic", "p_value", "q_value", "drifted"]
    with db.get_engine().connect() as conn:
        rows = conn.execute(sa.select(*[d[c] for c in columns])
                            .where(d.task == task, d.model_version == model_version,
                                   d.study_date >= first, d.study_date <= last)).all()
    return pd.DataFrame(rows, columns=columns)


def save(run: dict[str, Any], tests: Sequence[DriftTest]) -> None:
    """The night's run record and every test, replacing an earlier run of the same night."""
    d = db.drift_metrics.c
    rows = [{"task": run["task"], "study_date": run["study_date"], "model_version": run["model_version"],
             **dataclasses.asdict(t)} for t in tests]
    with db.get_engine().begin() as conn:
        night = (d.task == run["task"]) & (d.study_date == run["study_date"])
        conn.execute(sa.delete(db.drift_metrics).where(night, d.model_version == run["model_version"]))
        db.upsert(conn, db.drift_metrics, rows,
                  keys=["task", "study_date", "model_version", "family", "feature", "test"])
        db.upsert(conn, db.monitoring_runs, [run], keys=["run_id"])


def save_integrity(check_date: str, rows: Sequence[IntegrityRow]) -> None:
    """The day's integrity check (a rerun replaces the day's rows)."""
    now = dt.datetime.now(dt.UTC)
    values = [{"check_date": check_date, **dataclasses.asdict(r),
               "checked_at": now} for r in rows]
    with db.get_engine().begin() as conn:
        conn.execute(sa.delete(db.integrity_checks).where(db.integrity_checks.c.check_date == check_date))
        db.upsert(conn, db.integrity_checks, values, keys=["check_date", "triton_model", "version"])


def integrity_rows(study_date: str) -> list[IntegrityRow]:
    """The integrity check that goes with a night: the DAG records it under the night's date,
    `radflow check-integrity` under the day it runs (usually the morning after)."""
    fields = [f.name for f in dataclasses.fields(IntegrityRow)]
    i = db.integrity_checks.c
    with db.get_engine().connect() as conn:
        day = conn.execute(sa.select(sa.func.min(i.check_date))
                           .where(i.check_date >= study_date, i.check_date <= _day(study_date, 1))).scalar()
        if day is None:
            return []
        rows = conn.execute(sa.select(*[i[f] for f in fields]).where(i.check_date == day)).all()
    return [IntegrityRow(**dict(zip(fields, r, strict=True))) for r in rows]
