"""Ingest throughput against the limit of the same machine in the same run.

value: DICOM megabytes per second that `radflow ingest` turns into lake images (download,
decode, preprocess, publish). limit: parallel raw download of the same instances with
identity encoding and nothing else done. vs_naive: radflow against sequential downloads
with a default HTTP client (which asks Orthanc for gzip).

    python -m benchmarks.ingest [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from benchmarks.common import RADFLOW, throwaway_stack, write_result


def _instances(client: httpx.Client, url: str) -> list[str]:
    return [str(i) for i in client.get(f"{url}/instances").json()]


def _download_all(url: str, auth: tuple[str, str], ids: list[str], workers: int,
                  headers: dict[str, str] | None) -> tuple[float, int]:
    local = threading.local()

    def get(instance: str) -> int:
        if not hasattr(local, "client"):  # one keep-alive client per thread
            local.client = httpx.Client(auth=auth, headers=headers, timeout=120)
        return len(local.client.get(f"{url}/instances/{instance}/file").content)

    started = time.monotonic()
    if workers == 1:
        total = sum(get(i) for i in ids)
    else:
        with ThreadPoolExecutor(workers) as pool:
            total = sum(pool.map(get, ids))
    return time.monotonic() - started, total


def _decode_all(url: str, auth: tuple[str, str], ids: list[str]) -> float:
    """Seconds to decode the pixels of every instance with pydicom, files already in memory."""
    import io

    import pydicom

    with httpx.Client(auth=auth, headers={"Accept-Encoding": "identity"}, timeout=120) as c:
        blobs = [c.get(f"{url}/instances/{i}/file").content for i in ids]
    started = time.monotonic()
    for blob in blobs:
        ds = pydicom.dcmread(io.BytesIO(blob))
        if "PixelData" in ds:  # the reports (SR) have none
            _ = ds.pixel_array
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--exams", type=int, default=None)
    args = parser.parse_args()
    exams = args.exams or (20 if args.quick else 60)
    with throwaway_stack("orthanc") as env:
        subprocess.run([RADFLOW, "synth", "--exams", str(exams), "--date", "2026-01-05", "--site",
                        "general", "--seed", "1", "--json"], env=env, check=True, capture_output=True)
        url = f"http://127.0.0.1:{env['RADFLOW_ORTHANC_HTTP_PORT']}"
        state = env["RADFLOW_STATE_DIR"]
        password = open(f"{state}/secrets/orthanc.env").read().strip().split("=", 1)[1]
        auth = ("radflow", password)
        with httpx.Client(auth=auth) as c:
            ids = _instances(c, url)
            while not all(s["IsStable"] for s in c.get(f"{url}/studies", params={"expand": 1}).json()):
                time.sleep(1)
        workers = int(os.environ.get("RADFLOW_DOWNLOAD_WORKERS", "4"))
        limit_s, nbytes = _download_all(url, auth, ids, workers, {"Accept-Encoding": "identity"})
        naive_s, _ = _download_all(url, auth, ids, 1, None)
        decode_s = _decode_all(url, auth, ids)
        started = time.monotonic()
        subprocess.run([RADFLOW, "ingest", "--json"], env=env, check=True, capture_output=True)
        ingest_s = time.monotonic() - started
    mb = nbytes / 1e6
    write_result(
        "ingest", "MB/s", mb / ingest_s, mb / limit_s,
        "parallel raw uncompressed download of the same instances", 0.7,
        {"exams": exams, "instances": len(ids), "megabytes": round(mb, 1), "workers": workers},
        {"download_limit_mb_s": round(mb / limit_s, 1),
         "decode_limit_mb_s": round(mb / decode_s, 1), "vs_naive": round(naive_s / ingest_s, 2),
         "ingest_s": round(ingest_s, 1), "note": "ingest time includes the CLI's start-up"},
    )


if __name__ == "__main__":
    main()
