"""The nightly loop end to end: `radflow demo` starts the whole stack (Airflow's api-server,
scheduler, dag-processor and triggerer included), then unpauses and triggers the four
DAGs through Airflow's authenticated REST API and follows each run on the live scheduler,
against a real Orthanc, MLflow, Triton and PostgreSQL, on about 40 synthetic exams."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.integration.stack import RADFLOW, fresh_database, leaked, scanned_files, stack_env


def test_demo_runs_the_four_dags_end_to_end(postgres_url: str, tmp_path: Path) -> None:
    with fresh_database(postgres_url) as db_url:
        env = stack_env(tmp_path / "state", db_url)
        try:
            proc = subprocess.run([RADFLOW, "demo", "--exams", "40", "--json"], env=env,
                                  capture_output=True, text=True, timeout=2400)
            assert proc.returncode == 0, proc.stderr[-4000:]
            summary = json.loads(proc.stdout.strip().splitlines()[-1])
            phi = _identifiers_in_orthanc(env, tmp_path / "state")
            ui = _airflow_ui_after_login(env, tmp_path / "state", tmp_path / "airflow-dags.png")
        finally:
            subprocess.run([RADFLOW, "stack", "down"], env=env, capture_output=True, timeout=300)

        assert [r["dag_id"] for r in summary["dag_runs"]] == [
            "retrain_mammo_model", "deploy_mammo_model", "screen_daily_mammograms", "monitor_mammo_model"]
        for dag_run in summary["dag_runs"]:  # run by the scheduler, triggered by the admin's login
            assert (dag_run["state"], dag_run["run_type"], dag_run["triggering_user_name"]) == (
                "success", "manual", "admin"), dag_run
        # the schedules stay on: the next night screens itself
        assert summary["next_runs"]["screen_daily_mammograms"] and summary["next_runs"]["monitor_mammo_model"]
        # and hospital IT sees them in the Airflow UI after logging in
        assert "4 Dags" in ui and "Next Run" in ui
        assert all(dag_id in ui for dag_id in ("retrain_mammo_model", "deploy_mammo_model",
                                               "screen_daily_mammograms", "monitor_mammo_model"))
        assert "Airflow UI       http://127.0.0.1:" in proc.stderr and "airflow.env" in proc.stderr

        # Tonight's exams are on the worklist exactly once each, sorted by suspicion.
        assert summary["screened_exams"] == summary["synthesized_tonight"] == 8
        page = Path(summary["worklist"]).read_text()
        ids = re.findall(r'data-exam="(ex-[0-9a-f]+)"', page)
        assert len(ids) == 8 == len(set(ids))
        assert "radflow demo: the nightly loop ran end to end" in proc.stderr

        eng = sa.create_engine(db_url)
        with eng.connect() as conn:
            approvers = conn.execute(sa.text(
                "SELECT approver, approved_via FROM promotions")).tuples().all()
            scores = dict(conn.execute(sa.text(
                "SELECT exam_id, score FROM exam_results WHERE study_date = :d"),
                {"d": summary["screened_date"]}).tuples().all())
        assert approvers == [("admin", "airflow")]  # the login that triggered the deploy DAG
        # The morning's monitoring: the night against the champion's validation exams,
        # the served files verified, a report with its plots; 8 exams are too few to judge.
        with eng.connect() as conn:
            monitored = conn.execute(sa.text(
                "SELECT exams, reference_exams, judged, alert, integrity_ok, report FROM monitoring_runs "
                "WHERE study_date = :d"), {"d": summary["screened_date"]}).one()
            tests = conn.execute(sa.text("SELECT count(*) FROM drift_metrics WHERE study_date = :d"),
                                 {"d": summary["screened_date"]}).scalar_one()
            integrity = conn.execute(sa.text("SELECT status FROM integrity_checks WHERE check_date = :d"),
                                     {"d": summary["screened_date"]}).scalars().all()
        assert (monitored.exams, monitored.judged, monitored.alert) == (8, False, False)
        assert monitored.reference_exams > 0 and tests > 20
        assert integrity and set(integrity) == {"ok"} and monitored.integrity_ok is True
        report = Path(monitored.report).read_text()
        assert Path(summary["monitoring_report"]) == Path(monitored.report)
        assert report.count("data:image/png;base64,") >= 4
        assert sorted(scores) == sorted(ids)
        page_order = [scores[i] for i in ids]
        assert page_order == sorted(page_order, reverse=True)

        # No PHI past the ingest boundary: lake, manifest, datasets, logs, MLflow, Triton,
        # worklists, Airflow's database (XCom) and the results database.
        assert len(phi) > 100
        state = tmp_path / "state"
        places = ["lake", "datasets", "dvc-remote", "logs", "mlflow", "triton_repo", "worklists",
                  "serving", "airflow", "monitoring", "reports"]  # airflow/: the task logs
        blobs = scanned_files(state, places)
        blobs += [proc.stdout.encode(), proc.stderr.encode()]
        with eng.connect() as conn:
            for table in ("images", "exam_results", "quarantine", "promotions", "date_offsets",
                          "monitoring_runs", "drift_metrics", "integrity_checks"):
                blobs.append(_rows_text(conn.execute(sa.text(f"SELECT * FROM {table}")).all()))
        eng.dispose()
        url = sa.engine.make_url(db_url)
        airflow_db = sa.create_engine(url.set(database=f"{url.database}_airflow"))
        with airflow_db.connect() as conn:  # Airflow's metadata: XCom, run confs, task logs' index
            for table in ("xcom", "dag_run", "task_instance", "asset_event", "log"):
                blobs.append(f"{table}: ".encode() + _rows_text(conn.execute(
                    sa.text(f"SELECT * FROM {table}")).all()))
        airflow_db.dispose()
        assert any(b.startswith(b"xcom: [(") for b in blobs), "Airflow's XCom table was scanned"
        leaks = leaked(phi, blobs)
        assert leaks == [], f"PHI found past the ingest boundary: {leaks[:5]}"


def _airflow_ui_after_login(env: dict[str, str], state: Path, screenshot: Path) -> str:
    """Log in to the Airflow UI as the admin in headless Chromium; the DAG list's text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from pipelines.config import read_secret_file
    from tests.integration.browser import chromium

    url = f"http://127.0.0.1:{env['RADFLOW_AIRFLOW_PORT']}"
    password = read_secret_file(state / "secrets" / "airflow.env", "RADFLOW_AIRFLOW_PASSWORD")
    with chromium("Airflow UI check", 1400, 900) as driver:
        driver.get(f"{url}/dags")
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.NAME, "username"))
        assert "/auth/login" in driver.current_url  # nothing is shown before logging in
        driver.find_element(By.NAME, "username").send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
        WebDriverWait(driver, 60).until(lambda d: "/auth/login" not in d.current_url)
        driver.get(f"{url}/dags")
        WebDriverWait(driver, 60).until(
            lambda d: "screen_daily_mammograms" in d.find_element(By.TAG_NAME, "body").text)
        driver.save_screenshot(str(screenshot))
        return str(driver.find_element(By.TAG_NAME, "body").text)


def _rows_text(rows: list[Any]) -> bytes:
    """Table rows as text to search for identifiers: values by repr, but times in ISO form.
    The repr of a datetime spells its microseconds as a separate number ("33, 249353,"),
    which a 6-digit StudyID can equal by chance: seen once in ~2,000 Airflow timestamps."""
    import datetime as dt

    def text(value: object) -> str:
        return value.isoformat() if isinstance(value, dt.datetime | dt.date | dt.time) else repr(value)

    return ("[" + ", ".join("(" + ", ".join(text(v) for v in row) + ")" for row in rows) + "]").encode()


def _identifiers_in_orthanc(env: dict[str, str], state: Path) -> set[str]:
    """Every identifier of every instance the demo stored in the PACS (not of radflow's own
    results written back into the studies: their patient attributes are the originals',
    already collected, and their content is radflow's, e.g. view names and today's date)."""
    import io

    import httpx
    import pydicom

    from pipelines.deid import original_identifiers

    url = f"http://127.0.0.1:{env['RADFLOW_ORTHANC_HTTP_PORT']}"
    auth = ("radflow", (state / "secrets" / "orthanc.env").read_text().strip().split("=", 1)[1])
    found: set[str] = set()
    with httpx.Client(auth=auth, headers={"Accept-Encoding": "identity"}, timeout=60) as client:
        for instance in client.get(f"{url}/instances").json():
            blob = client.get(f"{url}/instances/{instance}/file").content
            ds = pydicom.dcmread(io.BytesIO(blob), stop_before_pixels=True)
            if ds.get("Manufacturer") != "radflow":
                found |= original_identifiers(ds)
    return found
