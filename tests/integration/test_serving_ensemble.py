"""The ensemble on the real Triton: stored pixels in, the classifier's probability and
heatmap out, equal to onnxruntime on the input `preprocess` gives training.

The repository holds the reviewed configs of serving/triton_repo (the preprocessing one
set to the small classifier's input size), a seeded ViewClassifier published as version 1
by `write_version`, and the preprocessing adapter, which runs in Triton's own environment
(numpy 1.26) the same pipelines.imaging code the tests run here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.config import PROJECT_DIR, TRITON_ADMIN_HEADER
from tests.integration.stack import Stack

H, W = 64, 48
REVIEWED = PROJECT_DIR / "serving" / "triton_repo"
CLASSIFIER, PREPROCESSING, ENSEMBLE = "mammo_screening", "mammo_preprocessing", "mammo_screening_ensemble"


def sized_preprocessing_config(text: str, height: int, width: int) -> str:
    """The reviewed preprocessing config with its output size and parameters set."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    config.parameters["height"].string_value = str(height)
    config.parameters["width"].string_value = str(width)
    (image,) = config.output
    del image.dims[:]
    image.dims.extend([1, 1, height, width])
    return text_format.MessageToString(config)


@pytest.fixture(scope="module")
def onnx_file(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded classifier for H x W (its ONNX file returned), published as mammo_screening
    v1 beside the preprocessing model and the ensemble, all three loaded."""
    import torch

    from pipelines.modelfiles.onnx import export
    from pipelines.serving.deploy import write_version
    from pipelines.training.model import ViewClassifier

    torch.manual_seed(5)
    model = ViewClassifier(width=8).eval()
    with torch.no_grad():  # untrained answers differ by ~1e-5 between views; make them differ
        model.saliency.weight.mul_(300.0)
        model.saliency.bias.zero_()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export(model, np.random.default_rng(5).random((2, 1, H, W), np.float32), path)

    repo = Path(stack.env["RADFLOW_TRITON_REPO"])
    (repo / CLASSIFIER).mkdir(parents=True, exist_ok=True)
    shutil.copy2(REVIEWED / CLASSIFIER / "config.pbtxt", repo / CLASSIFIER / "config.pbtxt")
    write_version(repo, CLASSIFIER, 1, path)
    (repo / PREPROCESSING / "1").mkdir(parents=True)
    (repo / PREPROCESSING / "config.pbtxt").write_text(
        sized_preprocessing_config((REVIEWED / PREPROCESSING / "config.pbtxt").read_text(), H, W))
    shutil.copy2(REVIEWED / PREPROCESSING / "model.py", repo / PREPROCESSING / "1" / "model.py")
    (repo / ENSEMBLE / "1").mkdir(parents=True)
    shutil.copy2(REVIEWED / ENSEMBLE / "config.pbtxt", repo / ENSEMBLE / "config.pbtxt")

    key = (stack.state / "secrets" / "triton.env").read_text().strip().split("=", 1)[1]
    client = triton(stack)
    for name in (CLASSIFIER, PREPROCESSING, ENSEMBLE):
        client.load_model(name, headers={TRITON_ADMIN_HEADER: key})
        assert client.is_model_ready(name), name
    return path


def triton(stack: Stack, concurrency: int = 1) -> Any:
    import tritonclient.http as http

    return http.InferenceServerClient(f"127.0.0.1:{stack.env['RADFLOW_TRITON_HTTP_PORT']}",
                                      concurrency=concurrency)


def inputs(pixels: np.ndarray, attributes: str, mirror: bool) -> list[Any]:
    import tritonclient.http as http

    tensors = [http.InferInput("pixels", list(pixels.shape), "INT32"),
               http.InferInput("attributes", [1], "BYTES"),
               http.InferInput("mirror", [1], "BOOL")]
    tensors[0].set_data_from_numpy(np.ascontiguousarray(pixels, dtype=np.int32))
    tensors[1].set_data_from_numpy(np.array([attributes.encode()], dtype=object))
    tensors[2].set_data_from_numpy(np.array([mirror], dtype=bool))
    return tensors


def synthetic_views() -> list[tuple[str, Any]]:
    """(view, dataset) of two small synthetic exams: MONOCHROME2 LINEAR and MONOCHROME1 SIGMOID."""
    from pipelines.synth.generate import iter_exams

    views = []
    for site in ("general", "north"):
        exam = next(iter_exams(1, "2026-03-14", site, seed=3, scale=0.06, positive_rate=1.0))
        views += [(f"{site} {i.name}", i.dataset) for i in exam.instances[:4]]
    return views


def test_the_ensemble_answers_as_onnxruntime_on_the_training_input(stack: Stack, onnx_file: Path) -> None:
    import onnxruntime as ort

    from pipelines.imaging.preprocess import preprocess
    from pipelines.imaging.stored import serving_request

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    client = triton(stack, concurrency=4)
    views = synthetic_views()
    requests = [serving_request(ds, name.split()[1][0], H) for name, ds in views]
    # All at once, so that the classifier may batch views of different requests together.
    pending = [client.async_infer(ENSEMBLE, inputs(v.pixels, v.attributes_json(), v.mirror))
               for v in requests]
    probabilities = []
    for (name, ds), view, handle in zip(views, requests, pending, strict=True):
        trained = preprocess(ds, name.split()[1][0], H, W)[None, None]
        want_p, want_map = session.run(["probability", "heatmap"], {"image": trained})
        got = handle.get_result()
        assert got.as_numpy("probability").shape == (1, 1), name
        assert got.as_numpy("heatmap").shape == want_map.shape == (1, 1, H // 16, W // 16), name
        np.testing.assert_allclose(got.as_numpy("probability"), want_p, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(got.as_numpy("heatmap"), want_map, atol=1e-5, err_msg=name)
        # The served preprocessing (numpy 1.26 in Triton's environment) is training's, exactly.
        image = client.infer(PREPROCESSING, inputs(view.pixels, view.attributes_json(), view.mirror))
        assert np.array_equal(image.as_numpy("image"), trained), name
        probabilities.append(float(want_p[0, 0]))
    assert max(probabilities) - min(probabilities) > 1e-3  # 100x the tolerance: a wrong input shows


def test_a_malformed_request_is_refused_by_name_and_the_next_one_served(
        stack: Stack, onnx_file: Path) -> None:
    from tritonclient.utils import InferenceServerException

    from pipelines.imaging.stored import serving_request

    _, ds = synthetic_views()[0]
    view = serving_request(ds, "R", H)
    client = triton(stack)
    no_photometric = json.dumps({k: v for k, v in view.attributes.items()
                                 if k != "PhotometricInterpretation"})
    with pytest.raises(InferenceServerException, match="lack PhotometricInterpretation"):
        client.infer(ENSEMBLE, inputs(view.pixels, no_photometric, view.mirror))
    with pytest.raises(InferenceServerException, match="shape for input 'pixels'"):
        client.infer(ENSEMBLE, inputs(view.pixels.reshape(-1), view.attributes_json(), view.mirror))
    with pytest.raises(InferenceServerException, match="not valid JSON"):
        client.infer(ENSEMBLE, inputs(view.pixels, "{PatientName", view.mirror))
    good = client.infer(ENSEMBLE, inputs(view.pixels, view.attributes_json(), view.mirror))
    assert np.isfinite(good.as_numpy("probability")).all()
