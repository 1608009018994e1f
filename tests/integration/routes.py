"""Every route each web service of the stack exposes, and what answers without credentials.

Routes come from the services themselves: Airflow's FastAPI app (built in a subprocess
with the stack's environment: the REST API as its OpenAPI document lists it, the UI's API,
the FAB auth API and its Flask login app, the task execution API); MLflow's basic-auth app (Flask
url_map and the FastAPI routes around it, built with a throwaway auth config); Orthanc's
own OpenAPI description (`Orthanc --openapi`) plus the roots of its web plugins.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterable

import httpx

Route = tuple[str, str]  # (method, path template)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_WALK = textwrap.dedent('''
    import json
    from starlette.routing import Mount

    def walk(routes, prefix=""):
        for r in routes:
            if isinstance(r, Mount):
                inner = getattr(r.app, "routes", None)
                flask = getattr(getattr(r.app, "app", None), "url_map", None)
                if inner is not None:
                    yield from walk(inner, prefix + r.path)
                elif flask is not None:
                    for rule in flask.iter_rules():
                        for m in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                            yield m, prefix + rule.rule
                else:
                    yield "GET", prefix + r.path + "/{file}"
            elif getattr(r, "methods", None):
                for m in sorted(r.methods - {"HEAD", "OPTIONS"}):
                    yield m, prefix + r.path
''')

AIRFLOW_APP = _WALK + textwrap.dedent('''
    from airflow.api_fastapi.app import create_app
    from airflow.api_fastapi.execution_api.app import create_task_execution_api_app
    routes = set(walk(create_app().routes))
    # the task execution API is versioned (cadwyn): its routes sit in the latest version's router
    execution = create_task_execution_api_app()._latest_version_router.routes
    routes |= set(walk(execution, "/execution"))
    print(json.dumps(sorted(routes)))
''')

MLFLOW_APP = _WALK + textwrap.dedent('''
    import os, sys, tempfile, pathlib
    tmp = pathlib.Path(tempfile.mkdtemp())
    (tmp / "auth.ini").write_text("[mlflow]\\ndefault_permission = NO_PERMISSIONS\\n"
        f"database_uri = sqlite:///{tmp}/auth.db\\nadmin_username = admin\\n"
        "admin_password = throwaway-Passw0rd-x\\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\\n")
    os.environ.update(MLFLOW_AUTH_CONFIG_PATH=str(tmp / "auth.ini"), MLFLOW_FLASK_SERVER_SECRET_KEY="x" * 32,
                      _MLFLOW_SGI_NAME="uvicorn", MLFLOW_BACKEND_STORE_URI=f"sqlite:///{tmp}/ml.db",
                      MLFLOW_DISABLE_TELEMETRY="true")
    from mlflow.server.auth import create_app
    app = create_app()
    routes = set(walk(app.routes))
    print(json.dumps(sorted(routes)))
''')


def _run(code: str, env: dict[str, str] | None = None) -> list[Route]:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [tuple(r) for r in json.loads(proc.stdout.strip().splitlines()[-1])]  # type: ignore[misc]


def openapi_routes(document: dict, prefix: str = "") -> list[Route]:
    return sorted({(m.upper(), prefix + path) for path, ops in document["paths"].items()
                   for m in ops if m.upper() in METHODS})


def airflow_routes(env: dict[str, str]) -> list[Route]:
    """Airflow's app routes plus the task execution API's (a versioned sub-app)."""
    return _run(AIRFLOW_APP, env)


def mlflow_routes(env: dict[str, str]) -> list[Route]:
    return _run(MLFLOW_APP, {k: v for k, v in env.items() if not k.startswith("MLFLOW_")})


ORTHANC_PLUGIN_ROOTS = [("GET", "/dicom-web/studies"), ("GET", "/dicom-web/servers"),
                        ("GET", "/wado"), ("GET", "/app/explorer.html"), ("GET", "/ui/app/"),
                        ("GET", "/system"), ("GET", "/statistics"), ("GET", "/")]


def orthanc_routes() -> list[Route]:
    proc = subprocess.run(["Orthanc", "--openapi=-"], capture_output=True, text=True, timeout=60)
    text = proc.stdout
    document = json.loads(text[text.index("{"):])
    return sorted(set(openapi_routes(document)) | set(ORTHANC_PLUGIN_ROOTS))


def concrete(path: str) -> str:
    """A path template with every parameter filled ({x}, <x>, <path:x>, {x:path})."""
    path = re.sub(r"\{[^}]+\}", "x", path)
    return re.sub(r"<(?:[a-z]+:)?[^>]+>", "x", path)


def unauthenticated(base_url: str, routes: Iterable[Route]) -> list[tuple[str, str, int]]:
    """Call every route without credentials; the (method, path, status) of each 2xx answer."""
    answered = []
    with httpx.Client(base_url=base_url, timeout=30, follow_redirects=False) as client:
        for method, path in routes:
            body = {} if method in ("POST", "PUT", "PATCH") else None
            try:
                status = client.request(method, concrete(path), json=body).status_code
            except httpx.HTTPError:
                continue
            if 200 <= status < 300:
                answered.append((method, path, status))
    return answered
