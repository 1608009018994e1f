"""Model weights as a file: what every training run logs, and what a base model comes from.

A base model for fine-tuning is either an MLflow model URI (`models:/<name>@<alias>`,
`models:/<name>/<version>`, `runs:/<run id>`), whose run logged the weights file, or a
weights file a hospital brings (no download from any hub). The file is a PyTorch
`state_dict` with the model's constructor arguments:
`{"format": FORMAT, "width": int, "top_k": float, "state_dict": {...}}`; a bare
`state_dict` of the same architecture is accepted too.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from pipelines.errors import PermanentError
from pipelines.training.model import ViewClassifier

FORMAT = "radflow-view-classifier/1"
WEIGHTS_ARTIFACT = "weights/view_classifier.pt"  # in every training run's artifacts
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def save(model: ViewClassifier, path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "width": model.width, "top_k": model.top_k,
                "state_dict": model.state_dict()}, path)
    return path


def load(source: str) -> ViewClassifier:
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
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or "stem.0.weight" not in state:
        raise PermanentError(f"base model weights {source!r}: not a ViewClassifier state_dict "
                             "(no stem.0.weight)")
    width = int(data.get("width", state["stem.0.weight"].shape[0]))
    model = ViewClassifier(width=width, top_k=float(data.get("top_k", 0.05)))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise PermanentError(
            f"base model weights {source!r} do not fit the model: missing "
            f"{list(result.missing_keys)[:5]}, unexpected {list(result.unexpected_keys)[:5]}")
    return model


def _download(uri: str, folder: Path) -> Path:
    """The weights file logged by the run behind an MLflow model or run URI."""
    from mlflow.exceptions import MlflowException

    import mlflow
    from pipelines.tracking import mlflow_client

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
        raise PermanentError(f"base model {uri!r} not found in MLflow: {exc.message}") from exc
