"""Start, find and stop the stack's background processes by pid file.

A pid file records a process that `radflow stack up` started; `down` stops only those.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pipelines.errors import StackError


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in pid_file when that process is still alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    if _is_zombie(pid):
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def start(
    name: str,
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start argv in its own session with output to log_file; record its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv is built by radflow, not a shell
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise StackError(f"{name}: cannot start {argv[0]!r}: {exc.strerror}") from exc
    pid_file.write_text(str(proc.pid))
    return proc.pid


def wait_until(
    name: str,
    healthy: Callable[[], bool],
    *,
    pid_file: Path,
    log_file: Path,
    timeout_s: float,
) -> float:
    """Poll healthy() until it is true; fail early if the process died. Returns seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if read_pid(pid_file) is None:
            raise StackError(f"{name} exited during start-up; last log lines:\n{tail(log_file)}")
        with contextlib.suppress(Exception):
            if healthy():
                return time.monotonic() - started
        time.sleep(0.3)
    raise StackError(
        f"{name} not healthy after {timeout_s:.0f} s; last log lines:\n{tail(log_file)}"
    )


def stop(pid_file: Path, *, timeout_s: float = 30.0, sig: int = signal.SIGTERM,
         group: bool = True) -> bool:
    """Signal (default SIGTERM) the process group recorded in pid_file (only the process when
    not `group`: a server that stops its own children), SIGKILL the group after timeout_s."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        (os.killpg if group else os.kill)(pid, sig)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and read_pid(pid_file) is not None:
        time.sleep(0.2)
    if read_pid(pid_file) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
    pid_file.unlink(missing_ok=True)
    return True


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"
