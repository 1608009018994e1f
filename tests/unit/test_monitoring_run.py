"""`radflow monitor` night after night, on SQLite and PostgreSQL: stable nights stay quiet,
a vendor change alerts on its second night (not its first), the time series and report
are written once per night and a rerun replaces them.

The reference and the nightly features are frames as training and screening write them
(the files, not mocks); the screening runs and artifact counts are rows in the database.
Only the notification boundary (the webhook) is replaced.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines import db, features
from pipelines.errors import PermanentError, TransientError
from pipelines.monitoring import run
from pipelines.monitoring.notices import MonitoringNotice
from pipelines.screening import capture

MODEL, VERSION, OP = "mammo-screening", "3", 0.6
FIRST = dt.date(2026, 3, 1)


@pytest.fixture
def database(results_database: str) -> str:
    """SQLite, then PostgreSQL (tests/conftest.py)."""
    return results_database


def exams(n: int, seed: int, vendor: str = "GE MEDICAL SYSTEMS", shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row: dict = {"exam_id": f"ex-{seed:04d}{i:04d}", "manufacturer": vendor,
                     "model_name": "Senographe" if vendor.startswith("GE") else "Mammomat",
                     "software_version": "1.0", "kvp": rng.normal(29, 1.5) + 3 * shift,
                     "exposure_mas": rng.normal(80, 10), "body_part_thickness_mm": rng.normal(50, 8),
                     "compression_force_n": rng.normal(110, 15), "pixel_spacing_mm": 0.1 - 0.03 * shift}
        for k, name in enumerate(features.IMAGE_STATS):
            row[name] = rng.normal(0.3 + 0.01 * k, 0.05) + 0.05 * shift
        for k in range(16):
            row[f"emb_{k}"] = rng.normal(0, 1) + shift
        row["score"] = float(rng.beta(2, 5))
        row["device"] = f"{row['manufacturer']} {row['model_name']}"
        rows.append(row)
    return features.frame(rows)


def night(state: Path, day: int, frame: pd.DataFrame) -> str:
    """A screened night as screening leaves it: run row, artifact counts, features file."""
    date = (FIRST + dt.timedelta(days=day)).isoformat()
    now = dt.datetime.now(dt.UTC)
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.screening_runs, [{
            "run_id": f"mammo/{date}/{VERSION}", "task": "mammo", "study_date": date, "model_name": MODEL,
            "model_version": VERSION, "shadow_version": None, "status": "complete", "started_at": now,
            "finished_at": now, "exams": len(frame), "flagged": 0, "quarantined": 0, "views_discounted": 0,
            "capacity": None, "stage_seconds": {}, "worklist": None, "error": None}], keys=["run_id"])
        db.upsert(conn, db.qc_device_rates, [{
            "study_date": date, "device": str(frame.device.iloc[0]), "code": "motion_blur",
            "views": 4 * len(frame), "flagged": 2, "rate": 2 / (4 * len(frame))}],
            keys=["study_date", "device", "code"])
    capture.write_night("mammo", date, VERSION, frame)
    return date


@pytest.fixture
def monitored(isolated_settings: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    sent: list[MonitoringNotice] = []
    monkeypatch.setattr(run, "send", lambda notice: sent.append(notice) or True)
    monkeypatch.setattr(run, "_operating_point", lambda task, name, version: OP)
    cache = isolated_settings / "monitoring" / "reference" / MODEL / f"{VERSION}.parquet"
    cache.parent.mkdir(parents=True)
    exams(300, seed=1).to_parquet(cache, index=False)  # as reference.load caches it
    return {"state": isolated_settings, "sent": sent}


def test_a_vendor_change_alerts_on_its_second_night_and_only_then(monitored: dict) -> None:
    state = monitored["state"]
    results = []
    for day in range(10):
        changed = day >= 7
        frame = exams(100, seed=100 + day, vendor="SIEMENS" if changed else "GE MEDICAL SYSTEMS",
                      shift=1.0 if changed else 0.0)
        results.append(run.run(night(state, day, frame)))
    assert [r.alert for r in results] == [False] * 8 + [True, False]  # night 8 = second changed night
    assert all(not r.drifted_families for r in results[:7])  # stable week: nothing drifted
    assert {"metadata", "embedding"} <= set(results[7].drifted_families)
    assert {"metadata", "embedding"} <= set(results[8].sustained_families)
    assert len(monitored["sent"]) == 1 and monitored["sent"][0].kind == "drift"
    assert "sustained drift" in monitored["sent"][0].summary
    report = Path(results[8].report)
    assert report.is_file() and "data:image/png;base64," in report.read_text()

    with db.get_engine().connect() as conn:
        runs = conn.execute(sa.select(sa.func.count()).select_from(db.monitoring_runs)).scalar_one()
        per_night = conn.execute(sa.select(sa.func.count()).select_from(db.drift_metrics)
                                 .where(db.drift_metrics.c.study_date == results[8].date)).scalar_one()
    assert runs == 10 and per_night == results[8].tests

    again = run.run(results[8].date)  # a rerun replaces the night: same verdict, no duplicates
    assert (again.alert, again.tests) == (True, results[8].tests)
    with db.get_engine().connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.monitoring_runs)).scalar_one() == 10
        assert conn.execute(sa.select(sa.func.count()).select_from(db.drift_metrics)
                            .where(db.drift_metrics.c.study_date == again.date)).scalar_one() == per_night


def test_one_noisy_night_does_not_alert(monitored: dict) -> None:
    state = monitored["state"]
    out = [run.run(night(state, day, exams(100, seed=200 + day, shift=1.0 if day == 3 else 0.0)))
           for day in range(6)]
    assert out[3].drifted_families and not any(r.alert for r in out)
    assert monitored["sent"] == []


def test_a_small_night_is_recorded_but_not_judged(monitored: dict) -> None:
    out = run.run(night(monitored["state"], 0, exams(5, seed=300, vendor="SIEMENS", shift=1.0)))
    assert (out.exams, out.judged, out.alert) == (5, False, False)


def test_a_night_not_screened_yet_is_retried_and_one_without_features_is_refused(monitored: dict) -> None:
    with pytest.raises(TransientError, match="no completed screening run"):
        run.run("2026-04-01")
    date = night(monitored["state"], 0, exams(30, seed=400))
    features.night_path("mammo", date, VERSION).unlink()
    with pytest.raises(PermanentError, match="rerun `radflow screen --date"):
        run.run(date)


def test_the_mornings_integrity_check_goes_with_the_night(monitored: dict) -> None:
    from pipelines.monitoring import store
    from pipelines.monitoring.records import IntegrityRow

    date = night(monitored["state"], 0, exams(30, seed=500))
    assert run.run(date).integrity_ok is None  # no check yet: said so, not guessed
    morning = (dt.date.fromisoformat(date) + dt.timedelta(days=1)).isoformat()
    store.save_integrity(morning, [
        IntegrityRow("mammo_screening", "3", "mismatch", True, "a" * 64, "b" * 64, f"{MODEL}/3",
                     "model.onnx differs from the registered file"),
        IntegrityRow("mammo_preprocessing", "1", "ok", True)])
    out = run.run(date)
    assert out.integrity_ok is False
    assert "mismatch" in Path(out.report).read_text()
