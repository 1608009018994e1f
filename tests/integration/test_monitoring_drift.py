"""A vendor change noticed on real services: Orthanc, MLflow, Triton, PostgreSQL, Airflow.

A model is trained on one site (its validation exams become the monitoring reference,
logged with the version) and served; two ordinary nights are screened and monitored, then
the site's unit is replaced by another vendor's (`synth --vendor`). The first changed night
drifts but does not alert; the second alerts, and `monitor_mammo_model` run by Airflow
then emits `mammo_data_drift`, the asset retraining is scheduled on.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.integration.stack import Stack

TRAIN_DATE = "2026-06-01"
NIGHTS = ["2026-06-02", "2026-06-03", "2026-06-04", "2026-06-05"]  # the unit is replaced on the 4th
CHANGED = {"2026-06-04", "2026-06-05"}
NIGHT_EXAMS = 24


@pytest.fixture(scope="module")
def monitored(stack: Stack) -> dict[str, dict]:
    stack.radflow("synth", "--exams", "90", "--date", TRAIN_DATE, "--site", "north", "--seed", "51")
    for i, night in enumerate(NIGHTS):
        vendor = ["--vendor", "siemens"] if night in CHANGED else []
        stack.radflow("synth", "--exams", str(NIGHT_EXAMS), "--date", night, "--site", "north",
                      "--seed", str(60 + i), *vendor)
    stack.wait_stable()
    stack.radflow("ingest")
    stack.radflow("validate")
    stack.radflow("build-dataset")
    trained = stack.radflow("train", "--epochs", "2")
    stack.radflow("promote", "--version", trained["model_version"], "--reason", "first champion",
                  login="admin")
    stack.radflow("deploy", "--model-uri", f"models:/mammo-screening/{trained['model_version']}")
    out = {}
    for night in NIGHTS:
        stack.radflow("screen", "--date", night)
        out[night] = stack.radflow("monitor", "--date", night)
    return out


def test_training_logs_the_reference_and_screening_the_features(stack: Stack,
                                                                 monitored: dict[str, dict]) -> None:
    first = monitored[NIGHTS[0]]
    assert first["exams"] == NIGHT_EXAMS and first["judged"] is True
    assert first["reference_exams"] >= 8  # the validation exams of the 90 trained on
    assert (stack.state / "monitoring" / "nights" / "mammo" / NIGHTS[0]).is_dir()
    rows = stack.query("SELECT family, count(*) AS n FROM drift_metrics WHERE study_date = :d "
                       "GROUP BY family", d=NIGHTS[0])
    families = {r["family"]: r["n"] for r in rows}
    assert {"metadata", "image", "embedding", "prediction"} <= set(families)
    assert families["embedding"] >= 32  # the penultimate layer's channels


def test_ordinary_nights_are_quiet_and_a_vendor_change_alerts_on_its_second_night(
        monitored: dict[str, dict]) -> None:
    # The reference is small (the validation exams of 90), so another family may wobble on an
    # ordinary night; the vendor change itself is read in the metadata family.
    assert [monitored[n]["alert"] for n in NIGHTS[:2]] == [False, False]
    assert ["metadata" in monitored[n]["drifted_families"] for n in NIGHTS] == [False, False, True, True]
    assert "metadata" not in monitored[NIGHTS[2]]["sustained_families"]  # one night is not enough
    assert monitored[NIGHTS[-1]]["alert"] is True
    assert "metadata" in monitored[NIGHTS[-1]]["sustained_families"]
    assert "metadata drifted on 2 of the last" in monitored[NIGHTS[-1]]["alert_reason"]


def test_the_report_shows_the_alert(monitored: dict[str, dict]) -> None:
    from pathlib import Path

    page = Path(monitored[NIGHTS[-1]]["report"]).read_text()
    assert page.count("data:image/png;base64,") >= 4
    assert "alert" in page.lower() and "SIEMENS" in page.upper()


def test_airflow_emits_the_retraining_asset_on_the_alert_night(stack: Stack,
                                                              monitored: dict[str, dict]) -> None:
    code = ("import json, sys; from pipelines.orchestration import runner; "
            "print(json.dumps(runner.dags_test('monitor_mammo_model', sys.argv[1])))")
    morning = f"{NIGHTS[-1][:8]}{int(NIGHTS[-1][8:]) + 1:02d}T06:00:00+00:00"
    proc = subprocess.run([sys.executable, "-c", code, morning], env=stack.env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    # Airflow's metadata database: PostgreSQL, beside the results database
    url = sa.engine.make_url(stack.db_url)
    eng = sa.create_engine(url.set(database=f"{url.database}_airflow"))
    try:
        with eng.connect() as conn:
            events = conn.execute(sa.text(
                "SELECT count(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "WHERE a.name = 'mammo_data_drift'")).scalar_one()
            states = dict(conn.execute(sa.text(
                "SELECT task_id, state FROM task_instance WHERE dag_id = 'monitor_mammo_model'"
            )).tuples().all())
    finally:
        eng.dispose()
    assert states == {"pick_study_date": "success", "check_model_integrity": "success",
                      "monitor_drift": "success", "trigger_retraining": "success"}, run["log"]
    assert events == 1
