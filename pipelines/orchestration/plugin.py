"""The Airflow plugin: radflow's worklist app inside Airflow's api-server, behind its logins.

Registered by the `airflow.plugins` entry point in pyproject.toml (`radflow =
"pipelines.orchestration.plugin:RadflowPlugin"`), so every Airflow process of this venv finds
it without a plugins folder; the api-server mounts the app at `/radflow`
(`fastapi_apps`, Airflow 3's way of serving a FastAPI app from a plugin).

Authentication is Airflow's own: the api-server's JWT, which the UI keeps in the `_token`
cookie after the FAB login page (`/auth/login/`), or an `Authorization: Bearer` token from
`POST /auth/token`. `airflow.api_fastapi.core_api.security.get_user` validates it (signature,
expiry, revocation, the FAB user still active) exactly as for Airflow's own REST API.
Without a token, or with one that is invalid or expired, the app answers 401 (Airflow's
API would answer 403 for an invalid token; for this app that is not a login either).
Authorization is what Airflow's `requires_access_dag("GET")` checks (the auth manager's
`is_authorized_dag`, no DAG named: may this login list DAGs): the FAB roles that may read DAGs
(Viewer and up, so radflow's `Viewer`, `ML team`, `Hospital IT` and Admin; not Public) may
read the worklist and give feedback; the reader recorded is the login name.

Airflow's menu links to it (`external_views`): Browse > "Screening worklist" opens
/radflow/worklist/ in a new tab. In the Browse menu, not a sidebar button of its own: Airflow
3.3's sidebar renders a lone external view as a `<button>` carrying the href (a Chakra `Link
asChild` around a `Button`), which a click does not follow; menu items are plain links. No
`url_route`: with one, the UI would show the page in a sandboxed iframe, which the page's CSP
(`frame-ancestors 'none'`) refuses and whose sandbox would block the verdict buttons. The UI
lists plugins from `GET /api/v2/plugins`, which needs "can read on Plugins": Airflow's own
`Viewer` and `User` permission sets lack it, so radflow's provisioning
(pipelines/orchestration/provision.py) grants it to `Viewer`, `ML team` and `Hospital IT`.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import HTTPException, Request

from pipelines.screening.app import Reader, create_app

URL_PREFIX = "/radflow"
WORKLIST_VIEW = {"name": "Screening worklist", "href": f"{URL_PREFIX}/worklist/", "destination": "nav",
                 "category": "browse"}


async def airflow_reader(request: Request) -> Reader:
    """The request's Airflow login, allowed to read DAGs (a FastAPI dependency).

    Raises:
        HTTPException: 401 without a valid login; 403 when the login may not read DAGs.
    """
    # airflow's API modules load its ORM: imported here, in the api-server only, not in
    # every process that loads plugins (scheduler, task runners)
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    unauthorized = {"WWW-Authenticate": "Bearer"}
    try:
        user = await get_user(request, _oauth_token=None, bearer_credentials=await bearer_scheme(request))
    except HTTPException as exc:  # 401 missing or expired, 403 invalid: both "not logged in" here
        raise HTTPException(401, "log in to Airflow first", headers=unauthorized) from exc
    if getattr(user, "is_anonymous", False):  # a public role ([fab] auth_role_public) is no login
        raise HTTPException(401, "log in to Airflow first", headers=unauthorized)
    # what `requires_access_dag("GET")` asks, without its reading a `dag_id` from the query
    if not get_auth_manager().is_authorized_dag(method="GET", user=user):
        raise HTTPException(403, "this login may not read DAGs, so not the worklist either")
    return Reader(login=user.get_name())


def login_url(next_path: str) -> str:
    """The auth manager's login page (FAB: `<base_url>/auth/login/`), coming back to `next_path`."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_path)


class RadflowPlugin(AirflowPlugin):
    """radflow's web pages in Airflow's api-server: the worklist at /radflow/worklist/."""

    name = "radflow"
    fastapi_apps: list[Any] = [
        {"app": create_app(airflow_reader, login_url), "url_prefix": URL_PREFIX, "name": "radflow worklist"},
    ]
    external_views: list[Any] = [WORKLIST_VIEW]
