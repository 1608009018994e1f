"""A screened night as the database holds it: what delivery sends and retention checks."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from pipelines import db


@dataclasses.dataclass(frozen=True)
class NightExam:
    """One exam's result (no identifying value: the exam is its pseudonym)."""

    exam_id: str
    study_date: str
    model_version: str
    model_name: str
    score: float
    suspicion: int
    flagged: bool
    view_scores: dict[str, float]
    discounted: dict[str, str]  # view -> the QC reason it was left out of the exam score


def latest_run(task: str, study_date: str) -> tuple[str, str, str] | None:
    """(run id, model name, model version) of the night's latest complete screening run."""
    t = db.screening_runs
    with db.get_engine().connect() as conn:
        row = conn.execute(sa.select(t.c.run_id, t.c.model_name, t.c.model_version).where(
            t.c.task == task, t.c.study_date == study_date, t.c.status == "complete")
            .order_by(t.c.finished_at.desc()).limit(1)).first()
    return None if row is None else (str(row.run_id), str(row.model_name), str(row.model_version))


def night_exams(task: str, study_date: str) -> tuple[str | None, list[NightExam]]:
    """(model version, exams) of the night's latest complete run; (None, []) if none."""
    run = latest_run(task, study_date)
    if run is None:
        return None, []
    rid, model_name, version = run
    e, v = db.exam_results, db.view_results
    with db.get_engine().connect() as conn:
        exams = conn.execute(sa.select(e).where(e.c.task == task, e.c.study_date == study_date,
                                                e.c.model_version == version)
                             .order_by(e.c.exam_id)).mappings().all()
        views = conn.execute(sa.select(v.c.exam_id, v.c.view, v.c.qc_reason).where(
            v.c.task == task, v.c.study_date == study_date, v.c.model_version == version,
            v.c.discounted.is_(True))).all()
    discounted: dict[str, dict[str, str]] = {}
    for row in views:
        discounted.setdefault(str(row.exam_id), {})[str(row.view)] = str(row.qc_reason or "")
    return version, [NightExam(
        exam_id=str(r["exam_id"]), study_date=study_date, model_version=version, model_name=model_name,
        score=float(r["score"]), suspicion=int(r["suspicion"] or 1), flagged=bool(r["flagged"]),
        view_scores={str(k): float(x) for k, x in dict(r["view_scores"]).items()},
        discounted=discounted.get(str(r["exam_id"]), {})) for r in exams]
