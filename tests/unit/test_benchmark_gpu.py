"""benchmarks/gpu.py on a machine without CUDA: it says it needs a GPU, exits 0 and writes
no result (its GPU steps run only where torch.cuda is available)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "benchmarks" / "results" / "gpu.json"


def test_without_cuda_the_gpu_benchmark_says_so_and_writes_nothing() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the benchmark would run for real")
    before = RESULT.stat().st_mtime_ns if RESULT.exists() else None
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "needs a CUDA GPU" in out.stdout and "no result written" in out.stdout
    assert f"torch {torch.__version__} sees none" in out.stdout
    after = RESULT.stat().st_mtime_ns if RESULT.exists() else None
    assert after == before, "benchmarks/results/gpu.json was written without a GPU"
