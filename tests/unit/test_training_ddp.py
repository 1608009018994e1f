"""DDP through torchrun: two CPU processes train one model (gradients averaged by gloo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.parametrize("fine_tune", [False, True])
def test_two_torchrun_processes_end_with_the_same_weights(tmp_path: Path, fine_tune: bool) -> None:
    """Also while the freezing schedule unfreezes layer groups (fine-tuning)."""
    out = tmp_path / "rank"
    extra = []
    if fine_tune:
        import torch

        from pipelines.training.model import ViewClassifier

        torch.manual_seed(1)
        torch.save(ViewClassifier(width=4), tmp_path / "base.pt")
        extra = [str(tmp_path / "base.pt")]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(HERE / "ddp_fit.py"), str(out), *extra],
        capture_output=True, text=True, timeout=300, cwd=HERE.parents[1],
        env={"PYTHONPATH": str(HERE.parents[1]), "OMP_NUM_THREADS": "1",
             "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads(Path(f"{out}.{r}").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["digest"] == ranks[1]["digest"]  # DDP kept the replicas identical
    assert [r["epochs"] for r in ranks] == [3, 3]
