"""Ingest throughput on full-size mammograms against the limits of the same machine.

For each encoding (uncompressed 12-bit, JPEG 2000 lossless) a throwaway Orthanc receives
the same synthetic full-detector exams (4096x3328), then three things are timed:
- download limit: parallel raw download of every instance, identity encoding, nothing else;
- decode limit: decoding every instance from local files, one process per core;
- radflow ingest (the CLI): download, decode, preprocess, de-identify, publish to the lake.
value = ingest MB/s (DICOM bytes as stored) net of the CLI's start-up (timed by an idle
second run); ratio = value / min(download limit, decode limit). The JSON keeps both
encodings; the headline is the uncompressed one. The CPU seconds the download limit costs
(this process and Orthanc together, out of 2 x wall seconds on 2 cores) are reported too:
they show how much of the machine is left for decoding and preprocessing at that rate.
Secondary `cpu_s_per_exam`: CPU seconds (user + system) per exam of the ingest, net of the
idle second run, for the radflow process (its session: with the processes it starts) and
for Orthanc (its session), sampled from /proc (benchmarks/cpu.py), and their sum `total`;
the deployment sizing (`python -m benchmarks.sizing`) reads it.

    python -m benchmarks.ingest [--quick] [--exams N] [--encodings uncompressed,...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import RADFLOW, throwaway_stack, write_result
from benchmarks.cpu import Group, Sampler

J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"


def make_exams(exams: int, folder: Path) -> dict[str, list[Path]]:
    """Full-size synthetic exams as 12-bit uncompressed files and as JPEG 2000 lossless."""
    import pydicom

    from pipelines.imaging.transcode import encode_file, with_bits_stored
    from pipelines.synth.run import run as synth

    source = folder / "source"
    synth(exams, "2026-01-05", "general", 5, push=False, out_dir=source, scale=1.0, progress=False)
    variants: dict[str, list[Path]] = {"uncompressed": [], "jpeg2000-lossless": []}
    for path in sorted(source.rglob("*.dcm")):
        raw = folder / "uncompressed" / path.relative_to(source)
        j2k = folder / "jpeg2000-lossless" / path.relative_to(source)
        raw.parent.mkdir(parents=True, exist_ok=True)
        j2k.parent.mkdir(parents=True, exist_ok=True)
        ds = pydicom.dcmread(path)
        if "PixelData" in ds:
            ds = with_bits_stored(ds, 12)
        ds.save_as(raw, enforce_file_format=True)
        if "PixelData" in ds:
            encode_file(raw, j2k, J2K_LOSSLESS)
        else:
            ds.save_as(j2k, enforce_file_format=True)
        variants["uncompressed"].append(raw)
        variants["jpeg2000-lossless"].append(j2k)
    return variants


def _get(url: str, auth: tuple[str, str], path: str, params: dict[str, Any]) -> Any:
    """GET as JSON on a new connection (Orthanc may close an idle keep-alive one), with retries."""
    for attempt in range(5):
        try:
            with httpx.Client(auth=auth, timeout=60) as client:
                return client.get(f"{url}{path}", params=params).raise_for_status().json()
        except httpx.TransportError:
            if attempt == 4:
                raise
            time.sleep(1)
    return None


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _download_all(url: str, auth: tuple[str, str], ids: list[str], workers: int) -> float:
    local = threading.local()

    def get(instance: str) -> int:
        if not hasattr(local, "client"):  # one keep-alive client per thread
            local.client = httpx.Client(auth=auth, headers={"Accept-Encoding": "identity"}, timeout=300)
        return len(local.client.get(f"{url}/instances/{instance}/file").content)

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(get, ids))
    return time.monotonic() - started


def _download_naive(url: str, auth: tuple[str, str], ids: list[str]) -> float:
    """Sequential downloads with a default client (which asks Orthanc for gzip)."""
    started = time.monotonic()
    with httpx.Client(auth=auth, timeout=300) as client:
        for instance in ids:
            client.get(f"{url}/instances/{instance}/file").raise_for_status()
    return time.monotonic() - started


def _decode(path: Path) -> int:
    import pydicom

    ds = pydicom.dcmread(path)
    return int(ds.pixel_array.size) if "PixelData" in ds else 0


def _decode_all(files: list[Path]) -> float:
    started = time.monotonic()
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(_decode, files))
    return time.monotonic() - started


def _timed_cli(env: dict[str, str], orthanc: int) -> tuple[float, dict[str, float]]:
    """Wall seconds of `radflow ingest`, and the CPU seconds of its session (it and every
    process it starts: decode children of a forkserver that is never reaped are counted
    while alive) and of Orthanc's meanwhile, sampled from /proc."""
    started = time.monotonic()
    proc = subprocess.Popen([RADFLOW, "ingest", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    groups = [Group("radflow", session=proc.pid), Group("orthanc", session=os.getsid(orthanc))]
    with Sampler(groups) as cpu:
        stdout, stderr = proc.communicate()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, stdout, stderr)
    return seconds, {g.name: cpu.total(g.name) for g in groups}


def measure(name: str, files: list[Path], workers: int) -> dict[str, Any]:
    nbytes = sum(p.stat().st_size for p in files)
    exams = len({p.parent for p in files})
    with throwaway_stack("orthanc") as env:
        port = env["RADFLOW_ORTHANC_DICOM_PORT"]
        propose = ["-xv"] if name == "jpeg2000-lossless" else []  # else storescu offers uncompressed only
        subprocess.run(["storescu", *propose, "-aet", "RADFLOW", "-aec", "ORTHANC", "+sd", "+r",
                        "127.0.0.1", port, str(files[0].parents[1])],
                       check=True, capture_output=True, timeout=1800)
        url = f"http://127.0.0.1:{env['RADFLOW_ORTHANC_HTTP_PORT']}"
        password = Path(env["RADFLOW_STATE_DIR"], "secrets", "orthanc.env").read_text().split("=", 1)[1]
        auth = ("radflow", password.strip())
        while not all(s["IsStable"] for s in _get(url, auth, "/studies", {"expand": 1})):
            time.sleep(1)
        ids = [str(i) for i in _get(url, auth, "/instances", {})]
        orthanc = int(Path(env["RADFLOW_STATE_DIR"], "run", "orthanc.pid").read_text())
        cpu_before, own_before = _cpu_seconds(orthanc), sum(os.times()[:2])
        download_s = _download_all(url, auth, ids, workers)
        download_cpu = _cpu_seconds(orthanc) - cpu_before + sum(os.times()[:2]) - own_before
        naive_s = _download_naive(url, auth, ids)
        decode_s = _decode_all(files)
        ingest_s, ingest_cpu = _timed_cli(env, orthanc)
        startup_s, startup_cpu = _timed_cli(env, orthanc)  # nothing new: start-up and the /changes poll
    mb = nbytes / 1e6
    net = max(ingest_s - startup_s, 1e-3)
    out: dict[str, Any] = {"encoding": name, "exams": exams, "megabytes": round(mb, 1),
           "ingest_mb_s": round(mb / net, 1), "ingest_exams_s": round(exams / net, 3),
           "ingest_s": round(ingest_s, 1), "cli_startup_s": round(startup_s, 1),
           "download_limit_mb_s": round(mb / download_s, 1), "decode_limit_mb_s": round(mb / decode_s, 1)}
    out["vs_naive"] = round(naive_s / net, 2)
    out["cpu_s_per_exam"] = {k: round(max(0.0, ingest_cpu[k] - startup_cpu[k]) / exams, 3)
                             for k in ingest_cpu}
    out["cpu_s_per_exam"]["total"] = round(sum(out["cpu_s_per_exam"].values()), 3)
    # share of the machine (all cores) the download limit itself keeps busy
    out["download_limit_cpu_share"] = round(download_cpu / (download_s * (os.cpu_count() or 1)), 2)
    out["ratio"] = round(out["ingest_mb_s"] / min(out["download_limit_mb_s"], out["decode_limit_mb_s"]), 3)
    print(f"ingest {name}: {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2 exams (under two minutes)")
    parser.add_argument("--exams", type=int, default=None)
    parser.add_argument("--encodings", default="uncompressed,jpeg2000-lossless")
    args = parser.parse_args()
    wanted = args.encodings.split(",")
    exams = args.exams or (2 if args.quick else 8)
    workers = int(os.environ.get("RADFLOW_DOWNLOAD_WORKERS", "4"))
    with tempfile.TemporaryDirectory(prefix="radflow-bench-ingest-") as tmp:
        variants = make_exams(exams, Path(tmp))
        results = {name: measure(name, files, workers) for name, files in variants.items()
                   if name in wanted}
    head = results["uncompressed"]
    limit = min(head["download_limit_mb_s"], head["decode_limit_mb_s"])
    write_result(
        "ingest", "MB/s", head["ingest_mb_s"], limit,
        "min(parallel raw uncompressed download of the same instances, decode alone on all cores)",
        0.7, {"exams": exams, "rows": 4096, "cols": 3328, "bits_stored": 12, "workers": workers},
        {"download_limit_mb_s": head["download_limit_mb_s"], "decode_limit_mb_s": head["decode_limit_mb_s"],
         "vs_naive": head["vs_naive"], "download_limit_cpu_share": head["download_limit_cpu_share"],
         "exams_per_s": head["ingest_exams_s"], "cpu_s_per_exam": head["cpu_s_per_exam"],
         "jpeg2000_lossless": results.get("jpeg2000-lossless", "not run"),
         "note": "value is net of the CLI start-up (cli_startup_s)"},
    )


if __name__ == "__main__":
    main()
