"""No process of a killed run outlives it (issue 18): the workers radflow starts (ingest's
spawn pool, decode children from a forkserver, a forkserver pool), the forkservers and the
resource tracker all end when the process that started them is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil
import pytest

from pipelines.errors import MisusedApi
from pipelines.processes import die_with_parent, process_pool

CHILD = Path(__file__).with_name("pool_lifetime_child.py")
GONE_WITHIN_S = 20  # a bound for the test, not a timing: without the fix they live on


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_every_descendant_dies_with_a_sigkilled_parent() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, str(CHILD)], stdout=subprocess.PIPE, text=True,
                             env=env, cwd=CHILD.parent)
    pids: dict[int, str] = {}  # pid: role
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line, f"the child printed nothing (exit status {child.wait(timeout=30)})"
        pids = {int(pid): role for pid, role in json.loads(line)["pids"].items()}
        assert sorted(Counter(pids.values()).items()) == [
            ("forkserver", 3), ("forkserver child", 5), ("resource tracker", 1), ("spawn worker", 4)]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        deadline = time.monotonic() + GONE_WITHIN_S
        while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, "alive after their parent was killed: " + "; ".join(
            f"{pid} {pids[pid]}" for pid in alive)
    finally:
        child.kill()
        for pid in pids:  # never leave a failed run's processes behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _pid(_: int) -> int:
    return os.getpid()


def test_a_pool_still_works_and_its_workers_end_with_it() -> None:
    with process_pool(2, "spawn") as pool:
        workers = set(pool.map(_pid, range(4)))
    assert workers and os.getpid() not in workers
    assert not any(_alive(pid) for pid in workers)


def test_a_pool_started_from_a_thread_that_has_ended_still_works() -> None:
    """Linux's parent-death signal follows the thread that started a worker: a pool made
    on a short-lived thread must not ask for it, or its workers die with the thread."""
    pools: list[ProcessPoolExecutor] = []

    def start() -> None:
        pool = process_pool(1, "spawn")
        pool.submit(_pid, 0).result(timeout=120)  # the worker starts from this thread
        pools.append(pool)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    with pools[0] as pool:
        time.sleep(0.5)  # the kernel's signal, had it been asked for, arrives at once
        assert pool.submit(_pid, 1).result(timeout=120) != os.getpid()


@pytest.mark.parametrize(("workers", "method"), [(0, "spawn"), (2, "fork")])
def test_a_pool_refuses_what_would_leak_or_do_nothing(workers: int, method: str) -> None:
    with pytest.raises(MisusedApi, match=f"got {workers if workers < 1 else repr(method)}"):
        process_pool(workers, method)


def test_it_refuses_to_run_outside_a_multiprocessing_child() -> None:
    with pytest.raises(MisusedApi, match=f"process {os.getpid()}"):
        die_with_parent()
