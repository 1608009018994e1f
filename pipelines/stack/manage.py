"""`radflow stack up|status|down`: the local Orthanc, MLflow and Triton under the state dir.

A second `up` is a no-op; `down` stops only what `up` started (pid files); a port that
something else holds is a clear error, not a hang.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pipelines import db
from pipelines.config import RadflowSettings, get_settings
from pipelines.errors import StackError
from pipelines.stack import orthanc, processes, triton

log = logging.getLogger(__name__)
SERVICES = ("orthanc", "mlflow", "triton")


@dataclass(frozen=True)
class Service:
    name: str
    ports: dict[str, int]  # setting (environment variable) -> port
    health: Callable[[], bool]
    timeout_s: float


def _ok(url: str, auth: tuple[str, str] | None = None) -> bool:
    return httpx.get(url, auth=auth, timeout=2.0).status_code == 200


def services(s: RadflowSettings) -> dict[str, Service]:
    def orthanc_ok() -> bool:  # the secret may be created by this very `up`
        return _ok(f"{s.orthanc_base_url}/system", (s.orthanc_username, s.orthanc_secret()))

    return {
        "orthanc": Service("orthanc", {"RADFLOW_ORTHANC_HTTP_PORT": s.orthanc_http_port,
                                       "RADFLOW_ORTHANC_DICOM_PORT": s.orthanc_dicom_port},
                           orthanc_ok, 60),
        "mlflow": Service("mlflow", {"RADFLOW_MLFLOW_PORT": s.mlflow_port},
                          lambda: _ok(f"{s.mlflow_uri}/health"), 180),
        "triton": Service("triton", {"RADFLOW_TRITON_HTTP_PORT": s.triton_http_port,
                                     "RADFLOW_TRITON_GRPC_PORT": s.triton_grpc_port,
                                     "RADFLOW_TRITON_METRICS_PORT": s.triton_metrics_port},
                          lambda: _ok(f"http://{s.triton_http_url}/v2/health/live"), 120),
    }


def _paths(s: RadflowSettings, name: str) -> tuple[Path, Path]:
    return s.state / "run" / f"{name}.pid", s.logs_dir / f"{name}.log"


def _argv(s: RadflowSettings, name: str) -> tuple[list[str], dict[str, str] | None]:
    if name == "orthanc":
        password = orthanc.ensure_secret(s)
        return orthanc.command(orthanc.write_config(s, password)), None
    if name == "mlflow":
        root = s.state / "mlflow"
        s.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "mlflow"
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        return [str(exe), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination", str(s.mlflow_artifacts_dir), "--host", "127.0.0.1",
                "--port", str(s.mlflow_port), "--workers", "1"], env
    return triton.command(s)


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
    argv, env = _argv(s, svc.name)
    processes.start(svc.name, argv, pid_file=pid_file, log_file=log_file, env=env, cwd=s.state)
    secs = processes.wait_until(svc.name, svc.health, pid_file=pid_file, log_file=log_file,
                                timeout_s=svc.timeout_s)
    log.info("stack: %s healthy after %.1f s (log %s)", svc.name, secs, log_file)
    return "started"


def up(only: list[str] | None = None) -> dict[str, Any]:
    """Start the requested services (default all) and wait until each is healthy."""
    s = get_settings()
    s.state.mkdir(parents=True, exist_ok=True)
    wanted = _check(only)
    for folder in (s.lake_dir, s.logs_dir, s.worklists_dir):
        folder.mkdir(parents=True, exist_ok=True)
    table = services(s)
    actions = {name: _start(s, table[name]) for name in wanted}
    return {**status(), "actions": actions}


def down(only: list[str] | None = None) -> dict[str, Any]:
    """Stop the services this state dir started; others are left alone."""
    s = get_settings()
    stopped = {}
    for name in reversed(_check(only)):
        pid_file, _ = _paths(s, name)
        stopped[name] = "stopped" if processes.stop(pid_file) else "not running"
    return {**status(), "actions": stopped}


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

    return {
        "state_dir": str(s.state),
        "services": {
            "orthanc": {"running": running("orthanc"), "url": s.orthanc_base_url,
                        "dicom_host": s.orthanc_dicom_host, "dicom_port": s.orthanc_dicom_port,
                        "aet": s.orthanc_aet, "managed": _managed(s, "orthanc")},
            "mlflow": {"running": running("mlflow"), "url": s.mlflow_uri,
                       "managed": _managed(s, "mlflow")},
            "triton": {"running": running("triton"), "http_url": f"http://{s.triton_http_url}",
                       "grpc_url": s.triton_grpc_url, "repository": str(s.triton_repository),
                       "managed": _managed(s, "triton")},
        },
        "paths": {"lake": str(s.lake_dir), "logs": str(s.logs_dir),
                  "mlflow_artifacts": str(s.mlflow_artifacts_dir),
                  "orthanc_storage": str(s.orthanc_storage_dir),
                  "worklists": str(s.worklists_dir)},
        "database_url": db.redacted_url(s.db_url),
    }


def _managed(s: RadflowSettings, name: str) -> bool:
    return processes.read_pid(_paths(s, name)[0]) is not None
