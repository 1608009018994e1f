"""A process that starts every kind of radflow worker, then waits to be killed.

Run by tests/unit/test_pool_lifetime.py as a script. It starts, through the code the
stages use:
- ingest's pool (`process_pool(2, "spawn")`), each worker stuck in a decode child that
  never returns (a hanging codec), so each worker also runs a forkserver;
- a decode child of its own, from a thread (ingest with one worker decodes in-process);
- a `process_pool(2, "forkserver")` whose workers sit idle, as a pool between batches does;
- a `process_pool(2, "spawn")` made and used on a thread that has ended since.
Then it prints one JSON line, {"pids": {pid: role}} for all its descendants (resource
tracker and forkservers included), and sleeps.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import psutil
from dicom_builders import breast_pixels, mg_image

from pipelines.imaging.decode import decode_with_timeout
from pipelines.processes import process_pool

# tracker + 2 spawn workers, each with a forkserver and a decode child + this process's
# forkserver, its decode child and 2 forkserver-pool workers + 2 workers of the thread's pool
EXPECTED = 1 + 2 * 3 + 1 + 1 + 2 + 2
START_S = 120  # then it reports the descendants it has


def stuck_decoder(ds: object) -> np.ndarray:
    time.sleep(3600)
    return np.zeros((2, 2))


def decode_forever(_: int = 0) -> None:
    decode_with_timeout(mg_image(breast_pixels(40, 32)), 3600, decoder=stuck_decoder)  # type: ignore[arg-type]


def idle(n: int) -> int:
    return n


def pool_of_a_thread() -> ProcessPoolExecutor:
    pools = []

    def start() -> None:
        pool = process_pool(2, "spawn")
        for future in [pool.submit(idle, n) for n in range(2)]:
            future.result()
        pools.append(pool)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    return pools[0]


def role(process: psutil.Process) -> str:
    """What a descendant is, from its command line (a forkserver's children share its own)."""
    def forkserver(p: psutil.Process | None) -> bool:
        return p is not None and "multiprocessing.forkserver import main" in " ".join(p.cmdline())

    if "multiprocessing.resource_tracker import main" in " ".join(process.cmdline()):
        return "resource tracker"
    if forkserver(process):
        return "forkserver child" if forkserver(process.parent()) else "forkserver"
    return "spawn worker"


def main() -> None:
    ingest_pool = process_pool(2, "spawn")
    for n in range(2):
        ingest_pool.submit(decode_forever, n)
    threading.Thread(target=decode_forever, daemon=True).start()
    spare_pool = process_pool(2, "forkserver")
    for n in range(2):
        spare_pool.submit(idle, n)
    pools = [ingest_pool, spare_pool, pool_of_a_thread()]  # a collected pool stops its workers
    me = psutil.Process()
    deadline = time.monotonic() + START_S
    while len(kids := me.children(recursive=True)) < EXPECTED and time.monotonic() < deadline:
        time.sleep(0.2)
    print(json.dumps({"pids": {p.pid: role(p) for p in kids}}), flush=True)
    time.sleep(3600)
    del pools


if __name__ == "__main__":
    main()
