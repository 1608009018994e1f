"""`make bootstrap` installs the torch build TORCH names (printed with make -n into a
throwaway venv path: nothing is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def dry_run(tmp_path: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    venv = tmp_path / "venv"
    return subprocess.run(["make", "-n", f"VENV={venv}", f"{venv}/.radflow-installed", *variables],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def torch_pin() -> str:
    return re.search(r"^torch==([\d.]+)\+cpu$", (ROOT / "constraints.txt").read_text(), re.M)[1]  # type: ignore[index]


def test_the_default_is_the_cpu_build_from_pytorchs_cpu_index(tmp_path: Path) -> None:
    out = dry_run(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in out.stdout
    assert f"'torch=={torch_pin()}+cpu'" in out.stdout, out.stdout
    assert "--timeout" in out.stdout  # an unreachable index must not hang the bootstrap
    assert f"touch {tmp_path}/venv/.torch-cpu" in out.stdout


def test_cuda_takes_the_cuda_index_and_the_rest_keeps_that_build(tmp_path: Path) -> None:
    out = dry_run(tmp_path, "TORCH=cuda")
    assert out.returncode == 0, out.stderr
    assert "--extra-index-url https://download.pytorch.org/whl/cu128" in out.stdout
    assert f"'torch=={torch_pin()}+cu128'" in out.stdout and "+cpu'" not in out.stdout
    assert f"{tmp_path}/venv/.torch-cu128" in out.stdout  # its own stamp: changing TORCH reinstalls
    # the project is installed against constraints.txt without its torch==...+cpu line
    editable = next(line for line in out.stdout.splitlines() if "-e '.[test]'" in line)
    assert "constraints-without-torch.txt" in editable and "-c constraints.txt" not in editable
    assert "grep -v '^torch==' constraints.txt" in out.stdout


def test_an_unknown_build_is_refused(tmp_path: Path) -> None:
    out = dry_run(tmp_path, "TORCH=gpu")
    assert out.returncode != 0 and "TORCH must be cpu or cuda, got 'gpu'" in out.stderr
