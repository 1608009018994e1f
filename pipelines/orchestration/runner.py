"""Run one of radflow's DAGs in-process with `airflow dags test` (tests only: the stack's
scheduler runs them otherwise), against the state dir's Airflow metadata database."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.config import get_settings
from pipelines.errors import PermanentError
from pipelines.stack import airflow

log = logging.getLogger(__name__)


def airflow_env() -> dict[str, str]:
    """The environment of an `airflow` command for this state dir."""
    return airflow.environment(get_settings())


def ensure_metadata_db() -> None:
    """The metadata database created and migrated once per state dir."""
    s = get_settings()
    marker = airflow.home(s) / ".migrated"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    if s.airflow_db_url.startswith("postgresql"):
        from pipelines.stack import postgres

        postgres.ensure_database(s.airflow_db_url)
    try:
        airflow.run_cli(s, ["db", "migrate"], "airflow-db-migrate")
    except Exception as exc:
        raise PermanentError(str(exc)) from exc
    marker.write_text("ok\n")


def dags_test(dag_id: str, logical_date: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one DAG with `airflow dags test`; raise PermanentError when the run fails.

    Returns the run's wall-clock seconds and the log file (the full Airflow output).
    """
    ensure_metadata_db()
    s = get_settings()
    argv = [str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id, logical_date]
    if conf:
        argv += ["--conf", json.dumps(conf)]
    log_file = s.logs_dir / f"dag-{dag_id}-{logical_date}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = airflow_env()
    # `airflow dags test` of a DAG with a deadline alert crashes after a successful run in
    # Airflow 3.3.2 (apache/airflow#73428): the deadline is the scheduler's business, not a test's
    env["RADFLOW_SCREENING_DEADLINE"] = ""
    if airflow.go_live(s) is None:
        # no go-live here (no scheduler ever ran): the DAGs start on the night tested, since
        # Airflow runs no task of a night before its DAG's start date (and says nothing)
        env["RADFLOW_SCREENING_START_DATE"] = logical_date[:10]
    started = time.monotonic()
    with open(log_file, "w") as fh:
        proc = subprocess.run(argv, env=env, stdout=fh, stderr=subprocess.STDOUT,
                              timeout=3600, cwd=s.state)
    seconds = time.monotonic() - started
    text = log_file.read_text(errors="replace")
    failed = proc.returncode != 0 or "DagRun failed" in text or "dagrun failed" in text.lower()
    if not failed and "Task started" not in text:
        raise PermanentError(f"DAG {dag_id} for {logical_date} ran no task: a logical date before the "
                             f"DAGs' start ({airflow.go_live(s)}) runs nothing; log {log_file}")
    if failed:
        tail = "\n".join(line for line in text.splitlines()[-400:]
                         if "Error" in line or "Exception" in line)[-2000:]
        raise PermanentError(f"DAG {dag_id} failed for {logical_date} (exit {proc.returncode}); "
                             f"log {log_file}\n{tail}")
    log.info("airflow: %s %s succeeded in %.0f s", dag_id, logical_date, seconds)
    return {"dag_id": dag_id, "logical_date": logical_date, "seconds": round(seconds, 1),
            "log": str(log_file)}
