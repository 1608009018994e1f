"""The embedded Triton: the `tritonserver` binary of the nvidia-pytriton wheel, on CPU.

Triton runs from its own environment (`.venv-triton`, numpy < 2): with numpy 2 the
Python-backend stub returns broken output tensors. The stub runs model.py with the first
`python3` on PATH, so that environment's bin/ goes first on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipelines.config import PROJECT_DIR, RadflowSettings
from pipelines.errors import StackError


def triton_python(settings: RadflowSettings) -> Path:
    python = settings.triton_python or PROJECT_DIR / ".venv-triton" / "bin" / "python"
    if not Path(python).exists():
        raise StackError(
            f"Triton's environment {python} is missing: `make bootstrap` creates .venv-triton "
            "(nvidia-pytriton, onnxruntime, numpy<2), or set RADFLOW_TRITON_PYTHON"
        )
    return Path(python)


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    )
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


def command(settings: RadflowSettings) -> tuple[list[str], dict[str, str]]:
    """The tritonserver command line and environment: explicit model control, loopback."""
    python = triton_python(settings)
    sp = site_packages(python)
    binary = sp / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    if not binary.exists():
        raise StackError(f"tritonserver binary not found at {binary}: reinstall nvidia-pytriton")
    repo = settings.triton_repository
    repo.mkdir(parents=True, exist_ok=True)
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
    ]
    return argv, environment(python, sp)
