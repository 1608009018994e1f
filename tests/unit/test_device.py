"""RADFLOW_DEVICE: which device PyTorch and onnxruntime use, checked on a CPU machine with
CUDA faked where the choice depends on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pydantic
import pytest
import torch

from pipelines.config import RadflowSettings, reset_settings
from pipelines.errors import PermanentError
from pipelines.modelfiles import device
from pipelines.modelfiles.device import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    distributed_backend,
    onnx_providers,
    resolve_device,
    training_device,
)


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_auto_is_the_cpu_here_and_cuda_where_there_is_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 0)
    assert resolve_device() == "cpu"  # the default setting is auto
    assert resolve_device("cpu") == "cpu"
    fake_gpus(monkeypatch, 2)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("cpu") == "cpu"  # asked for, even with a GPU


def test_the_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("RADFLOW_DEVICE", "cpu")
    reset_settings()
    assert resolve_device() == "cpu"
    monkeypatch.setenv("RADFLOW_DEVICE", "gpu")
    with pytest.raises(pydantic.ValidationError, match="RADFLOW_DEVICE|device"):
        RadflowSettings()


def test_cuda_asked_for_but_absent_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 0)
    with pytest.raises(PermanentError, match=r"RADFLOW_DEVICE=cuda but PyTorch sees no CUDA device"):
        resolve_device("cuda")
    fake_gpus(monkeypatch, 2)
    with pytest.raises(PermanentError, match=r"RADFLOW_DEVICE=cuda:2 but this machine has 2"):
        resolve_device("cuda:2")
    with pytest.raises(PermanentError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


def test_evaluation_scores_where_the_setting_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.modelfiles.inference import batch_views, view_scores
    from pipelines.training.model import ViewClassifier

    images = np.zeros((3, 1, 32, 32), np.float32)
    model = ViewClassifier(width=4).eval()
    assert view_scores(model, images).shape == (3,)  # auto: the CPU here
    fake_gpus(monkeypatch, 0)
    monkeypatch.setenv("RADFLOW_DEVICE", "cuda")
    reset_settings()
    with pytest.raises(PermanentError, match="RADFLOW_DEVICE=cuda"):
        view_scores(model, images)  # never silently on the CPU when CUDA was asked for
    full_detector = np.broadcast_to(np.float32(0), (2, 1, 4096, 3328))
    assert batch_views(full_detector, 64) == 4  # ~2^26 input pixels per pass
    assert batch_views(np.broadcast_to(np.float32(0), (2, 1, 128, 96)), 64) == 64


@pytest.mark.parametrize(("setting", "gpus", "local_rank", "expected"), [
    ("auto", 2, "1", "cuda:1"),  # each rank its own GPU
    ("cuda", 2, "0", "cuda:0"),
    ("cuda:0", 2, "1", "cuda:1"),  # LOCAL_RANK wins under torchrun
    ("auto", 0, "1", "cpu"),
    ("cpu", 2, "1", "cpu"),
])
def test_torchrun_ranks_take_the_gpu_of_their_local_rank(
        monkeypatch: pytest.MonkeyPatch, setting: str, gpus: int, local_rank: str, expected: str) -> None:
    fake_gpus(monkeypatch, gpus)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert training_device(setting) == expected
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert training_device(setting) == resolve_device(setting)  # no torchrun: as resolved


def test_a_local_rank_beyond_the_gpus_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    with pytest.raises(PermanentError, match="LOCAL_RANK=3 but this machine has 2"):
        training_device("auto")


def test_nccl_only_with_the_model_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bug: NCCL was picked whenever CUDA was available, with the model on the CPU."""
    from pipelines.training import fit
    from pipelines.training.model import ViewClassifier

    assert distributed_backend("cuda:1") == distributed_backend("cuda") == "nccl"
    assert distributed_backend("cpu") == "gloo"
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    chosen: list[str] = []

    def init(backend: str, **_: object) -> None:
        chosen.append(backend)
        raise RuntimeError("stop before DDP")

    monkeypatch.setattr(torch.distributed, "init_process_group", init)
    for dev in ("cpu", "cuda:1"):
        with pytest.raises(RuntimeError, match="stop before DDP"):
            fit._trainer(ViewClassifier(width=4), dev)
    assert chosen == ["gloo", "nccl"]


def test_onnxruntime_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER])
    assert onnx_providers("auto") == [CUDA_PROVIDER, CPU_PROVIDER]
    assert onnx_providers("cuda") == [CUDA_PROVIDER, CPU_PROVIDER]
    assert onnx_providers("cuda:1") == [(CUDA_PROVIDER, {"device_id": 1}), CPU_PROVIDER]
    assert onnx_providers("cpu") == [CPU_PROVIDER]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CPU_PROVIDER])
    assert onnx_providers("auto") == onnx_providers("cuda") == [CPU_PROVIDER]  # CPU-only build


def test_the_embedder_session_takes_the_cuda_provider(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    from pipelines.modelfiles.embeddings import Embedder
    from pipelines.modelfiles.onnx import export
    from pipelines.training.model import ViewClassifier

    export(ViewClassifier(width=4), np.zeros((1, 1, 32, 32), np.float32), tmp_path / "m.onnx")
    opened: list[object] = []
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER])
    monkeypatch.setattr(onnxruntime, "InferenceSession",
                        lambda *a, providers=None, **k: opened.append(providers))
    Embedder(tmp_path / "m.onnx")
    assert opened == [[CUDA_PROVIDER, CPU_PROVIDER]]


def test_placed_moves_a_module_for_the_block_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluation moves the caller's model to the device and back (export and MLflow
    logging then find it on the CPU)."""
    from pipelines.training.model import ViewClassifier

    model = ViewClassifier(width=4)
    assert device.module_device(model) == "cpu"
    assert device.module_device(lambda x: x) is None
    moves: list[str] = []

    def move(where: str) -> ViewClassifier:
        moves.append(where)
        return model

    monkeypatch.setattr(model, "to", move)
    with device.placed(model, "cuda:1") as inside:
        assert inside is model and moves == ["cuda:1"]
    assert moves == ["cuda:1", "cpu"]
    with device.placed(model, "cpu"):
        pass
    assert moves == ["cuda:1", "cpu"]  # already there: not moved
