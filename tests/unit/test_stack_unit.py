"""The local stack's management, without starting any real service.

Ports are the test's own: a listening socket it holds, a tiny loopback HTTP server it
starts, or a port nothing listens on.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.errors import StackError
from pipelines.stack import manage, processes

pytestmark = pytest.mark.timeout(60)  # a port check that hangs must not hang the suite


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port on which the test itself listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.fixture
def own_ports(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Every service setting pointed at closed loopback ports (a developer's running stack
    on the default ports must not be seen, nor touched)."""
    for name in ("RADFLOW_ORTHANC_URL", "RADFLOW_MLFLOW_TRACKING_URI", "RADFLOW_TRITON_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ORTHANC_HTTP", "ORTHANC_DICOM", "MLFLOW", "TRITON_HTTP", "TRITON_GRPC",
                 "TRITON_METRICS", "POSTGRES", "AIRFLOW"):
        monkeypatch.setenv(f"RADFLOW_{name}_PORT", str(closed_port()))
    return monkeypatch


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_mlflow(own_ports: pytest.MonkeyPatch) -> Iterator[int]:
    """A loopback HTTP server answering MLflow's /health, on RADFLOW_MLFLOW_PORT."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    own_ports.setenv("RADFLOW_MLFLOW_PORT", str(server.server_address[1]))
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_port_in_use_sees_a_listening_socket(held_port: int) -> None:
    assert processes.port_in_use(held_port) is True


def test_port_in_use_is_false_for_a_free_port() -> None:
    assert processes.port_in_use(closed_port()) is False


def test_up_refuses_a_port_held_by_another_process_and_leaves_no_pid_file(
    own_ports: pytest.MonkeyPatch, held_port: int, isolated_settings: Path
) -> None:
    own_ports.setenv("RADFLOW_MLFLOW_PORT", str(held_port))
    with pytest.raises(StackError) as err:
        manage.up(only=["mlflow"])
    message = str(err.value)
    assert "mlflow" in message and str(held_port) in message and "in use" in message
    assert not (isolated_settings / "run" / "mlflow.pid").exists()
    assert not list(isolated_settings.rglob("*.pid"))


def test_the_port_error_names_the_setting_that_moves_the_port(
    own_ports: pytest.MonkeyPatch, held_port: int
) -> None:
    own_ports.setenv("RADFLOW_MLFLOW_PORT", str(held_port))
    with pytest.raises(StackError, match="RADFLOW_MLFLOW_PORT"):
        manage.up(only=["mlflow"])


@pytest.mark.parametrize("only", [["redis"], ["mlflow", "celery"], ["Orthanc"]])
def test_an_unknown_service_is_refused_naming_it(only: list[str], own_ports: pytest.MonkeyPatch) -> None:
    with pytest.raises(StackError, match="unknown service") as err:
        manage.up(only=only)
    bad = [n for n in only if n not in manage.SERVICES]
    assert all(name in str(err.value) for name in bad)
    assert "postgres, orthanc, mlflow, triton, airflow" in str(err.value)


def test_down_of_an_unknown_service_is_refused(own_ports: pytest.MonkeyPatch) -> None:
    with pytest.raises(StackError, match="unknown service redis"):
        manage.down(only=["redis"])


def test_down_when_nothing_was_started_stops_nothing(own_ports: pytest.MonkeyPatch) -> None:
    out = manage.down()
    assert out["actions"] == {name: "not running" for name in manage.SERVICES}


def test_airflow_is_four_supervised_processes_started_in_order(own_ports: pytest.MonkeyPatch) -> None:
    from pipelines.config import get_settings

    table = manage.services(get_settings())
    assert list(table)[-4:] == ["airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                                "airflow-triggerer"]
    assert table["airflow-api-server"].prepare is not None  # migrate + logins, roles, pools first
    assert table["airflow-api-server"].ports == {"RADFLOW_AIRFLOW_PORT": int(
        os.environ["RADFLOW_AIRFLOW_PORT"])}
    assert table["postgres"].stop_group is False  # the postmaster stops its own children


def test_status_has_the_documented_machine_readable_shape(
    own_ports: pytest.MonkeyPatch, isolated_settings: Path
) -> None:
    out = manage.status()
    # ARCHITECTURE.md "Machine-readable interface": these keys stay; more may be added.
    assert {"state_dir", "services", "paths", "database_url"} <= set(out)
    assert set(out["services"]) == {"postgres", "orthanc", "mlflow", "triton", "airflow"}
    assert {"running", "url", "components", "login", "password_file"} <= set(out["services"]["airflow"])
    assert set(out["services"]["airflow"]["components"]) == {"api-server", "scheduler", "dag-processor",
                                                             "triggerer"}
    assert {"running", "url", "dicom_host", "dicom_port", "aet"} <= set(out["services"]["orthanc"])
    assert {"running", "url"} <= set(out["services"]["mlflow"])
    assert {"running", "http_url", "grpc_url"} <= set(out["services"]["triton"])
    assert {"lake", "logs", "mlflow_artifacts", "orthanc_storage", "worklists"} <= set(out["paths"])
    assert isinstance(out["services"]["orthanc"]["dicom_port"], int)
    assert all(isinstance(svc["running"], bool) for name, svc in out["services"].items()
               if name != "postgres")
    assert out["services"]["postgres"] == {"running": None, "embedded": False, "data_dir": None,
                                           "port": int(os.environ["RADFLOW_POSTGRES_PORT"]),
                                           "managed": False}  # the test's SQLite database is given
    state = isolated_settings.resolve()
    assert out["state_dir"] == str(state)
    assert out["paths"]["lake"] == str(state / "lake")
    assert out["database_url"] == f"sqlite:///{state / 'radflow.db'}"


def test_status_reports_a_healthy_service_as_running(fake_mlflow: int) -> None:
    out = manage.status()
    assert out["services"]["mlflow"]["running"] is True
    assert out["services"]["mlflow"]["url"] == f"http://127.0.0.1:{fake_mlflow}"
    assert out["services"]["orthanc"]["running"] is False
    assert out["services"]["triton"]["running"] is False


def test_status_never_shows_the_database_password(own_ports: pytest.MonkeyPatch) -> None:
    own_ports.setenv("RADFLOW_DATABASE_URL",
                     "postgresql+psycopg2://radflow:Hunter2-db-pw@db.hospital.example/results")
    out = manage.status()
    assert "Hunter2-db-pw" not in repr(out)
    assert out["database_url"].startswith("postgresql+psycopg2://radflow:***@db.hospital.example")


def test_the_triton_admin_key_comes_from_the_environment_or_a_private_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.config import get_settings, reset_settings
    from pipelines.stack.triton import ensure_admin_key
    from pipelines.triton_client import TritonClient

    monkeypatch.setenv("RADFLOW_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("RADFLOW_TRITON_ADMIN_KEY", raising=False)
    reset_settings()
    generated = ensure_admin_key(get_settings())
    secret = tmp_path / "secrets" / "triton.env"
    assert len(generated) >= 20 and oct(secret.stat().st_mode & 0o777) == "0o600"
    assert ensure_admin_key(get_settings()) == generated  # kept, not regenerated
    assert TritonClient()._admin == {"radflow-admin-key": generated}
    monkeypatch.setenv("RADFLOW_TRITON_ADMIN_KEY", "from-the-vault")
    reset_settings()
    assert ensure_admin_key(get_settings()) == "from-the-vault"
    assert TritonClient()._admin == {"radflow-admin-key": "from-the-vault"}


def test_mlflow_checks_a_password_once_a_minute_and_runs_no_job_runner(
        own_ports: pytest.MonkeyPatch) -> None:
    from mlflow.server.auth.config import read_auth_config

    from pipelines.config import get_settings
    from pipelines.stack import mlflow

    argv, env = mlflow.command(get_settings())
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert argv[argv.index("--workers") + 1] == "1"  # so a password change applies at once
    own_ports.setenv("MLFLOW_AUTH_CONFIG_PATH", env["MLFLOW_AUTH_CONFIG_PATH"])
    config = read_auth_config()
    assert (config.auth_cache_ttl_seconds, config.default_permission) == (60, "NO_PERMISSIONS")
