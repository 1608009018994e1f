"""Separate worker hosts on this machine: each a network namespace (its own network stack
and, with `unshare --uts`, its own hostname) with its own working directory, reaching the
services of the main host over a veth pair.

The services stay on the main host's loopback, as `radflow stack up` binds them; a
forwarder on the main host's end of each veth pair relays a worker's connections to them,
as a hospital's firewall would let a worker host reach the server's ports. Needs root (CI
and the sessions run as root): `ip netns` and `ip link` are refused otherwise.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.integration.stack import RADFLOW


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise AssertionError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()} (needs root)")


@dataclass(frozen=True)
class Host:
    name: str  # its hostname, as Airflow records it on the task instances it runs
    netns: str
    gateway: str  # the main host's address on this host's link: where it finds the services
    address: str


@contextlib.contextmanager
def network_host(name: str) -> Iterator[Host]:
    """A namespace linked to the main host by a /30 on a veth pair; removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    subnet = f"10.{random.randint(64, 250)}.{random.randint(0, 250)}"
    host = Host(name, f"rf-{tag}", f"{subnet}.1", f"{subnet}.2")
    outside, inside = f"rfo{tag}", f"rfi{tag}"
    _ip("netns", "add", host.netns)
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", host.netns)
        _ip("addr", "add", f"{host.gateway}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("addr", "add", f"{host.address}/30", "dev", inside, netns=host.netns)
        _ip("link", "set", inside, "up", netns=host.netns)
        _ip("link", "set", "lo", "up", netns=host.netns)
        yield host
    finally:
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, timeout=30)


class Forwarder:
    """Relays TCP connections from the listen address to 127.0.0.1, one listening port per
    service port (`port(service port)` tells which: some services listen on every address,
    so the same number may be taken on the veth too)."""

    def __init__(self, address: str, ports: list[int]) -> None:
        self.listeners, self.ports = [], {}
        for port in ports:
            sock = socket.socket()
            sock.bind((address, 0))
            sock.listen(64)
            self.listeners.append(sock)
            self.ports[port] = sock.getsockname()[1]
            threading.Thread(target=self._accept, args=(sock, port), daemon=True).start()

    def port(self, service_port: int | str) -> int:
        return self.ports[int(service_port)]

    def _accept(self, listener: socket.socket, port: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in self.listeners:
            sock.close()


@contextlib.contextmanager
def celery_worker(host: Host, env: dict[str, str], log: Path,
                  queues: str) -> Iterator[subprocess.Popen[bytes]]:
    """`radflow worker` on `host` under its own hostname; killed with its pool afterwards."""
    command = f"hostname {host.name} && exec {RADFLOW} worker --name {host.name} --queues {queues}"
    with open(log, "ab") as out:
        proc = _start(["ip", "netns", "exec", host.netns, "unshare", "--uts", "sh", "-c", command],
                      env, out)
    try:
        yield proc
    finally:
        stop(proc)


def _start(argv: list[str], env: dict[str, str], out: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """The worker and every process of its group (its task processes included)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
