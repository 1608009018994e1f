"""The clinical profile on a GPU: training steps, export, a deploy with the gpu serving
profile, and serving at the clinical input size through Triton, against the same GPU.

Needs CUDA (torch.cuda; `make bootstrap TORCH=cuda`): on a machine without it the
benchmark says so and exits 0 without writing a result. Needs a tritonserver with the
onnxruntime backend (TensorRT) and a GPU, found as RADFLOW_TRITON_BIN (its backends in
RADFLOW_TRITON_BACKENDS, default <bin>/../backends), else `tritonserver` on PATH, else
/opt/tritonserver/bin/tritonserver (inside the NGC image, e.g. infra/images/triton/ with
this repository mounted). The embedded stack's tritonserver (nvidia-pytriton) has only
the Python backend: it cannot serve the gpu profile.

1. train: `--steps` optimisation steps of the clinical model (profiles.build_model and
   make_step: mixed precision, gradient checkpointing) on seeded random views at the
   clinical input size (CLINICAL_MIN_INPUT unless --height/--width); images/s after a
   warm-up step;
2. export: the trained model to ONNX on the CPU (parity-checked against PyTorch);
3. deploy: the `radflow serving-repo --profile gpu` repository in a temp dir, the file
   published as version 1 (write_version), Triton started on loopback with explicit model
   control, then `switch`: load, readiness, the FP16 smoke check (bound and flags at the
   operating point, here mid-range of the smoke probabilities, so that inputs are built on
   both sides of it when they spread enough); its measured FP16 differences are reported;
4. serve: concurrent batch-1 gRPC requests (benchmarks.serving.drive) against the limit:
   the same model in-process on the same GPU under FP16 autocast, best of batch 1/8/32.
value = Triton images/s; ratio = value / limit (target 0.7, as benchmarks/serving.py).

    python -m benchmarks.gpu [--quick] [--height H --width W] [--steps N] [--batch B]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_result

MODEL = "mammo_screening"  # benchmarks.serving.drive sends to this model
LIMIT_BATCHES = (1, 8, 32)
NO_GPU = ("gpu: this benchmark needs a CUDA GPU: torch {version} sees none (torch.cuda.is_available() "
          "is False); on a GPU server run `make bootstrap TORCH=cuda` first. Nothing measured, no "
          "result written.")


def find_triton() -> tuple[Path, Path]:
    """(tritonserver binary, backends directory) of a Triton that can serve the gpu profile.

    Raises:
        RuntimeError: none found, or its backends lack onnxruntime (what to set is named).
    """
    named = os.environ.get("RADFLOW_TRITON_BIN")
    if named and not Path(named).is_file():
        raise RuntimeError(f"RADFLOW_TRITON_BIN={named}: no such file")
    candidates = [named, shutil.which("tritonserver"), "/opt/tritonserver/bin/tritonserver"]
    for found in candidates:
        if found and Path(found).is_file():
            binary = Path(found)
            backends = Path(os.environ.get("RADFLOW_TRITON_BACKENDS") or binary.parent.parent / "backends")
            if (backends / "onnxruntime").is_dir():
                return binary, backends
            raise RuntimeError(f"{binary}: no onnxruntime backend in {backends} (the gpu profile runs "
                               "the classifier there); set RADFLOW_TRITON_BACKENDS or use the NGC image")
    raise RuntimeError("no tritonserver with GPU backends: set RADFLOW_TRITON_BIN (e.g. the NGC "
                       "image's /opt/tritonserver/bin/tritonserver, infra/images/triton/)")


def train_steps(height: int, width: int, steps: int, batch: int, device: str) -> tuple[Any, dict[str, Any]]:
    """The clinical model after `steps` steps on random views; (model, figures)."""
    import torch

    from pipelines.params import load_params
    from pipelines.training.profiles import build_model, get_profile
    from pipelines.training.step import make_step

    torch.manual_seed(0)
    profile, params = get_profile("clinical"), load_params()
    model = build_model(profile, params).to(device).train()
    step = make_step(model, params, profile, device, pos_weight=1.0)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((batch, 1, height, width), dtype=np.float32))
    labels = torch.from_numpy((rng.random((batch, 1)) < 0.5).astype(np.float32))
    step(images, labels)  # warm-up: cuDNN autotuning, allocator
    torch.cuda.synchronize()
    started = time.perf_counter()
    losses = [step(images, labels) for _ in range(steps)]
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return model, {"train_images_s": round(steps * batch / seconds, 2),
                   "train_step_s": round(seconds / steps, 3), "train_batch": batch,
                   "train_steps": steps, "train_autocast": str(step.dtype),
                   "train_peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                   "train_loss_last": round(losses[-1], 4)}


def inprocess_limit(model: Any, images: np.ndarray, seconds: float) -> dict[int, float]:
    """Images/s of the model on the GPU under FP16 autocast, both outputs, by batch size."""
    import torch

    model = model.eval().cuda()
    rates: dict[int, float] = {}
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        for batch in LIMIT_BATCHES:
            x = torch.from_numpy(np.resize(images, (batch, *images.shape[1:]))).cuda()
            try:
                model(x)
                torch.cuda.synchronize()
                seen, started = 0, time.perf_counter()
                while time.perf_counter() - started < seconds:
                    model(x)
                    seen += batch
                torch.cuda.synchronize()
            except torch.cuda.OutOfMemoryError:
                break  # larger batches will not fit either
            rates[batch] = seen / (time.perf_counter() - started)
    return rates


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Server = tuple[subprocess.Popen[bytes], int, int]


def start_triton(binary: Path, backends: Path, repo: Path, key: str) -> Server:
    """tritonserver on loopback (explicit model control, the admin key); (process, http, grpc)."""
    import tritonclient.http as httpclient

    http, grpc, metrics = _free_port(), _free_port(), _free_port()
    argv = [str(binary), "--model-repository", str(repo), "--backend-directory", str(backends),
            "--model-control-mode", "explicit", "--disable-auto-complete-config",
            "--http-address", "127.0.0.1", "--http-port", str(http),
            "--grpc-address", "127.0.0.1", "--grpc-port", str(grpc),
            "--metrics-address", "127.0.0.1", "--metrics-port", str(metrics),
            "--http-restricted-api", f"model-repository:radflow-admin-key={key}",
            "--grpc-restricted-protocol", f"model-repository:radflow-admin-key={key}"]
    log = open(repo.parent / "triton.log", "wb")  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if client.is_server_ready():
                return proc, http, grpc
        except Exception:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"tritonserver did not become ready (exit {proc.poll()}): "
                       f"see {repo.parent / 'triton.log'}")


def deploy(onnx: Path, repo: Path, size: tuple[int, int], http: int, key: str) -> dict[str, Any]:
    """generate + write_version + switch, as `radflow deploy` runs them on the gpu profile."""
    from pipelines import config
    from pipelines.modelfiles.onnx import sha256
    from pipelines.serving import smoke, switch
    from pipelines.serving.deploy import write_version
    from pipelines.triton_client import TritonClient

    os.environ.update({"RADFLOW_TRITON_REPO": str(repo), "RADFLOW_TRITON_PROFILE": "gpu",
                       "RADFLOW_TRITON_HTTP_PORT": str(http), "RADFLOW_TRITON_ADMIN_KEY": key,
                       "RADFLOW_STATE_DIR": str(repo.parent / "state")})
    config.reset_settings()
    write_version(repo, MODEL, 1, onnx)
    reference = _reference_probabilities(onnx, smoke.flag_inputs(*size))
    # mid-range when the smoke inputs spread wide enough to build inputs on both sides of it
    spread = float(reference.max() - reference.min())
    operating_point = float((reference.max() + reference.min()) / 2 if spread > 5 * smoke.FLAG_MARGIN
                            else np.median(reference))
    switch.READY_TIMEOUT_S = 900  # a first TensorRT engine build can take minutes
    triton = TritonClient()
    started = time.perf_counter()
    switch.switch(triton, MODEL, 1, sha256(onnx), None, "", "mammo-screening", None, size, operating_point)
    deploy_s = time.perf_counter() - started
    report = smoke.smoke_check(triton, MODEL, 1, repo / MODEL / "1" / "model.onnx", size,
                               switch.smoke_bound("gpu"), operating_point, batch_size=8)
    return {"deploy_s": round(deploy_s, 1), "smoke_operating_point": round(operating_point, 5),
            "smoke_max_diff": {k: float(f"{v:.3g}") for k, v in report.max_diff.items()},
            "smoke_bound": smoke.FP16_TOLERANCE, "smoke_inputs": report.inputs,
            "smoke_near_threshold": [round(g, 5) for g in report.near_threshold]}


def _reference_probabilities(onnx: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["probability"], {"image": images})[0]).reshape(-1)


def run(args: argparse.Namespace) -> None:
    """Every step on CUDA; writes benchmarks/results/gpu.json."""
    import torch

    from benchmarks.serving import drive, percentiles
    from pipelines.modelfiles.onnx import export
    from pipelines.serving import repository

    binary, backends = find_triton()  # before the training: a missing server fails fast
    size = (args.height, args.width)
    print(f"gpu: {torch.cuda.get_device_name()}, clinical model at {size[0]}x{size[1]}", flush=True)
    model, train = train_steps(*size, args.steps, args.batch, "cuda")
    print(f"gpu: training {train['train_images_s']} images/s ({train['train_autocast']})", flush=True)
    images = np.random.default_rng(1).random((16, 1, *size), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="radflow-bench-gpu-") as tmp:
        started = time.perf_counter()
        parity = export(model.eval().cpu(), images[:2], Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - started
        repo = Path(tmp) / "repository"
        repository.generate(repo, "gpu", MODEL, *size)
        key = os.urandom(16).hex()
        proc, http, grpc = start_triton(binary, backends, repo, key)
        try:
            deployed = deploy(Path(tmp) / "model.onnx", repo, size, http, key)
            print(f"gpu: deployed in {deployed['deploy_s']} s; FP16 smoke differences "
                  f"{deployed['smoke_max_diff']}", flush=True)
            drive(f"127.0.0.1:{grpc}", images, 2 * args.concurrency, args.concurrency)  # warm-up
            load = drive(f"127.0.0.1:{grpc}", images, args.requests, args.concurrency)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    limit_by_batch = inprocess_limit(model, images, 2.0 if args.quick else 5.0)
    p50, p95 = percentiles(load.latencies_ms)
    write_result(
        "gpu", "images/s", load.images_per_s, max(limit_by_batch.values()),
        "the same trained model in-process in PyTorch on the same GPU under FP16 autocast, both "
        f"outputs, best of batch sizes {'/'.join(map(str, limit_by_batch))}", 0.7,
        {"image_height": size[0], "image_width": size[1], "profile": "clinical",
         "serving_profile": "gpu", "concurrency": args.concurrency, "requests": args.requests,
         "triton_bin": str(binary), "gpu": torch.cuda.get_device_name(), "torch": torch.__version__},
        {**train, "export_s": round(export_s, 1), "onnx_parity_diff": float(f"{parity:.3g}"), **deployed,
         "p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "triton_mean_batch": round(load.mean_batch, 2),
         "inprocess_by_batch_per_s": {str(b): round(v, 1) for b, v in limit_by_batch.items()}},
    )


def main() -> int:
    from pipelines.config import CLINICAL_MIN_INPUT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 training steps, 64 requests")
    parser.add_argument("--height", type=int, default=CLINICAL_MIN_INPUT[0])
    parser.add_argument("--width", type=int, default=CLINICAL_MIN_INPUT[1])
    parser.add_argument("--steps", type=int, default=None, help="timed training steps")
    parser.add_argument("--batch", type=int, default=4, help="training batch size")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=None)
    args = parser.parse_args()
    args.steps = args.steps or (3 if args.quick else 20)
    args.requests = args.requests or (64 if args.quick else 400)
    import torch

    if not torch.cuda.is_available():
        print(NO_GPU.format(version=torch.__version__), flush=True)
        return 0
    try:
        run(args)
    except RuntimeError as exc:  # no usable Triton, or it did not start: say what to do
        print(f"gpu: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
