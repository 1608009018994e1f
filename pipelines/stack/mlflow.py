"""The embedded MLflow tracking server, behind MLflow's basic-auth app.

No request but `/health` and the static files is answered without credentials. The admin
(RADFLOW_MLFLOW_ADMIN_USERNAME, default `admin`) gets a generated password, never MLflow's
public default; once the server answers, radflow makes sure these roles and its service
user exist (workspace `default`, every experiment and registered model):

- `radflow-pipeline`, EDIT: the stages' service user (`radflow-pipeline`): log runs,
  register versions, set aliases;
- `ml-team`, EDIT: people of the ML team (`radflow user add --role ml-team`);
- `viewer`, READ: hospital IT and read-only viewers.

Users get no permission by default (`default_permission = NO_PERMISSIONS`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.config import PIPELINE_MLFLOW_LOGIN, RadflowSettings
from pipelines.errors import StackError
from pipelines.stack import secrets

WORKSPACE = "default"
ROLES = {"radflow-pipeline": "EDIT", "ml-team": "EDIT", "viewer": "READ"}
RESOURCES = ("experiment", "registered_model")


def pipeline_password(s: RadflowSettings) -> str:
    """The service user's password: RADFLOW_MLFLOW_PASSWORD when this process logs in as it,
    else the generated one in <state>/secrets/mlflow.env."""
    given = (s.mlflow_password.get_secret_value()
             if s.mlflow_password is not None and s.mlflow_username == PIPELINE_MLFLOW_LOGIN else "")
    return secrets.ensure(s.secret_file("mlflow"), "RADFLOW_MLFLOW_PASSWORD", given, nbytes=24)


def ensure_secrets(s: RadflowSettings) -> None:
    path = s.secret_file("mlflow")
    secrets.ensure(path, "RADFLOW_MLFLOW_ADMIN_PASSWORD", s.mlflow_admin_secret(), nbytes=24)
    pipeline_password(s)
    secrets.ensure(path, "MLFLOW_FLASK_SERVER_SECRET_KEY", "", nbytes=32)


def write_auth_config(s: RadflowSettings) -> Path:
    """basic_auth.ini (0600): no default permission, the admin's generated password."""
    root = s.state / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "basic_auth.ini"
    text = "\n".join([
        "[mlflow]",
        "default_permission = NO_PERMISSIONS",
        f"database_uri = sqlite:///{root / 'basic_auth.db'}",
        f"admin_username = {s.mlflow_admin_username}",
        f"admin_password = {s.mlflow_admin_secret()}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access = false",
        f"auth_cache_ttl_seconds = {s.mlflow_auth_cache_s}",  # see the setting
        "",
    ])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def command(s: RadflowSettings) -> tuple[list[str], dict[str, str]]:
    """`mlflow server --app-name basic-auth` on loopback, SQLite store, local artifacts."""
    ensure_secrets(s)
    config = write_auth_config(s)
    root = s.state / "mlflow"
    s.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "mlflow"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_ADMIN_"))}
    env.update({
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # MLflow 3 starts a job runner by default (GenAI scorers, trace archival): some
        # eight huey consumer processes of about 250 MB each and 30 s of CPU at every
        # start. radflow runs no MLflow jobs.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.read(s.secret_file("mlflow"),
                                                       "MLFLOW_FLASK_SERVER_SECRET_KEY"),
    })
    argv = [str(exe), "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(s.mlflow_artifacts_dir), "--host", "127.0.0.1",
            "--port", str(s.mlflow_port), "--workers", "1"]
    return argv, env


@contextlib.contextmanager
def admin_client(s: RadflowSettings) -> Iterator[Any]:
    """MLflow's user-management client, logged in as the admin while the block runs."""
    from pipelines.tracking import credentials, quiet_mlflow

    quiet_mlflow()
    from mlflow.server.auth.client import AuthServiceClient

    with credentials(s.mlflow_admin_username, s.mlflow_admin_secret()):
        yield AuthServiceClient(s.mlflow_uri)


def _role_ids(client: Any) -> dict[str, int]:
    """radflow's roles by name, created with their permissions where missing."""
    existing = {r.name: r.id for r in client.list_roles(WORKSPACE)}
    for name, permission in ROLES.items():
        if name in existing:
            continue
        role = client.create_role(WORKSPACE, name, f"radflow: {permission} on every experiment and model")
        for resource in RESOURCES:
            client.add_role_permission(role.id, resource, "*", permission)
        existing[name] = role.id
    return existing


def ensure_user(s: RadflowSettings, login: str, password: str, role: str) -> bool:
    """Create `login` with `role` and `password`, or set both when it exists. True if created.

    Raises:
        StackError: MLflow refused the admin's credentials or the request.
    """
    from mlflow.exceptions import MlflowException, RestException

    try:
        with admin_client(s) as client:
            roles = _role_ids(client)
            created = False
            try:
                client.get_user(login)
                client.update_user_password(login, password)
            except RestException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                client.create_user(login, password)
                created = True
            if role not in {r.name for r in client.list_user_roles(login)}:
                client.assign_role(login, roles[role])
    except MlflowException as exc:
        raise StackError(f"MLflow at {s.mlflow_uri} refused the set-up of user {login!r} as "
                         f"{s.mlflow_admin_username}: {exc.message}") from exc
    return created


def provision(s: RadflowSettings) -> None:
    """The roles and the pipeline's service user (idempotent; run after every start)."""
    ensure_user(s, PIPELINE_MLFLOW_LOGIN, pipeline_password(s), "radflow-pipeline")
