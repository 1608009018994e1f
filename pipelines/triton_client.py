"""TritonClient: readiness, model control and batched inference over Triton's HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.config import TRITON_ADMIN_HEADER, RadflowSettings, get_settings
from pipelines.errors import TritonUnavailable

if TYPE_CHECKING:
    import tritonclient.http as httpclient

INPUT, OUTPUT = "image", "probability"
OUTPUTS = ("probability", "heatmap")


class TritonClient:
    """The calls radflow makes to Triton; connection failures become TritonUnavailable."""

    def __init__(self, settings: RadflowSettings | None = None) -> None:
        import tritonclient.http as httpclient

        s = settings or get_settings()
        self.url = s.triton_http_url
        key = s.triton_admin_secret()
        self._admin = {TRITON_ADMIN_HEADER: key} if key else None  # model-repository API only
        self._http = httpclient
        self._client: httpclient.InferenceServerClient = httpclient.InferenceServerClient(
            url=self.url, connection_timeout=30.0, network_timeout=120.0
        )

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            raise TritonUnavailable(f"Triton at {self.url}: {what} failed: {exc.message()}") from exc
        except (OSError, ConnectionError) as exc:
            raise TritonUnavailable(f"Triton at {self.url} did not answer ({what}): {exc}") from exc

    def server_ready(self) -> bool:
        try:
            return bool(self._client.is_server_ready())
        except Exception:
            return False

    def load(self, model: str) -> None:
        self._call(f"load {model}", self._client.load_model, model, headers=self._admin)

    def unload(self, model: str) -> None:
        self._call(f"unload {model}", self._client.unload_model, model, headers=self._admin)

    def model_ready(self, model: str, version: str = "") -> bool:
        try:
            return bool(self._client.is_model_ready(model, version))
        except Exception:
            return False

    def infer(self, model: str, images: np.ndarray, batch_size: int, version: str = "") -> np.ndarray:
        """Probabilities of images [N, 1, H, W], sent in batches of `batch_size`."""
        return self.infer_outputs(model, images, batch_size, version, (OUTPUT,))[OUTPUT].reshape(-1)

    def infer_outputs(self, model: str, images: np.ndarray, batch_size: int, version: str = "",
                      outputs: tuple[str, ...] = OUTPUTS) -> dict[str, np.ndarray]:
        """The named outputs of images [N, 1, H, W] (first axis N), in batches of `batch_size`."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
        for i in range(0, len(images), batch_size):
            batch = np.ascontiguousarray(images[i:i + batch_size], dtype=np.float32)
            inp = self._http.InferInput(INPUT, list(batch.shape), "FP32")
            inp.set_data_from_numpy(batch, binary_data=True)
            want = [self._http.InferRequestedOutput(name, binary_data=True) for name in outputs]
            res = self._call(f"infer on {model}", self._client.infer, model, [inp],
                             model_version=version, outputs=want)
            for name in outputs:
                value = res.as_numpy(name)
                if value is None or value.shape[0] != len(batch):
                    raise TritonUnavailable(f"Triton model {model} returned a malformed {name}: "
                                            f"{None if value is None else value.shape}")
                parts[name].append(value)
        return {name: np.concatenate(v) if v else np.zeros((0, 1), np.float32) for name, v in parts.items()}

    def ready_versions(self, model: str) -> list[str]:
        """The versions of `model` Triton reports READY in its repository index."""
        index = self._call("repository index", self._client.get_model_repository_index, headers=self._admin)
        return sorted(str(m.get("version", "")) for m in index
                      if m.get("name") == model and m.get("state") == "READY")

    def close(self) -> None:
        self._client.close()
