"""The model's own view of an image: its penultimate layer, for embedding drift.

The classifier's saliency map is a 1x1 convolution over the feature map of its (global)
network; that feature map, averaged over its locations, is the view's embedding (64
numbers for the default width). It is read from the same ONNX file Triton serves, by
adding the feature map as an extra graph output, so the embedding is exactly what the
served model computed, with no second copy of the network in PyTorch. The saliency
convolution is the Conv node the exporter names after the `saliency` module; a graph
without one (an older file) takes its last Conv node, which is the same layer in the demo
ViewClassifier (the GMIC-style model has the local network's convolutions after it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import PermanentError
from pipelines.modelfiles.device import onnx_providers
from pipelines.modelfiles.onnx import INPUT, OUTPUTS

EMBEDDING_OUTPUT = "radflow_embedding_features"
SALIENCY_MODULE = "saliency"  # the models' attribute name of the saliency 1x1 convolution


def _with_feature_output(path: Path) -> bytes:
    """The ONNX model at `path` with the input of its last Conv node as an extra output.

    Raises:
        PermanentError: the graph has no Conv node (not a radflow classifier).
    """
    import onnx

    model = onnx.load(str(path))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    if not convs:
        raise PermanentError(f"model file {path} has no convolution: no penultimate layer to embed")
    heads = [n for n in convs if n.name.startswith(f"/{SALIENCY_MODULE}/")]
    features = (heads or convs)[-1].input[0]  # graph nodes are topologically sorted
    identity = onnx.helper.make_node("Identity", [features], [EMBEDDING_OUTPUT])
    model.graph.node.append(identity)
    output = onnx.helper.make_tensor_value_info(EMBEDDING_OUTPUT, onnx.TensorProto.FLOAT, None)
    model.graph.output.append(output)
    return bytes(model.SerializeToString())


class Embedder:
    """Embeddings [N, C] of model inputs [N, 1, H, W] with the model file at `path`."""

    def __init__(self, path: Path, batch_size: int = 64) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session: Any = ort.InferenceSession(_with_feature_output(path), options,
                                                 providers=onnx_providers())
        self.batch_size = batch_size

    def embed(self, images: np.ndarray) -> np.ndarray:
        """The location-averaged feature map of each image, float32 [N, C]."""
        return self.embed_and_score(images)[0]

    def embed_and_score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings [N, C], probabilities [N]) of model inputs [N, 1, H, W]."""
        embeddings, probabilities = [], []
        for start in range(0, len(images), self.batch_size):
            batch = np.ascontiguousarray(images[start:start + self.batch_size], dtype=np.float32)
            maps, probs = self.session.run([EMBEDDING_OUTPUT, OUTPUTS[0]], {INPUT: batch})
            embeddings.append(np.asarray(maps).mean(axis=(2, 3)))
            probabilities.append(np.asarray(probs).reshape(-1))
        if not embeddings:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
        return (np.concatenate(embeddings).astype(np.float32),
                np.concatenate(probabilities).astype(np.float32))
