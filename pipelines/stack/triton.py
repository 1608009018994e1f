"""The embedded Triton: the `tritonserver` binary of the nvidia-pytriton wheel, on CPU.

Triton runs from its own environment (`.venv-triton`, numpy < 2): with numpy 2 the
Python-backend stub returns broken output tensors. The stub runs model.py with the first
`python3` on PATH, so that environment's bin/ goes first on PATH, in an isolated
interpreter that ignores PYTHONPATH: `pipelines` (whose preprocessing the
mammo_preprocessing model imports) is installed into that environment by `make bootstrap`.

The model-repository API (load, unload, index) answers only requests that carry the
header TRITON_ADMIN_HEADER with the admin key (from RADFLOW_TRITON_ADMIN_KEY, else
generated once into <state>/secrets/triton.env, mode 0600; gRPC clients send it as
"triton-grpc-protocol-<header>"): inference stays open on loopback, swapping the served
model does not. Triton takes the key on its command line,
which other local users of the host can read; the production container runs alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from pipelines.config import PROJECT_DIR, TRITON_ADMIN_HEADER, RadflowSettings
from pipelines.errors import StackError
from pipelines.stack import secrets

log = logging.getLogger(__name__)


def triton_python(settings: RadflowSettings) -> Path:
    python = settings.triton_python or PROJECT_DIR / ".venv-triton" / "bin" / "python"
    if not Path(python).exists():
        raise StackError(
            f"Triton's environment {python} is missing: `make bootstrap` creates .venv-triton "
            "(nvidia-pytriton, onnxruntime, numpy<2), or set RADFLOW_TRITON_PYTHON"
        )
    return Path(python)


def site_packages(python: Path) -> Path:
    """Its site-packages; StackError when it cannot import what the model.py files import."""
    out = subprocess.run(
        [str(python), "-I", "-c", "import numpy, onnxruntime, pipelines.imaging.stored, sysconfig; "
                                  "print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, timeout=60,
    )
    if out.returncode != 0:
        raise StackError(f"Triton's environment {python} cannot import what the served models need "
                         f"({out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'no output'}): "
                         "run `make bootstrap`")
    return Path(out.stdout.strip())


def prepare_backends(settings: RadflowSettings, sp: Path) -> Path:
    """A copy of the wheel's Python backend with the CPython 3.11 stub beside it."""
    server = sp / "pytriton" / "tritonserver"
    target = settings.state / "triton" / "backends"
    python_dir = target / "python"
    if not (python_dir / "triton_python_backend_stub").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(server / "backends" / "python", python_dir)
        stub = server / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
        shutil.copy2(stub, python_dir / "triton_python_backend_stub")
        os.chmod(python_dir / "triton_python_backend_stub", 0o755)
    return target


def environment(python: Path, sp: Path) -> dict[str, str]:
    """PATH with Triton's environment first; the wheel's bundled libraries and libpython."""
    libdir = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    env = dict(os.environ)
    env["PATH"] = f"{python.parent}:{env.get('PATH', '')}"
    env["LD_LIBRARY_PATH"] = ":".join(
        p for p in (str(sp / "nvidia_pytriton.libs"), libdir, env.get("LD_LIBRARY_PATH", "")) if p
    )
    env["PYTHONPATH"] = str(PROJECT_DIR)
    env["ORT_DISABLE_TELEMETRY"] = "1"
    env.pop("VIRTUAL_ENV", None)
    return env


def ensure_admin_key(settings: RadflowSettings) -> str:
    """The model-repository key: from the environment, else generated once into the state dir."""
    return secrets.ensure(settings.triton_secrets_file, "RADFLOW_TRITON_ADMIN_KEY",
                          settings.triton_admin_secret())


def models_to_load(settings: RadflowSettings) -> list[str]:
    """What Triton loads at start: every recorded deployment whose file still has its
    registered SHA-256 (and the ensemble over a mammography champion). A file that does
    not match is left unloaded and logged; screening then fails naming the model."""
    from pipelines.deployments import all_deployments
    from pipelines.modelfiles.onnx import sha256
    from pipelines.serving import repository

    names = []
    for dep in all_deployments():
        onnx = settings.triton_repository / dep.triton_model / str(dep.triton_version) / "model.onnx"
        if not onnx.is_file() or sha256(onnx) != dep.sha256:
            log.error("not loading %s v%d at start: its model file is missing or not the deployed one",
                      dep.triton_model, dep.triton_version)
            continue
        names.append(dep.triton_model)
        ensemble = repository.ensemble_name(dep.triton_model)
        if dep.slot == "champion" and (settings.triton_repository / ensemble / "config.pbtxt").exists():
            names.append(ensemble)
    return names


def command(settings: RadflowSettings) -> tuple[list[str], dict[str, str]]:
    """The tritonserver command line and environment: explicit model control, loopback,
    the model-repository API restricted to the admin key."""
    python = triton_python(settings)
    sp = site_packages(python)
    binary = sp / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    if not binary.exists():
        raise StackError(f"tritonserver binary not found at {binary}: reinstall nvidia-pytriton")
    repo = settings.triton_repository
    repo.mkdir(parents=True, exist_ok=True)
    key = ensure_admin_key(settings)
    argv = [
        str(binary),
        "--model-repository", str(repo),
        "--backend-directory", str(prepare_backends(settings, sp)),
        "--cache-directory", str(sp / "pytriton" / "tritonserver" / "caches"),
        "--model-control-mode", "explicit",
        "--strict-readiness", "false",
        "--allow-sagemaker", "false", "--allow-vertex-ai", "false",
        "--exit-on-error", "true",
        "--disable-auto-complete-config",
        "--http-address", "127.0.0.1", "--http-port", str(settings.triton_http_port),
        "--grpc-address", "127.0.0.1", "--grpc-port", str(settings.triton_grpc_port),
        "--metrics-address", "127.0.0.1", "--metrics-port", str(settings.triton_metrics_port),
        "--allow-gpu-metrics", "false",
        "--exit-timeout-secs", "10",
        "--http-restricted-api", f"model-repository:{TRITON_ADMIN_HEADER}={key}",
        "--grpc-restricted-protocol", f"model-repository:{TRITON_ADMIN_HEADER}={key}",
    ]
    for model in models_to_load(settings):  # a restart serves what was deployed
        argv += ["--load-model", model]
    return argv, environment(python, sp)
