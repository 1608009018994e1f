"""Screened exams with a known truth, as screening stores them, and the outcome files the
hospital would send for them (a pathology CSV keyed by exam pseudonym, a RIS export of
follow-up reports keyed by StudyInstanceUID).

The simulation fixes the true operating characteristics: exam z-scores are N(0, 1) for
negatives and N(mu, 1) for cancers, flagged at z >= t with t = Phi^-1(specificity) and
mu = t - Phi^-1(1 - sensitivity), so the flags have exactly the stated sensitivity and
specificity in the population, and the AUC is Phi(mu / sqrt 2). The stored score is
sigmoid(z - t): flagged exactly when the score is 0.5 or more.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import norm

from pipelines import db

FIRST_DAY = dt.date(2026, 1, 5)
DAYS = 82  # 2026-01-05 .. 2026-03-27
NONE, PENDING, OUTCOME = "none", "pending", "outcome"


@dataclasses.dataclass(frozen=True)
class SimExam:
    exam_id: str
    uid: str
    version: str
    study_date: str
    score: float
    flagged: bool
    cancer: bool
    record: str  # NONE: nothing arrives; PENDING: a BI-RADS 0/3/4 follow-up; OUTCOME: decided
    via: str  # how the outcome arrives: pathology, follow-up or "" (none)


def truth(sensitivity: float, specificity: float) -> tuple[float, float, float]:
    """(threshold t, cancer mean mu, true AUC)."""
    t = float(norm.ppf(specificity))
    mu = t - float(norm.ppf(1.0 - sensitivity))
    return t, mu, float(norm.cdf(mu / np.sqrt(2.0)))


def simulate(n: int = 2000, prevalence: float = 0.05, sensitivity: float = 0.85,
             specificity: float = 0.90, seed: int = 16, switch: str | None = None,
             none_share: float = 0.10, pending_share: float = 0.05,
             first: dt.date = FIRST_DAY) -> list[SimExam]:
    """`n` screened exams over 12 weeks from `first`; version "3", or "4" from the date
    `switch` on."""
    rng = np.random.default_rng(seed)
    t, mu, _ = truth(sensitivity, specificity)
    cancer = rng.random(n) < prevalence
    z = rng.normal(size=n) + mu * cancer
    days = rng.integers(0, DAYS, n)
    u, v = rng.random(n), rng.random(n)
    out = []
    for i in range(n):
        date = (first + dt.timedelta(days=int(days[i]))).isoformat()
        record = NONE if u[i] < none_share else PENDING if u[i] < none_share + pending_share else OUTCOME
        flagged = bool(z[i] >= t)
        # cancers: pathology (9 in 10) or a BI-RADS 6 follow-up; negatives: a benign biopsy
        # when flagged, else a BI-RADS 1/2 follow-up
        via = "" if record == NONE else "follow-up" if record == PENDING else (
            ("pathology" if v[i] < 0.9 else "follow-up") if cancer[i]
            else "pathology" if flagged else "follow-up")
        out.append(SimExam(
            exam_id=f"ex-{seed:04d}{i:05d}", uid=f"1.2.826.0.1.3680043.8.498.{seed}.{i + 1}",
            version="4" if switch and date >= switch else "3", study_date=date,
            score=float(1.0 / (1.0 + np.exp(-(z[i] - t)))), flagged=flagged, cancer=bool(cancer[i]),
            record=record, via=via))
    return out


def screen(exams: Sequence[SimExam], task: str = "mammo") -> None:
    """The exams as ingest and screening leave them: pseudonyms, results, screening runs."""
    now = dt.datetime.now(dt.UTC)
    nights = sorted({(e.version, e.study_date) for e in exams})
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.pseudonyms, [{"kind": "study", "original": e.uid, "pseudonym": e.exam_id}
                                        for e in exams], keys=["kind", "original"])
        db.upsert(conn, db.exam_results, [{
            "exam_id": e.exam_id, "model_version": e.version, "study_date": e.study_date, "score": e.score,
            "flagged": e.flagged, "views_scored": 4, "view_scores": {}, "task": task,
            "run_id": f"{task}/{e.study_date}/{e.version}"} for e in exams],
            keys=["exam_id", "model_version"])
        db.upsert(conn, db.screening_runs, [{
            "run_id": f"{task}/{d}/{v}", "task": task, "study_date": d, "model_name": "mammo-screening",
            "model_version": v, "shadow_version": None, "status": "complete", "started_at": now,
            "finished_at": now, "exams": 0, "flagged": 0, "quarantined": 0, "views_discounted": 0,
            "capacity": None, "stage_seconds": {}, "worklist": None, "error": None} for v, d in nights],
            keys=["run_id"])


def _later(date: str, days: int) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=days)).isoformat()


def pathology_file(path: Path, exams: Sequence[SimExam], seed: int = 0) -> Path:
    """The pathology CSV of the exams whose outcome arrives by pathology."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["exam_id", "laterality", "outcome", "date"])
        for e in exams:
            if e.via == "pathology":
                out.writerow([e.exam_id, rng.choice(["R", "L"]), "malignant" if e.cancer else "benign",
                              _later(e.study_date, int(rng.integers(20, 120)))])
    return path


def follow_up_text(category: int) -> str:
    return (f"FOLLOW-UP BILATERAL MAMMOGRAPHY\nComparison: prior screening.\n"
            f"IMPRESSION: BI-RADS {category}.")


def ris_file(path: Path, exams: Sequence[SimExam], seed: int = 0) -> Path:
    """The RIS export of the follow-up reports (keyed by the screened study's UID)."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["study_instance_uid", "report_date", "report_text"])
        for e in exams:
            if e.via != "follow-up":
                continue
            category = (int(rng.choice([0, 3, 4])) if e.record == PENDING else 6 if e.cancer
                        else int(rng.choice([1, 2])))
            out.writerow([e.uid, _later(e.study_date, 180 if e.record == PENDING else 365),
                          follow_up_text(category)])
    return path
