"""`radflow stack up|status|down` on the real binaries, Airflow included; logins on every
web service (each route each service exposes, called without credentials)."""

from __future__ import annotations

import json
import subprocess

import httpx
import psutil
import pytest
import sqlalchemy as sa

from tests.integration import routes
from tests.integration.stack import RADFLOW, Stack

PROCESSES = ("orthanc", "mlflow", "triton", "airflow-api-server", "airflow-scheduler",
             "airflow-dag-processor", "airflow-triggerer")
# What answers without credentials, on purpose (README "Public endpoints"): health checks,
# the login page, the documents describing the APIs, and the UI's static shell.
PUBLIC = {
    "airflow": {("GET", "/api/v2/monitor/health"), ("GET", "/execution/health"),
                ("GET", "/execution/health/ping"),
                ("GET", "/auth/login/"),
                ("GET", "/api/v2/version"),
                ("GET", "/openapi.json"), ("GET", "/auth/openapi.json"), ("GET", "/auth/docs"),
                ("GET", "/auth/docs/oauth2-redirect"), ("GET", "/auth/redoc"),
                ("GET", "/execution/changelog"), ("GET", "/execution/docs"),
                ("GET", "/execution/docs/oauth2-redirect"), ("GET", "/execution/redoc"),
                ("GET", "/{rest_of_path:path}")},
    "mlflow": {("GET", "/health"), ("GET", "/api/3.0/mlflow/server-info"),
               ("GET", "/ajax-api/3.0/mlflow/server-info")},
    "orthanc": set(),
}


@pytest.fixture(scope="module")
def stack(full_stack: Stack) -> Stack:
    return full_stack


def _pids(stack: Stack) -> dict[str, int]:
    return {n: int((stack.state / "run" / f"{n}.pid").read_text()) for n in PROCESSES}


def test_status_reports_every_service_running(stack: Stack) -> None:
    status = stack.radflow("stack", "status")
    assert set(status) >= {"state_dir", "services", "paths", "database_url"}
    for name in ("orthanc", "mlflow", "triton", "airflow"):
        assert status["services"][name]["running"] is True, name
    airflow = status["services"]["airflow"]
    assert airflow["components"] == {"api-server": True, "scheduler": True, "dag-processor": True,
                                     "triggerer": True}
    assert airflow["url"] == f"http://127.0.0.1:{stack.env['RADFLOW_AIRFLOW_PORT']}"
    assert airflow["database_url"].endswith("_airflow")
    assert sa.engine.make_url(airflow["database_url"]).password in (None, "***")
    assert status["services"]["postgres"]["embedded"] is False  # the test's database was given
    orthanc = status["services"]["orthanc"]
    assert orthanc["dicom_port"] == int(stack.env["RADFLOW_ORTHANC_DICOM_PORT"])
    assert set(status["paths"]) == {"lake", "store", "logs", "mlflow_artifacts", "orthanc_storage",
                                    "worklists", "secrets"}
    assert status["paths"]["store"] == str(stack.state.resolve())  # no RADFLOW_LAKE_STORE: one machine
    assert sa.engine.make_url(status["database_url"]).password in (None, "***")


def test_second_up_is_a_no_op(stack: Stack) -> None:
    before = _pids(stack)
    again = stack.radflow("stack", "up", "--only", "orthanc,mlflow,triton,airflow")
    assert again["actions"] == {n: "already running" for n in ("orthanc", "mlflow", "triton", "airflow")}
    assert _pids(stack) == before


def test_orthanc_requires_authentication(stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.env['RADFLOW_ORTHANC_HTTP_PORT']}/system"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=("radflow", "wrong-password")).status_code == 401
    secret = (stack.state / "secrets" / "orthanc.env")
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    password = secret.read_text().strip().split("=", 1)[1]
    assert httpx.get(url, auth=("radflow", password)).status_code == 200
    config = json.loads((stack.state / "orthanc" / "orthanc.json").read_text())
    assert config["RemoteAccessAllowed"] is False and config["AuthenticationEnabled"] is True


def test_triton_refuses_a_model_load_without_the_admin_key(stack: Stack) -> None:
    """Inference and health stay open on loopback; the model-repository API needs the key."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    http = f"http://127.0.0.1:{stack.env['RADFLOW_TRITON_HTTP_PORT']}"
    secret = stack.state / "secrets" / "triton.env"
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    key = secret.read_text().strip().split("=", 1)[1]
    assert httpx.get(f"{http}/v2/health/ready").status_code == 200
    index = f"{http}/v2/repository/index"
    load = f"{http}/v2/repository/models/mammo_screening/load"
    for refused in (httpx.post(index), httpx.post(load),
                    httpx.post(load, headers={"radflow-admin-key": "wrong"})):
        assert refused.status_code in (401, 403), refused.text
        assert "restricted" in refused.text.lower() or "unauthorized" in refused.text.lower()
    assert httpx.post(index, headers={"radflow-admin-key": key}).status_code == 200
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{stack.env['RADFLOW_TRITON_GRPC_PORT']}")
    try:
        grpc.load_model("mammo_screening")
        raise AssertionError("gRPC load without the key was accepted")
    except InferenceServerException as exc:
        assert "restricted" in str(exc).lower() or "unauthorized" in str(exc).lower(), str(exc)
    # over gRPC, Triton expects the key under "triton-grpc-protocol-<header>"
    index_grpc = grpc.get_model_repository_index(
        headers={"triton-grpc-protocol-radflow-admin-key": key})
    assert index_grpc is not None


def test_mlflow_triton_and_airflow_listen_on_loopback_only(stack: Stack) -> None:
    pids = _pids(stack)
    for name in ("mlflow", "triton", "airflow-api-server"):
        family = [pids[name], *[c.pid for c in psutil.Process(pids[name]).children(recursive=True)]]
        listening = {c.laddr.ip for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in family}
        assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, (name, listening)


def test_mlflow_runs_without_its_job_runner(stack: Stack) -> None:
    # MLflow 3 otherwise starts about eight huey consumers of some 250 MB each (GenAI jobs)
    family = psutil.Process(_pids(stack)["mlflow"]).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in family]
    assert commands and not [c for c in commands if "huey" in c], commands


def test_down_stops_only_what_up_started(stack: Stack) -> None:
    # A process this stack did not start, listening on a port of its own, survives `down`.
    other = subprocess.Popen(["python3", "-m", "http.server", "--bind", "127.0.0.1", "0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pids = _pids(stack)
        out = subprocess.run([RADFLOW, "stack", "down", "--only", "triton", "--json"], env=stack.env,
                             capture_output=True, text=True, timeout=120)
        assert json.loads(out.stdout.splitlines()[-1])["actions"] == {"triton": "stopped"}
        assert not psutil.pid_exists(pids["triton"]) or psutil.Process(pids["triton"]).status() == "zombie"
        assert psutil.pid_exists(pids["orthanc"]) and psutil.pid_exists(pids["mlflow"])
        assert other.poll() is None
        second = subprocess.run([RADFLOW, "stack", "down", "--only", "triton", "--json"],
                                env=stack.env, capture_output=True, text=True, timeout=120)
        assert json.loads(second.stdout.splitlines()[-1])["actions"] == {"triton": "not running"}
        status = stack.radflow("stack", "status")
        assert status["services"]["triton"]["running"] is False
        assert status["services"]["orthanc"]["running"] is True
    finally:
        other.terminate()
        stack.radflow("stack", "up", "--only", "triton")


def test_no_route_of_any_web_service_answers_without_credentials(stack: Stack) -> None:
    """Every route each service exposes, called without credentials: only the documented
    public ones answer 2xx. The counts are printed for the issue's note."""
    from pipelines.stack import airflow

    settings = dict(stack.env)
    base = {"airflow": f"http://127.0.0.1:{stack.env['RADFLOW_AIRFLOW_PORT']}",
            "mlflow": f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}",
            "orthanc": f"http://127.0.0.1:{stack.env['RADFLOW_ORTHANC_HTTP_PORT']}"}
    from pipelines import config

    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            if key.startswith("RADFLOW_"):
                patch.setenv(key, value)
        config.reset_settings()
        airflow_env = airflow.environment(config.get_settings(), base=stack.env)
    config.reset_settings()
    found = {"airflow": routes.airflow_routes(airflow_env), "mlflow": routes.mlflow_routes(stack.env),
             "orthanc": routes.orthanc_routes()}
    answered = {name: routes.unauthenticated(base[name], found[name]) for name in found}
    for name in found:
        print(f"{name}: {len(found[name])} routes, {len(answered[name])} answered without credentials: "
              f"{sorted((m, p) for m, p, _ in answered[name])}")
    assert len(found["airflow"]) > 200 and len(found["mlflow"]) > 300 and len(found["orthanc"]) > 150
    for name in found:
        unexpected = {(m, p) for m, p, _ in answered[name]} - PUBLIC[name]
        assert unexpected == set(), f"{name} answers without credentials: {sorted(unexpected)}"


def test_without_credentials_the_apis_answer_401(stack: Stack) -> None:
    airflow = f"http://127.0.0.1:{stack.env['RADFLOW_AIRFLOW_PORT']}"
    mlflow = f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}"
    assert httpx.get(f"{airflow}/api/v2/dags").status_code == 401
    assert httpx.post(f"{airflow}/api/v2/dags/deploy_mammo_model/dagRuns", json={}).status_code == 401
    assert httpx.get(f"{mlflow}/api/2.0/mlflow/experiments/search?max_results=1").status_code == 401
    # the alias move that used to skip the promotion gate
    moved = httpx.post(f"{mlflow}/api/2.0/mlflow/registered-models/alias",
                       json={"name": "mammo-screening", "alias": "champion", "version": "1"})
    assert moved.status_code == 401
    # MLflow's public default admin password is not this stack's
    assert httpx.get(f"{mlflow}/api/2.0/mlflow/experiments/search?max_results=1",
                     auth=("admin", "password1234")).status_code == 401


def test_airflow_logins_roles_and_pools(stack: Stack) -> None:
    from pipelines.orchestration.api import AirflowAPI

    url = f"http://127.0.0.1:{stack.env['RADFLOW_AIRFLOW_PORT']}"
    secret = stack.state / "secrets" / "airflow.env"
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    password = stack.secret("airflow", "RADFLOW_AIRFLOW_PASSWORD")
    assert len(password) >= 20
    with AirflowAPI(url, "admin", "wrong-password") as wrong:
        with pytest.raises(Exception, match="refused the login"):
            wrong.login()
    with AirflowAPI(url, "admin", password) as admin:
        dags = admin.request("GET", "/api/v2/dags")["dags"]
        assert {d["dag_id"] for d in dags} == {"retrain_mammo_model", "deploy_mammo_model",
                                               "screen_daily_mammograms", "monitor_mammo_model"}
        assert all(d["is_paused"] for d in dags)  # nothing runs until someone turns it on
        pools = {p["name"]: p["slots"] for p in admin.request("GET", "/api/v2/pools")["pools"]}
        assert pools["pacs"] == 2 and pools["training"] == 1
        roles = {r["name"] for r in admin.request("GET", "/auth/fab/v1/roles")["roles"]}
        assert {"Hospital IT", "ML team", "Viewer"} <= roles
    # a viewer reads, but cannot operate
    viewer_pw = "viewer-Passw0rd-123"
    added = stack.radflow("user", "add", "vic", "--role", "viewer", "--name", "Vic Viewer",
                          env={**stack.env, "RADFLOW_NEW_USER_PASSWORD": viewer_pw})
    assert (added["airflow_role"], added["airflow"]) == ("Viewer", "created")
    with AirflowAPI(url, "vic", viewer_pw) as vic:
        assert len(vic.request("GET", "/api/v2/dags")["dags"]) == 4
        refused = httpx.patch(f"{url}/api/v2/dags/screen_daily_mammograms", json={"is_paused": False},
                              headers={"Authorization": f"Bearer {vic.login()}"})
        assert refused.status_code == 403
    # and the same login reads MLflow, without edit rights
    mlflow = f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}"
    assert httpx.get(f"{mlflow}/api/2.0/mlflow/experiments/search?max_results=1",
                     auth=("vic", viewer_pw)).status_code == 200
    assert httpx.post(f"{mlflow}/api/2.0/mlflow/experiments/set-experiment-tag",
                      json={"experiment_id": "0", "key": "k", "value": "v"},
                      auth=("vic", viewer_pw)).status_code == 403
