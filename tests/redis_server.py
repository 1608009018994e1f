"""A Redis for the tests (the Celery broker), found or started; Redis tests never skip.

In order:
1. a server on 127.0.0.1:6379 (the development and CI machines run one): the tests use
   database RADFLOW_TEST_REDIS_DB (default 11), flushed before and after, so that nothing
   else's queues are touched;
2. a throwaway `redis-server` (Debian's redis-server, installed by `make bootstrap`) on a
   free loopback port, keeping nothing on disk, stopped at the end.
`RADFLOW_TEST_REDIS_THROWAWAY=1` skips step 1, so that step 2 can be exercised on a
machine that runs a server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

LOCAL_HOST, LOCAL_PORT = "127.0.0.1", 6379


class RedisUnavailable(RuntimeError):
    """No way to get a Redis on this machine."""


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((LOCAL_HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


@contextlib.contextmanager
def redis_database() -> Iterator[str]:
    """A redis:// URL of an empty database, emptied again afterwards."""
    if os.environ.get("RADFLOW_TEST_REDIS_THROWAWAY") != "1" and _answers(LOCAL_PORT):
        url = f"redis://{LOCAL_HOST}:{LOCAL_PORT}/{os.environ.get('RADFLOW_TEST_REDIS_DB', '11')}"
        _flush(url)
        try:
            yield url
        finally:
            _flush(url)
        return
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise RedisUnavailable("no Redis answers on 127.0.0.1:6379 and redis-server is not installed: "
                               "run `make bootstrap` (it installs Debian's redis-server)")
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        port = sock.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="radflow-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", LOCAL_HOST, "--save", "",
                             "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RedisUnavailable(f"redis-server on port {port} did not start")
            time.sleep(0.2)
        yield f"redis://{LOCAL_HOST}:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
