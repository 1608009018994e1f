"""Run radflow's DAGs in-process with `airflow dags test` against the local stack.

Airflow's own metadata lives in `<state_dir>/airflow` (SQLite); production points
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN at PostgreSQL instead (infra/).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.config import PROJECT_DIR, get_settings
from pipelines.errors import PermanentError

log = logging.getLogger(__name__)


def airflow_env() -> dict[str, str]:
    """The environment of an `airflow` command for this state dir."""
    s = get_settings()
    home = s.state / "airflow"
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "RADFLOW_STATE_DIR": str(s.state),
        "GX_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH", "")) if p),
    })
    env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    return env


def _airflow() -> str:
    return str(Path(sys.executable).parent / "airflow")


def ensure_metadata_db() -> None:
    """`airflow db migrate` once per state dir (it is idempotent, but takes seconds)."""
    s = get_settings()
    marker = s.state / "airflow" / ".migrated"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    log_file = s.logs_dir / "airflow-db-migrate.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as fh:
        proc = subprocess.run([_airflow(), "db", "migrate"], env=airflow_env(), stdout=fh,
                              stderr=subprocess.STDOUT, timeout=600)
    if proc.returncode != 0:
        raise PermanentError(f"airflow db migrate failed (exit {proc.returncode}); see {log_file}")
    marker.write_text("ok\n")


def dags_test(dag_id: str, logical_date: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one DAG with `airflow dags test`; raise PermanentError when the run fails.

    Returns the run's wall-clock seconds and the log file (the full Airflow output).
    """
    ensure_metadata_db()
    s = get_settings()
    argv = [_airflow(), "dags", "test", dag_id, logical_date]
    if conf:
        argv += ["--conf", json.dumps(conf)]
    log_file = s.logs_dir / f"dag-{dag_id}-{logical_date}.log"
    started = time.monotonic()
    with open(log_file, "w") as fh:
        proc = subprocess.run(argv, env=airflow_env(), stdout=fh, stderr=subprocess.STDOUT,
                              timeout=3600, cwd=s.state)
    seconds = time.monotonic() - started
    text = log_file.read_text(errors="replace")
    failed = proc.returncode != 0 or "DagRun failed" in text or "dagrun failed" in text.lower()
    if failed:
        tail = "\n".join(line for line in text.splitlines()[-400:]
                         if "Error" in line or "Exception" in line)[-2000:]
        raise PermanentError(f"DAG {dag_id} failed for {logical_date} (exit {proc.returncode}); "
                             f"log {log_file}\n{tail}")
    log.info("airflow: %s %s succeeded in %.0f s", dag_id, logical_date, seconds)
    return {"dag_id": dag_id, "logical_date": logical_date, "seconds": round(seconds, 1),
            "log": str(log_file)}
