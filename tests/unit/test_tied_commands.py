"""A command radflow runs (DVC's) ends with the radflow process that started it, even a
SIGKILLed one (issue 18: no process of a killed run outlives it), and build-dataset finds the
DVC remote it configured instead of configuring it again on every build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipelines.datasets import dvc
from pipelines.processes import run_tied

GONE_WITHIN_S = 20  # a bound for the test, not a timing: without the fix the command lives on
CALLER = """
import sys
from pipelines.processes import run_tied
run_tied([sys.executable, "-c", "import time; time.sleep(120)"])
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_command_dies_with_a_sigkilled_caller() -> None:
    caller = subprocess.Popen([sys.executable, "-c", CALLER])
    command: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (command := [c.pid for c in psutil.Process(caller.pid).children()]):
            assert caller.poll() is None and time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait(timeout=30)
        deadline = time.monotonic() + GONE_WITHIN_S
        while _alive(command[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(command[0]), "the command outlived the process that ran it"
    finally:
        caller.kill()
        for pid in command:  # never leave a failed run's process behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_it_runs_like_subprocess_run() -> None:
    done = run_tied([sys.executable, "-c", "import sys; print('out'); sys.exit(3)"],
                    capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (3, "out\n")


def test_dvc_commands_are_tied(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ran: list[list[str]] = []

    def fake(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(dvc, "run_tied", fake)
    dvc.dvc(tmp_path, "status")
    assert ran == [[sys.executable, "-m", "dvc", "status"]]


def test_the_remote_is_configured_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    remote = str(tmp_path / "remote")
    dvc.ensure_repo(tmp_path / "repo", remote)  # real DVC: init, config, remote add
    assert dvc._remote_url(tmp_path / "repo") == remote
    ran: list[tuple[str, ...]] = []

    def record(repo: Path, *args: str) -> str:
        ran.append(args)
        return ""

    monkeypatch.setattr(dvc, "dvc", record)
    dvc.ensure_repo(tmp_path / "repo", remote)
    assert ran == []  # nothing to do: before, `dvc remote add` ran again on every build
    dvc.ensure_repo(tmp_path / "repo", str(tmp_path / "other"))
    assert ran == [("remote", "add", "--default", "--force", dvc.REMOTE, str(tmp_path / "other"))]
