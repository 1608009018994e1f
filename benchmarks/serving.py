"""Serving throughput and latency through Triton against the limits of the same machine.

A seeded, randomly initialised `ViewClassifier`, exported to ONNX, is measured three ways
on the same file and the same inputs, interleaved in rounds (other work on the machine
then hits all three alike; the figures are medians over rounds):
- limit: in-process onnxruntime with the Triton adapter's intra-op thread count, the best
  of batch sizes 1/8/32: what any server could reach on this machine;
- radflow: the embedded Triton (Python backend running onnxruntime on that file), many
  concurrent batch-1 gRPC requests that its dynamic batcher groups; images/s, and p50/p95
  per-request latency as the client sees it;
- naive: sequential batch-1 requests through the same Triton, config and client (each
  then also waits out max_queue_delay: that is what a lone request costs there).
value = Triton images/s; ratio = value / limit (target 0.7); vs_naive = value / naive
(target 3). Triton's answers are first checked against onnxruntime's.

Input 128x96 by default: the size radflow trains and serves (RADFLOW_IMAGE_HEIGHT/WIDTH).
At 256x208 compute dominates more: the ratio rises and vs_naive falls. On this CPU a batch
is not cheaper per image than batch 1 (see inprocess_by_batch_per_s), so dynamic batching
can only amortise per-request overhead: vs_naive cannot exceed limit / naive.
The machine has 2 cores, shared by the client (this process), Triton and onnxruntime:
Triton's figures pay for the client's and Triton's own CPU time, the limit does not.
perf_analyzer's figures are added when its binary runs (PATH or RADFLOW_PERF_ANALYZER).

    python -m benchmarks.serving [--quick] [--height H --width W] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import throwaway_stack, write_result

MODEL = "mammo_screening"
THREADS = 2  # the adapter's RADFLOW_TRITON_THREADS default (throwaway_stack passes no RADFLOW_*)
OUTPUTS = ("probability", "heatmap")
BATCHES = (1, 8, 32)  # in-process batch sizes tried for the limit
HEIGHT, WIDTH = 128, 96


@dataclass(frozen=True)
class Batching:
    """The dynamic-batching part of the served config."""

    max_queue_delay_us: int = 500
    preferred: tuple[int, ...] = ()
    instances: int = 1
    max_batch: int = 32  # as reviewed


@dataclass(frozen=True)
class Load:
    """One load phase: images/s and the per-request latencies the client saw."""

    images_per_s: float
    latencies_ms: list[float]
    mean_batch: float  # images per model execution inside Triton


def percentiles(latencies_ms: list[float]) -> tuple[float, float]:
    """p50 and p95 of the latencies (linear interpolation)."""
    p50, p95 = np.percentile(np.asarray(latencies_ms, dtype=np.float64), [50, 95])
    return float(p50), float(p95)


def make_onnx(folder: Path, height: int, width: int, model_width: int, top_k: float) -> Path:
    """The classifier with seeded random weights, exported and parity-checked."""
    import torch

    from pipelines.modelfiles.onnx import export
    from pipelines.training.model import ViewClassifier

    torch.manual_seed(0)
    path = folder / "model.onnx"
    example = np.random.default_rng(0).random((2, 1, height, width), dtype=np.float32)
    export(ViewClassifier(model_width, top_k), example, path)
    return path


def inprocess_rates(session: Any, images: np.ndarray, batches: tuple[int, ...],
                    seconds: float) -> dict[int, float]:
    """Images/s of onnxruntime on `images` for each batch size, both outputs computed."""
    rates: dict[int, float] = {}
    for batch in batches:
        chunks = [images[i:i + batch] for i in range(0, len(images), batch)]
        session.run(list(OUTPUTS), {"image": chunks[0]})  # warm-up at this shape
        seen, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for chunk in chunks:
                session.run(list(OUTPUTS), {"image": chunk})
                seen += len(chunk)
        rates[batch] = seen / (time.perf_counter() - started)
    return rates


def config_text(batching: Batching) -> str:
    """The reviewed config.pbtxt with the given dynamic-batching settings."""
    from pipelines.serving import repository

    config = repository.parse((repository.REVIEWED / MODEL / "config.pbtxt").read_text())
    config.max_batch_size = batching.max_batch
    config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
    del config.dynamic_batching.preferred_batch_size[:]
    config.dynamic_batching.preferred_batch_size.extend(batching.preferred)
    config.instance_group[0].count = batching.instances
    return repository.render(config)


def serve(onnx: Path, batching: Batching, timeout_s: float = 120) -> None:
    """Write `batching`'s config and the ONNX file into the stack's repository and load it."""
    from pipelines.config import RadflowSettings
    from pipelines.serving import repository
    from pipelines.serving.deploy import write_version
    from pipelines.triton_client import TritonClient

    settings = RadflowSettings()
    repository.write_config(settings.triton_repository / MODEL, config_text(batching))
    write_version(settings.triton_repository, MODEL, 1, onnx)
    triton = TritonClient(settings)
    triton.load(MODEL)  # a reload picks up a changed config
    deadline = time.monotonic() + timeout_s
    while not triton.model_ready(MODEL):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{MODEL} not ready after {timeout_s:.0f} s")
        time.sleep(0.3)
    triton.close()


async def _drive(url: str, images: np.ndarray, requests: int,
                 concurrency: int) -> tuple[Load, np.ndarray]:
    import tritonclient.grpc as grpcclient
    import tritonclient.grpc.aio as grpcaio

    inputs = [grpcclient.InferInput("image", [1, *image.shape], "FP32").set_data_from_numpy(image[None])
              for image in images]  # serialized once: the timed loop only sends
    wanted = [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]
    latencies: list[float] = []
    first = np.zeros(len(images), np.float32)
    sent = 0
    async with grpcaio.InferenceServerClient(url) as client:
        async def worker() -> None:
            nonlocal sent
            while sent < requests:
                i, sent = sent, sent + 1
                t0 = time.perf_counter()
                result = await client.infer(MODEL, [inputs[i % len(inputs)]], outputs=wanted)
                latencies.append((time.perf_counter() - t0) * 1000)
                if i < len(images):
                    first[i] = result.as_numpy("probability")[0, 0]

        before = await client.get_inference_statistics(MODEL, as_json=True)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        after = await client.get_inference_statistics(MODEL, as_json=True)
    return Load(requests / wall, latencies, _mean_batch(before, after)), first


def _mean_batch(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Images per model execution between two statistics snapshots."""
    i0, e0, i1, e1 = (int(stats["model_stats"][0].get(key, 0)) for stats in (before, after)
                      for key in ("inference_count", "execution_count"))
    return (i1 - i0) / max(1, e1 - e0)


def drive(url: str, images: np.ndarray, requests: int, concurrency: int,
          expected: np.ndarray | None = None) -> Load:
    """`requests` batch-1 requests from `concurrency` concurrent callers; first answers checked.

    Raises:
        RuntimeError: a probability differs from `expected` (onnxruntime's) by more than 1e-4.
    """
    load, first = asyncio.run(_drive(url, images, requests, concurrency))
    if expected is not None:
        n = min(len(images), requests)
        diff = float(np.abs(first[:n] - expected[:n, 0]).max())
        if diff > 1e-4:
            raise RuntimeError(f"Triton's probabilities differ from onnxruntime's by {diff:.2e}")
    return load


def parse_perf_csv(text: str, concurrency: int) -> dict[str, Any]:
    """perf_analyzer's `-f` CSV row at `concurrency` (latencies in microseconds) as figures."""
    for row in csv.DictReader(text.splitlines()):
        if int(row["Concurrency"]) == concurrency:
            return {"ran": True, "concurrency": concurrency,
                    "images_per_s": float(row["Inferences/Second"]),
                    "p50_ms": int(row["p50 latency"]) / 1000, "p95_ms": int(row["p95 latency"]) / 1000}
    raise ValueError(f"perf_analyzer CSV has no row for concurrency {concurrency}")


def perf_analyzer(http_port: int, height: int, width: int, concurrency: int,
                  interval_ms: int) -> dict[str, Any]:
    """perf_analyzer's figures at `concurrency`, or {"ran": False, "reason": ...}."""
    binary = os.environ.get("RADFLOW_PERF_ANALYZER") or shutil.which("perf_analyzer")
    if not binary:
        libc = "-".join(platform.libc_ver())
        return {"ran": False, "reason": (
            f"no perf_analyzer on PATH and RADFLOW_PERF_ANALYZER unset; PyPI perf-analyzer "
            f"2.58-2.60 ships only manylinux_2_38 wheels (binary needs GLIBC_2.38 and "
            f"GLIBCXX_3.4.32), this machine has {libc}")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "perf.csv"
        argv = [binary, "-m", MODEL, "-u", f"127.0.0.1:{http_port}", "--shape",
                f"image:1,{height},{width}", "--concurrency-range", str(concurrency),
                "--measurement-interval", str(interval_ms), "--max-trials", "5", "-f", str(out)]
        print(f"serving: {' '.join(argv)}", flush=True)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"ran": False, "reason": f"{binary}: {exc}"}
        if proc.returncode != 0 or not out.exists():
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
            return {"ran": False, "reason": f"{binary} exited {proc.returncode}: {last[0]}"}
        return parse_perf_csv(out.read_text(), concurrency)


@dataclass(frozen=True)
class Round:
    """One round: the limit, the naive client and the concurrent load, back to back."""

    limit: dict[int, float]  # batch size -> images/s
    naive: Load
    load: Load


def run_rounds(url: str, onnx: Path, images: np.ndarray, concurrency: int, rounds: int,
               requests: int, sequential: int, seconds: float) -> list[Round]:
    """Interleave the three measurements so that other load on the machine hits all of them."""
    import onnxruntime as ort

    options = ort.SessionOptions()  # the adapter's thread settings
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(str(onnx), sess_options=options, providers=["CPUExecutionProvider"])
    expected = session.run(["probability"], {"image": images})[0]
    drive(url, images, 2 * concurrency, concurrency, expected)  # warm-up, and Triton's answers checked
    out = []
    for r in range(1, rounds + 1):
        limit = inprocess_rates(session, images, BATCHES, seconds)
        naive = drive(url, images, sequential, 1)
        load = drive(url, images, requests, concurrency)
        print(f"serving: round {r}/{rounds}: in-process {max(limit.values()):.1f} images/s "
              f"(by batch {', '.join(f'{b}: {v:.0f}' for b, v in limit.items())}), Triton "
              f"{load.images_per_s:.1f} (mean batch {load.mean_batch:.1f}), sequential "
              f"{naive.images_per_s:.1f}", flush=True)
        out.append(Round(limit, naive, load))
    return out


def summarize(rounds: list[Round]) -> tuple[float, float, dict[str, Any]]:
    """(value, limit, secondary figures): medians over rounds, the limit of a round being
    its best batch size; latency percentiles over every request of every round."""
    def median(values: list[float]) -> float:
        return float(np.median(values))

    p50, p95 = percentiles([ms for r in rounds for ms in r.load.latencies_ms])
    value = median([r.load.images_per_s for r in rounds])
    limit = median([max(r.limit.values()) for r in rounds])
    naive = median([r.naive.images_per_s for r in rounds])
    return value, limit, {
        "vs_naive": round(value / naive, 2), "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
        "inprocess_limit_per_s": round(limit, 1), "sequential_per_s": round(naive, 1),
        "sequential_p50_ms": round(percentiles([ms for r in rounds for ms in r.naive.latencies_ms])[0], 2),
        "inprocess_by_batch_per_s": {str(b): round(median([r.limit[b] for r in rounds]), 1)
                                     for b in rounds[0].limit},
        "triton_mean_batch": round(median([r.load.mean_batch for r in rounds]), 2),
        "round_ratios": [round(r.load.images_per_s / max(r.limit.values()), 3) for r in rounds]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 shorter rounds instead of 5")
    parser.add_argument("--height", type=int, default=HEIGHT)
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--model-width", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=None, help="concurrent requests per round")
    parser.add_argument("--queue-delay-us", type=int, default=Batching.max_queue_delay_us)
    parser.add_argument("--preferred", default="", help="preferred batch sizes, e.g. 8,16")
    parser.add_argument("--instances", type=int, default=1)
    args = parser.parse_args()
    rounds = 3 if args.quick else 5  # short rounds: a burst of other work spoils one, not the median
    requests = args.requests or (200 if args.quick else 500)
    sequential, seconds = max(40, requests // 5), 0.5 if args.quick else 1.0
    batching = Batching(args.queue_delay_us, tuple(int(b) for b in args.preferred.split(",") if b),
                        args.instances)
    images = np.random.default_rng(1).random((64, 1, args.height, args.width), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="radflow-bench-serving-") as tmp:
        print(f"serving: exporting the classifier at {args.height}x{args.width}", flush=True)
        onnx = make_onnx(Path(tmp), args.height, args.width, args.model_width, 0.05)
        print("serving: starting Triton", flush=True)
        with throwaway_stack("triton") as env:
            os.environ.update(env)
            serve(onnx, batching)
            measured = run_rounds(f"127.0.0.1:{env['RADFLOW_TRITON_GRPC_PORT']}", onnx, images,
                                  args.concurrency, rounds, requests, sequential, seconds)
            pa = perf_analyzer(int(env["RADFLOW_TRITON_HTTP_PORT"]), args.height, args.width,
                               args.concurrency, 2000 if args.quick else 5000)
    value, limit, secondary = summarize(measured)
    write_result(
        "serving", "images/s", value, limit,
        f"in-process onnxruntime on the same ONNX file and inputs, {THREADS} intra-op threads, "
        f"best of batch sizes {'/'.join(map(str, BATCHES))}; medians of {rounds} interleaved rounds", 0.7,
        {"image_height": args.height, "image_width": args.width, "model_width": args.model_width,
         "concurrency": args.concurrency, "requests_per_round": requests, "rounds": rounds,
         "sequential_requests_per_round": sequential, "dynamic_batching": asdict(batching),
         "onnxruntime_threads": THREADS, "triton_instance_threads": THREADS,
         "client": "tritonclient.grpc.aio in this process, batch-1 requests, both outputs"},
        {**secondary, "vs_naive_target": 3, "perf_analyzer": pa},
    )


if __name__ == "__main__":
    main()
