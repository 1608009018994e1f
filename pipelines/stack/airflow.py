"""The embedded Airflow 3: api-server (UI and REST API), scheduler, dag-processor, triggerer,
and with the CeleryExecutor its Celery workers.

LocalExecutor on PostgreSQL (`settings.airflow_db_url`) by default, logins by the FAB auth
manager. `radflow stack up --executor celery --workers N` runs the CeleryExecutor instead:
tasks go through the broker (RADFLOW_CELERY_BROKER_URL, Redis) to N workers serving the
queues `default`, `pacs` and `gpu`; `radflow worker` starts one more on another host. The
choice is recorded in `<state>/airflow/executor`, so later commands agree with the running
scheduler.
Everything Airflow needs is passed as AIRFLOW__* variables by `environment()`; its secrets
(the admin's password, the JWT signing secret, the Fernet key of connections, the session
key) are generated once into `<state>/secrets/airflow.env` (0600). Before the processes
start, `prepare()` creates the metadata database if missing, migrates it, and runs
`pipelines.orchestration.provision` (admin login, roles, pools). The go-live moment, the
first night the nightly DAGs catch up from, is written once to `<state>/airflow/go-live`.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pipelines.config import PIPELINE_MLFLOW_LOGIN, PROJECT_DIR, QUEUES, RadflowSettings
from pipelines.errors import StackError
from pipelines.stack import postgres, secrets

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
WORKER_UNIT = "airflow-worker-"  # + its number: the Celery workers `stack up` starts here
_HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


def _airflow() -> str:
    return str(Path(sys.executable).parent / "airflow")


def home(s: RadflowSettings) -> Path:
    return s.state / "airflow"


def ensure_secrets(s: RadflowSettings) -> dict[str, str]:
    """The Airflow secrets of this state dir, generated where missing."""
    from cryptography.fernet import Fernet

    path = s.secret_file("airflow")
    fernet = secrets.ensure(path, "AIRFLOW__CORE__FERNET_KEY", make=lambda: Fernet.generate_key().decode())
    return {
        "RADFLOW_AIRFLOW_PASSWORD": secrets.ensure(path, "RADFLOW_AIRFLOW_PASSWORD", s.airflow_secret()),
        # at least 64 bytes, or Airflow warns: signs the UI's and the workers' tokens
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.ensure(path, "AIRFLOW__API_AUTH__JWT_SECRET", "", nbytes=64),
        "AIRFLOW__API__SECRET_KEY": secrets.ensure(path, "AIRFLOW__API__SECRET_KEY", "", nbytes=32),
        "AIRFLOW__CORE__FERNET_KEY": fernet,
    }


def go_live(s: RadflowSettings, write: bool = False) -> str | None:
    """The moment the nightly DAGs catch up from: RADFLOW_SCREENING_START_DATE, else the
    go-live file (written by the first `stack up` that starts Airflow when `write`)."""
    if s.screening_start_date:
        return s.screening_start_date
    path = home(s) / "go-live"
    if path.exists():
        return path.read_text().strip()
    if not write:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(ZoneInfo(s.hospital_timezone)).replace(microsecond=0)
    path.write_text(now.isoformat() + "\n")
    return now.isoformat()


def executor(s: RadflowSettings) -> tuple[str, int]:
    """(kind, workers here): RADFLOW_AIRFLOW_EXECUTOR, else what the last `stack up` recorded,
    else ("local", 0)."""
    path = home(s) / "executor"
    recorded = path.read_text().split() if path.exists() else []
    kind = s.airflow_executor or (recorded[0] if recorded else "local")
    if kind not in EXECUTORS:
        raise StackError(f"{path} names executor {kind!r}: expected one of {', '.join(EXECUTORS)}")
    if kind == "local":
        return kind, 0
    if "celery_workers" in s.model_fields_set or len(recorded) < 2 or recorded[0] != kind:
        return kind, s.celery_workers
    return kind, int(recorded[1])


def record_executor(s: RadflowSettings, kind: str, workers: int) -> None:
    path = home(s) / "executor"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{kind} {workers}\n")


def _celery(s: RadflowSettings) -> dict[str, str]:
    """CeleryExecutor settings: the broker, the result backend in the metadata database."""
    from sqlalchemy.engine import make_url

    backend = make_url(s.airflow_db_url).set(drivername="postgresql+psycopg2")
    return {
        "AIRFLOW__CELERY__BROKER_URL": s.celery_broker_url.get_secret_value(),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + backend.render_as_string(hide_password=False),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(s.worker_concurrency),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "default",
    }


def environment(s: RadflowSettings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every Airflow process (and `airflow` command) of this state dir."""
    env = dict(os.environ if base is None else base)
    api = s.airflow_base_url
    env.update({
        "AIRFLOW_HOME": str(home(s)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[executor(s)[0]],
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": s.airflow_db_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(s.airflow_port),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        "AIRFLOW__API__ENABLE_SWAGGER_UI": "False",  # no API docs pages served to anyone
        "AIRFLOW__FAB__AUTH_RATE_LIMITED": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__WEBSERVER__WARN_DEPLOYMENT_EXPOSURE": "False",
        "RADFLOW_STATE_DIR": str(s.state),
        "GX_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH", "")) if p),
    })
    if s.mlflow_username != PIPELINE_MLFLOW_LOGIN:  # tasks run as the service user, never a person
        env["RADFLOW_MLFLOW_USERNAME"] = PIPELINE_MLFLOW_LOGIN
        env.pop("RADFLOW_MLFLOW_PASSWORD", None)
    if executor(s)[0] == "celery":
        env.update(_celery(s))
    start = go_live(s)
    if start and not s.screening_start_date:
        env["RADFLOW_SCREENING_START_DATE"] = start
    if s.secret_file("airflow").exists() or s.airflow_password is not None:
        env.update({k: v for k, v in ensure_secrets(s).items() if k.startswith("AIRFLOW__")})
    return env


def run_cli(s: RadflowSettings, args: list[str], log_name: str, timeout_s: float = 600) -> None:
    """Run `airflow <args>` (or `python -m <module>` when args[0] is "-m") with this state
    dir's environment; StackError naming the log when it fails."""
    log_file = s.logs_dir / f"{log_name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, *args] if args[0] == "-m" else [_airflow(), *args]
    with open(log_file, "w") as fh:
        proc = subprocess.run(argv, env=environment(s), stdout=fh, stderr=subprocess.STDOUT,
                              timeout=timeout_s, cwd=s.state)
    if proc.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-12:])
        raise StackError(f"`{' '.join(args)}` failed (exit {proc.returncode}); log {log_file}:\n{tail}")


def prepare(s: RadflowSettings) -> None:
    """Metadata database created, migrated and provisioned (admin, roles, pools); go-live set."""
    ensure_secrets(s)
    go_live(s, write=True)
    home(s).mkdir(parents=True, exist_ok=True)
    if not s.airflow_db_url.startswith("postgresql"):
        raise StackError(f"Airflow's metadata database must be PostgreSQL (LocalExecutor), got "
                         f"{s.airflow_db_url.split(':', 1)[0]}: set RADFLOW_AIRFLOW_DATABASE_URL")
    postgres.ensure_database(s.airflow_db_url)
    run_cli(s, ["db", "migrate"], "airflow-db-migrate")
    run_cli(s, ["-m", "pipelines.orchestration.provision"], "airflow-provision")
    (home(s) / ".provisioned").write_text(s.airflow_db_url.rsplit("/", 1)[-1] + "\n")


def provisioned(s: RadflowSettings) -> bool:
    """Has `radflow stack up` set up Airflow's metadata database for this state dir?"""
    return (home(s) / ".provisioned").exists()


def command(s: RadflowSettings, component: str) -> tuple[list[str], dict[str, str]]:
    return [_airflow(), component], environment(s)


def worker_command(s: RadflowSettings, name: str, *,
                   serve_logs: bool = False) -> tuple[list[str], dict[str, str]]:
    """`airflow celery worker` serving RADFLOW_WORKER_QUEUES with RADFLOW_WORKER_CONCURRENCY
    slots, known to Celery as `name@<host>`. Workers on one machine share its task logs on
    disk, so only a worker alone on its host serves them to the api-server (port 8793)."""
    argv = [_airflow(), "celery", "worker", "--queues", queues(s), "--concurrency",
            str(s.worker_concurrency), "--celery-hostname", f"{name}@%h", "--without-mingle",
            "--without-gossip"]
    return argv + ([] if serve_logs else ["--skip-serve-logs"]), environment(s)


def queues(s: RadflowSettings) -> str:
    """The worker's queues, checked against the three radflow routes to."""
    names = [q.strip() for q in s.worker_queues.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUEUES]
    if not names or unknown:
        raise StackError(f"RADFLOW_WORKER_QUEUES {s.worker_queues!r}: unknown queue "
                         f"{', '.join(unknown) or '(none given)'}; choose from {', '.join(QUEUES)}")
    return ",".join(names)


def check_broker(s: RadflowSettings) -> None:
    """StackError naming the setting when the Celery broker does not answer."""
    import redis

    url = s.celery_broker_url.get_secret_value()
    where = url.rsplit("@", 1)[-1].split("://")[-1]  # host:port/db, without a password
    try:
        redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise StackError(f"the Celery broker redis://{where} does not answer "
                         f"({type(exc).__name__}): start Redis or set RADFLOW_CELERY_BROKER_URL") from None


def worker_ready(log_file: Path, since: float) -> bool:
    """A Celery worker is ready once it has connected to the broker and said so, in a line
    stamped after `since` (its start, epoch seconds): the log is appended to, so after a
    restart it still holds the previous run's "ready." line."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return False
    said = next((line for line in reversed(lines) if " ready." in line), None)
    if said is None:
        return False
    try:
        stamp = dt.datetime.fromisoformat(said.split(" ", 1)[0].replace("Z", "+00:00"))
    except ValueError:
        return False
    return stamp.timestamp() >= since - 1.0  # the pid file is written just after the start


def health(s: RadflowSettings) -> dict[str, Any]:
    """Airflow's own health document (public: no credentials)."""
    import httpx

    response = httpx.get(f"{s.airflow_base_url}/api/v2/monitor/health", timeout=3.0)
    response.raise_for_status()
    return dict(response.json())


def component_healthy(s: RadflowSettings, component: str) -> bool:
    """The api-server answers; the others' heartbeats are recent (Airflow's own judgement)."""
    doc = health(s)
    if component == "api-server":
        return doc.get("metadatabase", {}).get("status") == "healthy"
    return doc.get(_HEALTH_KEYS[component], {}).get("status") == "healthy"
