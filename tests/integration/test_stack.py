"""`radflow stack up|status|down` on the real binaries."""

from __future__ import annotations

import json
import subprocess

import httpx
import psutil
import sqlalchemy as sa

from tests.integration.stack import RADFLOW, Stack


def _pids(stack: Stack) -> dict[str, int]:
    return {n: int((stack.state / "run" / f"{n}.pid").read_text()) for n in ("orthanc", "mlflow", "triton")}


def test_status_reports_every_service_running(stack: Stack) -> None:
    status = stack.radflow("stack", "status")
    assert set(status) >= {"state_dir", "services", "paths", "database_url"}
    for name in ("orthanc", "mlflow", "triton"):
        assert status["services"][name]["running"] is True, name
    orthanc = status["services"]["orthanc"]
    assert orthanc["dicom_port"] == int(stack.env["RADFLOW_ORTHANC_DICOM_PORT"])
    assert set(status["paths"]) == {"lake", "logs", "mlflow_artifacts", "orthanc_storage", "worklists"}
    assert sa.engine.make_url(status["database_url"]).password in (None, "***")


def test_second_up_is_a_no_op(stack: Stack) -> None:
    before = _pids(stack)
    again = stack.radflow("stack", "up")
    assert again["actions"] == {n: "already running" for n in ("orthanc", "mlflow", "triton")}
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


def test_mlflow_and_triton_listen_on_loopback_only(stack: Stack) -> None:
    pids = _pids(stack)
    for name in ("mlflow", "triton"):
        family = [pids[name], *[c.pid for c in psutil.Process(pids[name]).children(recursive=True)]]
        listening = {c.laddr.ip for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in family}
        assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, (name, listening)


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
