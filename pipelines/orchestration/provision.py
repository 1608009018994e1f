"""Airflow's logins, roles and pools, made so on every `radflow stack up` (idempotent).

Run as `python -m pipelines.orchestration.provision` in Airflow's environment (after
`airflow db migrate`), or `python -m pipelines.orchestration.provision user LOGIN ROLE
FIRST LAST EMAIL` (password on stdin) by `radflow user add`.

Roles (FAB auth manager), besides Airflow's own Admin, Op, User, Viewer and Public:

- `Hospital IT` (hospital IT, who operate the DAGs): what Airflow's `Op` may: read all,
  pause, trigger, clear, mark; pools, connections (the SMTP server), variables;
- `ML team` (train, promote, roll back): what Airflow's `User` may: read all, pause,
  trigger, clear, mark, create asset events;
- `Viewer`: read only.

Every one of them may also read plugins, so Airflow's menu shows them the worklist.

Who may approve a promotion is not a role: it is the approver list of the registered-model
policy (mlflow/registered_models.yaml), checked against the login that triggered it.

Pools: `pacs` (RADFLOW_PACS_POOL_SLOTS concurrent tasks pulling from the PACS) and
`training` (one slot: one training at a time).
"""

from __future__ import annotations

import sys
from typing import Any

ROLES = {"Hospital IT": "Op", "ML team": "User", "Viewer": "Viewer"}
# Airflow lists plugin menu entries (the radiologists' "Screening worklist") only to roles
# that may read plugins; Airflow's own Viewer and User roles may not.
READ_PLUGINS = ("can_read", "Plugins")
POOLS = {"pacs": "tasks pulling studies from the PACS (ingest, screening)",
         "training": "model training: one at a time"}


def _role_perms(sm: Any, like: str) -> list[tuple[str, str]]:
    table = {"Viewer": sm.VIEWER_PERMISSIONS,
             "User": sm.VIEWER_PERMISSIONS + sm.USER_PERMISSIONS,
             "Op": sm.VIEWER_PERMISSIONS + sm.USER_PERMISSIONS + sm.OP_PERMISSIONS}
    return [*table[like], READ_PLUGINS]


def ensure_user(sm: Any, login: str, role: str, first: str, last: str, email: str,
                password: str) -> str:
    """Create the user, or set its role and password when it exists; "created" or "updated"."""
    found = sm.find_role(role)
    if found is None:
        raise SystemExit(f"unknown Airflow role {role!r}: choose from {', '.join(ROLES)} or Admin")
    user = sm.find_user(username=login)
    if user is None:
        sm.add_user(login, first, last, email, found, password)
        return "created"
    user.roles = [found]
    user.first_name, user.last_name, user.email = first, last, email
    sm.update_user(user)
    sm.reset_password(user.id, password)
    return "updated"


def main(argv: list[str]) -> int:
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    from pipelines.config import get_settings

    s = get_settings()
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        sm.bulk_sync_roles([{"role": name, "perms": _role_perms(sm, like)} for name, like in ROLES.items()])
        if argv and argv[0] == "user":
            login, role, first, last, email = argv[1:6]
            print(ensure_user(sm, login, role, first, last, email, sys.stdin.read().strip()))
            return 0
        ensure_user(sm, s.airflow_username, "Admin", "radflow", "administrator",
                    f"{s.airflow_username}@radflow.invalid", s.airflow_secret())
    _pools(s.pacs_pool_slots)
    return 0


def _pools(pacs_slots: int) -> None:
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        for name, description in POOLS.items():
            slots = pacs_slots if name == "pacs" else 1
            Pool.create_or_update_pool(name, slots, description, include_deferred=False, session=session)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
