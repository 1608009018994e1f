"""Model weights as a file: what every training run logs, and what a base model comes from.

A base model for fine-tuning is either an MLflow model URI (`models:/<name>@<alias>`,
`models:/<name>/<version>`, `runs:/<run id>`), whose run logged the weights file, or a
weights file a hospital brings (no download from any hub). The file is a PyTorch
`state_dict` with the model's architecture and constructor arguments:
`{"format": FORMAT, "architecture": "view-classifier" | "gmic", "config": {...},
"width": int, "top_k": float, "state_dict": {...}}` (pipelines/training/profiles.py
ARCHITECTURES). A file without "architecture" (FORMAT_V1, before the clinical profile) is a
ViewClassifier, and so is a bare `state_dict` with its layers; the clinical model's weights
need their constructor arguments (patch size, widths), so only its full file loads.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from pipelines.errors import PermanentError
from pipelines.training import model as demo
from pipelines.training.profiles import ViewModel, architecture, architecture_of

FORMAT = "radflow-view-model/2"
FORMAT_V1 = "radflow-view-classifier/1"  # ViewClassifier only, still read
WEIGHTS_ARTIFACT = "weights/view_classifier.pt"  # in every training run's artifacts
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def save(model: ViewModel, path: Path) -> Path:
    """Write the model's weights (as CPU tensors), architecture and constructor arguments."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "architecture": architecture_of(model), "config": model.config(),
                "width": model.width, "top_k": model.top_k, "state_dict": state}, path)
    return path


def load(source: str) -> ViewModel:
    """The model in a weights file or behind an MLflow model URI.

    Raises:
        PermanentError: the file or URI does not exist, or holds another architecture
            (the message names the missing or unexpected layers).
    """
    import torch

    with tempfile.TemporaryDirectory(prefix="radflow-base-") as tmp:
        path = _download(source, Path(tmp)) if source.startswith(("models:/", "runs:/")) \
            else Path(source)
        if not path.is_file():
            raise PermanentError(f"base model weights {source!r}: no such file")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file
            raise PermanentError(f"base model weights {source!r} are not a PyTorch weights "
                                 f"file: {type(exc).__name__}") from exc
    model, state = _build(source, data)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise PermanentError(
            f"base model weights {source!r} do not fit the model: missing "
            f"{list(result.missing_keys)[:5]}, unexpected {list(result.unexpected_keys)[:5]}")
    return model


def _build(source: str, data: Any) -> tuple[ViewModel, dict[str, Any]]:
    """The empty model a weights file's contents describe, and its state_dict.

    Raises:
        PermanentError: an unknown architecture, constructor arguments it refuses, or a
            bare state_dict that is not a ViewClassifier's.
    """
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise PermanentError(f"base model weights {source!r}: no state_dict")
    name = data.get("architecture") if "state_dict" in data else None
    if name is None:  # a FORMAT_V1 file or a bare state_dict: a ViewClassifier
        if "stem.0.weight" not in state:
            raise PermanentError(f"base model weights {source!r}: not a ViewClassifier state_dict "
                                 "(no stem.0.weight) and no architecture named")
        width = int(data.get("width", state["stem.0.weight"].shape[0]))
        return demo.ViewClassifier(width=width, top_k=float(data.get("top_k", 0.05))), state
    config = data.get("config")
    if not isinstance(config, dict):
        raise PermanentError(f"base model weights {source!r}: architecture {name!r} without "
                             "its constructor arguments (config)")
    try:
        built = architecture(str(name))(**config)
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"base model weights {source!r}: {name} refuses its config "
                             f"{config}: {exc}") from exc
    return built, state


def _download(uri: str, folder: Path) -> Path:
    """The weights file logged by the run behind an MLflow model or run URI."""
    from mlflow.exceptions import MlflowException

    import mlflow
    from pipelines.tracking import mlflow_client, unavailable

    match = _MODEL_URI.match(uri)
    if match is None and not uri.startswith("runs:/"):
        raise PermanentError(f"base model URI {uri!r}: expected models:/<name>@<alias>, "
                             "models:/<name>/<version> or runs:/<run id>")
    client = mlflow_client()
    try:
        if match is None:
            run_id = uri.removeprefix("runs:/").split("/")[0]
        else:
            version = (client.get_model_version_by_alias(match["name"], match["alias"])
                       if match["alias"] else client.get_model_version(match["name"], match["version"]))
            run_id = str(version.run_id)
        return Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=WEIGHTS_ARTIFACT, dst_path=str(folder)))
    except MlflowException as exc:
        if (outage := unavailable(exc, f"the base model {uri}")) is not None:
            raise outage from exc  # a retry may find it
        raise PermanentError(f"base model {uri!r} not found in MLflow: {exc.message}") from exc
