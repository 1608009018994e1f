"""`radflow stack up|status|down`: the local stack under the state dir.

PostgreSQL (embedded, when no RADFLOW_DATABASE_URL is given), Orthanc, MLflow (basic
auth), Triton and Airflow (api-server, scheduler, dag-processor, triggerer). A second
`up` is a no-op; `down` stops only what `up` started (pid files); a port that something
else holds is a clear error, not a hang.
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pipelines import db
from pipelines.config import RadflowSettings, get_settings
from pipelines.errors import StackError
from pipelines.stack import airflow, mlflow, orthanc, postgres, processes, triton

log = logging.getLogger(__name__)
SERVICES = ("postgres", "orthanc", "mlflow", "triton", "airflow")
AIRFLOW_UNITS = tuple(f"airflow-{c}" for c in airflow.COMPONENTS)
Command = tuple[list[str], "dict[str, str] | None"]


@dataclass(frozen=True)
class Service:
    name: str
    ports: dict[str, int]  # setting (environment variable) -> port
    health: Callable[[], bool]
    timeout_s: float
    command: Callable[[], Command]
    prepare: Callable[[], None] | None = None  # before the first start (migrations, users)
    after: Callable[[], None] | None = None  # once healthy after a start (users, roles)
    stop_signal: int = signal.SIGTERM
    stop_group: bool = True  # signal the whole process group, not only the recorded process


def _ok(url: str, auth: tuple[str, str] | None = None) -> bool:
    return httpx.get(url, auth=auth, timeout=2.0).status_code == 200


def services(s: RadflowSettings) -> dict[str, Service]:
    """Every process the stack may start, in start order."""
    def orthanc_ok() -> bool:  # the secret may be created by this very `up`
        return _ok(f"{s.orthanc_base_url}/system", (s.orthanc_username, s.orthanc_secret()))

    def orthanc_command() -> Command:
        return orthanc.command(orthanc.write_config(s, orthanc.ensure_secret(s))), None

    table = {
        "postgres": Service("postgres", {"RADFLOW_POSTGRES_PORT": s.postgres_port},
                            lambda: postgres.healthy(s), 60, lambda: (postgres.command(s), None),
                            after=lambda: _results_database(s),
                            stop_signal=postgres.STOP_SIGNAL, stop_group=False),
        "orthanc": Service("orthanc", {"RADFLOW_ORTHANC_HTTP_PORT": s.orthanc_http_port,
                                       "RADFLOW_ORTHANC_DICOM_PORT": s.orthanc_dicom_port},
                           orthanc_ok, 60, orthanc_command),
        "mlflow": Service("mlflow", {"RADFLOW_MLFLOW_PORT": s.mlflow_port},
                          lambda: _ok(f"{s.mlflow_uri}/health"), 180, lambda: mlflow.command(s),
                          after=lambda: mlflow.provision(s)),
        "triton": Service("triton", {"RADFLOW_TRITON_HTTP_PORT": s.triton_http_port,
                                     "RADFLOW_TRITON_GRPC_PORT": s.triton_grpc_port,
                                     "RADFLOW_TRITON_METRICS_PORT": s.triton_metrics_port},
                          lambda: _ok(f"http://{s.triton_http_url}/v2/health/live"), 120,
                          lambda: triton.command(s)),
    }
    for component, unit in zip(airflow.COMPONENTS, AIRFLOW_UNITS, strict=True):
        api = component == "api-server"
        table[unit] = Service(
            unit, {"RADFLOW_AIRFLOW_PORT": s.airflow_port} if api else {},
            functools.partial(airflow.component_healthy, s, component), 240 if api else 120,
            functools.partial(airflow.command, s, component),
            prepare=(lambda: airflow.prepare(s)) if api else None)
    for unit in _worker_units(s):
        table[unit] = Service(unit, {}, functools.partial(_worker_healthy, s, unit), 120,
                              functools.partial(airflow.worker_command, s, unit.removeprefix("airflow-")),
                              stop_signal=signal.SIGQUIT)  # cold shutdown: a retry reruns its task
    return table


def _worker_units(s: RadflowSettings) -> list[str]:
    """The Celery workers of this machine: as many as the executor asks for, and any still
    running from an earlier `up` with more (so that `down` stops them too)."""
    kind, count = airflow.executor(s)
    wanted = {f"{airflow.WORKER_UNIT}{i}" for i in range(1, count + 1)} if kind == "celery" else set()
    running = {p.stem for p in (s.state / "run").glob(f"{airflow.WORKER_UNIT}*.pid")}
    return sorted(wanted | running, key=lambda u: int(u.rsplit("-", 1)[1]))


def _worker_healthy(s: RadflowSettings, unit: str) -> bool:
    pid_file, log_file = _paths(s, unit)
    return (processes.read_pid(pid_file) is not None
            and airflow.worker_ready(log_file, since=pid_file.stat().st_mtime))


def _results_database(s: RadflowSettings) -> None:
    """The embedded cluster's results database, created and migrated to the newest schema."""
    postgres.ensure_database(s.db_url)
    db.migrate(s.db_url)


def _units(s: RadflowSettings, group: str) -> tuple[str, ...]:
    return (*AIRFLOW_UNITS, *_worker_units(s)) if group == "airflow" else (group,)


def _paths(s: RadflowSettings, name: str) -> tuple[Path, Path]:
    return s.state / "run" / f"{name}.pid", s.logs_dir / f"{name}.log"


def _start(s: RadflowSettings, svc: Service) -> str:
    pid_file, log_file = _paths(s, svc.name)
    if processes.read_pid(pid_file) is not None:
        processes.wait_until(svc.name, svc.health, pid_file=pid_file, log_file=log_file,
                             timeout_s=svc.timeout_s)
        return "already running"
    taken = {k: p for k, p in svc.ports.items() if processes.port_in_use(p)}
    if taken:
        raise StackError(
            f"{svc.name}: port {', '.join(map(str, taken.values()))} on 127.0.0.1 is already in use "
            f"by another process; stop it or move {svc.name} with "
            + ", ".join(f"{k}=<free port>" for k in taken)
        )
    if svc.prepare is not None:
        svc.prepare()
    argv, env = svc.command()
    processes.start(svc.name, argv, pid_file=pid_file, log_file=log_file, env=env, cwd=s.state)
    secs = processes.wait_until(svc.name, svc.health, pid_file=pid_file, log_file=log_file,
                                timeout_s=svc.timeout_s)
    if svc.after is not None:
        svc.after()
    log.info("stack: %s healthy after %.1f s (log %s)", svc.name, secs, log_file)
    return "started"


def up(only: list[str] | None = None, executor: str | None = None,
       workers: int | None = None) -> dict[str, Any]:
    """Start the requested services (default all) and wait until each is healthy.

    The embedded PostgreSQL (no RADFLOW_DATABASE_URL) always starts: it holds the results.
    `executor` ("local" or "celery") and `workers` (Celery workers on this machine) are
    recorded for the Airflow processes; unset, the recorded or configured ones stay.
    """
    s = get_settings()
    if executor is not None or workers is not None:
        kind = executor or airflow.executor(s)[0]
        if workers is not None and kind != "celery":
            raise StackError("--workers starts Celery workers: give --executor celery too")
        s = s.model_copy(update={"airflow_executor": kind, "celery_workers": workers or s.celery_workers})
    s.state.mkdir(parents=True, exist_ok=True)
    wanted = _check(only)
    if s.embedded_postgres and "postgres" not in wanted:
        wanted.insert(0, "postgres")
    if not s.embedded_postgres and "postgres" in wanted:
        wanted.remove("postgres")  # the configured server is not radflow's to start
    for folder in (s.lake_dir, s.logs_dir, s.worklists_dir):
        folder.mkdir(parents=True, exist_ok=True)
    table = services(s)
    actions: dict[str, str] = {}
    for group in wanted:
        if group == "airflow":
            _check_executor(s, executor)
        results = [_start(s, table[unit]) for unit in _units(s, group)]
        actions[group] = results[0] if len(set(results)) == 1 else "started"
    return {**status(), "actions": actions}


def down(only: list[str] | None = None) -> dict[str, Any]:
    """Stop the services this state dir started; others are left alone."""
    s = get_settings()
    table = services(s)
    stopped = {}
    for group in reversed(_check(only)):
        results = []
        for unit in reversed(_units(s, group)):
            pid_file, _ = _paths(s, unit)
            results.append(processes.stop(pid_file, sig=table[unit].stop_signal,
                                          group=table[unit].stop_group))
        stopped[group] = "stopped" if any(results) else "not running"
    return {**status(), "actions": stopped}


def _check_executor(s: RadflowSettings, requested: str | None) -> None:
    """Record the executor before Airflow starts; refuse to change it under a running
    scheduler (its tasks would go where no worker listens)."""
    kind, count = airflow.executor(s)
    path = airflow.home(s) / "executor"
    before = path.read_text().split()[0] if path.exists() else "local"
    scheduler_up = processes.read_pid(_paths(s, "airflow-scheduler")[0]) is not None
    if requested is not None and scheduler_up and before != kind:
        raise StackError(f"Airflow runs here with the {before} executor; stop it first "
                         f"(`radflow stack down --only airflow`), then start it with --executor {kind}")
    if kind == "celery":
        airflow.check_broker(s)
    airflow.record_executor(s, kind, count)


def _check(only: list[str] | None) -> list[str]:
    wanted = list(only) if only else list(SERVICES)
    unknown = [n for n in wanted if n not in SERVICES]
    if unknown:
        raise StackError(f"unknown service {', '.join(unknown)}: choose from {', '.join(SERVICES)}")
    return [n for n in SERVICES if n in wanted]


def status() -> dict[str, Any]:
    """The machine-readable state of the stack (`radflow stack status --json`)."""
    s = get_settings()
    table = services(s)

    def running(name: str) -> bool:
        try:
            return bool(table[name].health())
        except Exception:
            return False

    components = {c: running(u) for c, u in zip(airflow.COMPONENTS, AIRFLOW_UNITS, strict=True)}
    kind, _ = airflow.executor(s)
    workers = {u.removeprefix("airflow-"): running(u) for u in _worker_units(s)}
    return {
        "state_dir": str(s.state),
        "services": {
            "postgres": {"running": running("postgres") if s.embedded_postgres else None,
                         "embedded": s.embedded_postgres, "port": s.postgres_port,
                         "data_dir": str(postgres.root_dir(s) / "data") if s.embedded_postgres else None,
                         "managed": _managed(s, "postgres")},
            "orthanc": {"running": running("orthanc"), "url": s.orthanc_base_url,
                        "dicom_host": s.orthanc_dicom_host, "dicom_port": s.orthanc_dicom_port,
                        "aet": s.orthanc_aet, "managed": _managed(s, "orthanc")},
            "mlflow": {"running": running("mlflow"), "url": s.mlflow_uri,
                       "login": s.mlflow_username, "managed": _managed(s, "mlflow")},
            "triton": {"running": running("triton"), "http_url": f"http://{s.triton_http_url}",
                       "grpc_url": s.triton_grpc_url, "repository": str(s.triton_repository),
                       "managed": _managed(s, "triton")},
            "airflow": {"running": all(components.values()) and all(workers.values()),
                        "url": s.airflow_base_url, "executor": kind, "workers": workers,
                        "components": components, "login": s.airflow_username,
                        "password_file": str(s.secret_file("airflow")),
                        "database_url": db.redacted_url(s.airflow_db_url),
                        "managed": all(_managed(s, u) for u in (*AIRFLOW_UNITS, *_worker_units(s)))},
        },
        "paths": {"lake": str(s.lake_dir), "store": str(s.store), "logs": str(s.logs_dir),
                  "mlflow_artifacts": str(s.mlflow_artifacts_dir),
                  "orthanc_storage": str(s.orthanc_storage_dir),
                  "worklists": str(s.worklists_dir), "secrets": str(s.state / "secrets")},
        "database_url": db.redacted_url(s.db_url),
    }


def _managed(s: RadflowSettings, name: str) -> bool:
    return processes.read_pid(_paths(s, name)[0]) is not None
