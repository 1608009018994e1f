"""Where models run: the one reading of RADFLOW_DEVICE for PyTorch and onnxruntime.

`auto` takes CUDA when PyTorch sees a GPU and the CPU otherwise; `cpu`, `cuda` and
`cuda:N` are taken as asked, and asking for CUDA on a machine without it is an error
(a CPU build of torch on a GPU server would otherwise train for days without saying so).
Under torchrun each rank uses the GPU of its LOCAL_RANK, and the process group speaks NCCL
only when the model is on CUDA (gloo otherwise: NCCL cannot reduce CPU tensors).

onnxruntime takes the CUDA execution provider when its build has one and the setting allows
CUDA; a CPU-only onnxruntime on a GPU machine falls back to the CPU provider with a warning
(serving still answers, only slower).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pipelines.errors import PermanentError

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
# An onnxruntime provider: a name, or (name, options) such as ("CUDAExecutionProvider", {"device_id": 1}).
Provider = str | tuple[str, dict[str, Any]]


def _setting(device: str | None) -> str:
    if device is not None:
        return device
    from pipelines.config import get_settings

    return get_settings().device


def resolve_device(device: str | None = None) -> str:
    """The PyTorch device of this process: "cpu", "cuda" or "cuda:N".

    Args:
        device: auto, cpu, cuda or cuda:N; None reads RADFLOW_DEVICE.

    Raises:
        PermanentError: CUDA asked for but absent, a GPU index this machine does not
            have, or a value that is none of the above (each names RADFLOW_DEVICE).
    """
    import torch

    wanted = _setting(device).strip().lower()
    if wanted == "cpu":
        return "cpu"
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = wanted.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise PermanentError(f"RADFLOW_DEVICE={wanted!r}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise PermanentError(
            f"RADFLOW_DEVICE={wanted} but PyTorch sees no CUDA device (torch "
            f"{torch.__version__}, torch.cuda.is_available() is False): install the CUDA build "
            "of torch and the NVIDIA driver, or set RADFLOW_DEVICE=auto or cpu")
    if index and int(index) >= torch.cuda.device_count():
        raise PermanentError(f"RADFLOW_DEVICE={wanted} but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    return wanted


def training_device(device: str | None = None) -> str:
    """The device of this training process: resolve_device(), except that under torchrun
    (WORLD_SIZE > 1) with CUDA every rank takes its own GPU, cuda:LOCAL_RANK.

    Raises:
        PermanentError: as resolve_device(), or LOCAL_RANK names a GPU this machine lacks.
    """
    resolved = resolve_device(device)
    if not resolved.startswith("cuda") or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return resolved
    import torch

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise PermanentError(f"torchrun LOCAL_RANK={local} but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s): start at most that "
                             "many processes per node (--nproc_per_node)")
    if resolved != "cuda" and resolved != f"cuda:{local}":
        log.warning("device: RADFLOW_DEVICE=%s ignored under torchrun: rank uses cuda:%d",
                    resolved, local)
    return f"cuda:{local}"


def distributed_backend(device: str) -> str:
    """The torch.distributed backend for a model on `device`: nccl on CUDA, gloo otherwise."""
    return "nccl" if device.startswith("cuda") else "gloo"


def onnx_providers(device: str | None = None) -> list[Provider]:
    """The execution providers of an onnxruntime session.

    Args:
        device: auto, cpu, cuda or cuda:N; None reads RADFLOW_DEVICE.

    Returns:
        [CUDA provider (with its device_id for cuda:N), CPU provider] when onnxruntime has
        the CUDA provider and the setting allows CUDA; else [CPU provider].
    """
    import onnxruntime as ort

    wanted = _setting(device).strip().lower()
    if wanted == "cpu":
        return [CPU_PROVIDER]
    if CUDA_PROVIDER not in ort.get_available_providers():
        if wanted.startswith("cuda"):
            log.warning("device: RADFLOW_DEVICE=%s but this onnxruntime has no %s: running on "
                        "the CPU (install onnxruntime-gpu)", wanted, CUDA_PROVIDER)
        return [CPU_PROVIDER]
    _, _, index = wanted.partition(":")
    cuda: Provider = (CUDA_PROVIDER, {"device_id": int(index)}) if index.isdigit() else CUDA_PROVIDER
    return [cuda, CPU_PROVIDER]


def module_device(model: Any) -> str | None:
    """The device of a module's first parameter or buffer (None: not a module, or empty)."""
    from torch import nn

    if not isinstance(model, nn.Module):
        return None
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return str(tensor.device)
    return None


@contextlib.contextmanager
def placed(model: nn.Module, device: str) -> Iterator[nn.Module]:
    """`model` moved to `device` for the block, then back where it was (the caller's model
    stays on its device, e.g. on the CPU for ONNX export and MLflow logging)."""
    before = module_device(model)
    moved = before is not None and before != str(_canonical(device))
    if moved:
        model.to(device)
    try:
        yield model
    finally:
        if moved:
            model.to(before)


def _canonical(device: str) -> Any:
    """torch's spelling of a device ("cuda" is cuda:0 once a tensor is on it)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return dev
