"""`radflow user add`: one person's login, the same in Airflow and MLflow, with a role.

| role | Airflow role | MLflow role |
|---|---|---|
| `hospital-it` | Hospital IT (operate DAGs, pools, connections) | viewer (read) |
| `ml-team` | ML team (trigger, pause, clear; create asset events) | ml-team (edit experiments and models) |
| `viewer` | Viewer (read) | viewer (read) |

Whether the login may approve a change of champion is the policy's approver list
(mlflow/registered_models.yaml), not the role. The password is RADFLOW_NEW_USER_PASSWORD
when set, else generated into `<state>/secrets/users/<login>.env` (0600); a second `add`
of the same login sets its role and password again.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from typing import Any

from pipelines.config import PIPELINE_MLFLOW_LOGIN, get_settings
from pipelines.errors import PermanentError, StackError
from pipelines.stack import airflow, mlflow

ROLES = {"hospital-it": ("Hospital IT", "viewer"), "ml-team": ("ML team", "ml-team"),
         "viewer": ("Viewer", "viewer")}
LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")


def add(login: str, role: str, name: str, email: str | None = None) -> dict[str, Any]:
    """Create or update the login in MLflow (running server) and, when this state dir runs
    Airflow, in Airflow's metadata database.

    Raises:
        PermanentError: unknown role, malformed login, or a reserved login.
        StackError: Airflow's provisioning or MLflow refused it (the message says which).
    """
    s = get_settings()
    if role not in ROLES:
        raise PermanentError(f"unknown role {role!r}: choose from {', '.join(ROLES)}")
    if not LOGIN.match(login):
        raise PermanentError(f"login {login!r}: 2-64 letters, digits, '.', '_', '@' or '-'")
    if login in (PIPELINE_MLFLOW_LOGIN, s.airflow_username, s.mlflow_admin_username):
        raise PermanentError(f"login {login!r} is reserved for the stack itself")
    airflow_role, mlflow_role = ROLES[role]
    password = os.environ.get("RADFLOW_NEW_USER_PASSWORD", "")
    file = s.state / "secrets" / "users" / f"{login}.env"
    if not password:
        password = secrets.token_urlsafe(18)
        file.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(file.parent.parent, 0o700)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"RADFLOW_USER_LOGIN={login}\nRADFLOW_USER_PASSWORD={password}\n")
    mlflow.ensure_user(s, login, password, mlflow_role)
    return {"login": login, "role": role, "airflow_role": airflow_role, "mlflow_role": mlflow_role,
            "airflow": _airflow_user(login, airflow_role, name, email, password),
            "password_file": str(file) if file.exists() else None}


def _airflow_user(login: str, role: str, name: str, email: str | None, password: str) -> str:
    """"created" or "updated" in Airflow's metadata database; "not set up" when this state
    dir runs no Airflow (`radflow stack up` without airflow)."""
    s = get_settings()
    if not airflow.provisioned(s):
        return "not set up"
    first, _, last = name.strip().partition(" ")
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.orchestration.provision", "user", login, role,
         first or login, last or "-", email or f"{login}@radflow.invalid"],
        input=password, env=airflow.environment(s), capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise StackError(f"Airflow did not take user {login!r}: {proc.stderr.strip()[-800:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
