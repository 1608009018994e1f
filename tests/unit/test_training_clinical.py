"""The clinical profile's GMIC-style model on CPU at small sizes: it trains, its patch
selection takes the most salient non-overlapping patches, checkpointing changes memory and
not gradients, it exports to ONNX with parity, its weights round-trip, and its fine-tuning
schedule freezes its own layer groups."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import torch

from pipelines.errors import PermanentError
from pipelines.params import TrainParams
from pipelines.training import gmic, weights
from pipelines.training.data import Split
from pipelines.training.fit import fit
from pipelines.training.gmic import GmicClassifier
from pipelines.training.model import ViewClassifier
from pipelines.training.profiles import build_model, get_profile
from pipelines.training.step import autocast_dtype

# 256x208 views, the global network at 1/2 (saliency cells of 32 px), 64 px patches
SMALL = TrainParams(epochs=3, batch_size=4, width=4, local_width=4, patch_size=64, patches=3,
                    global_downsample=2, seed=1, patience=5)


def lesion_split(n: int = 16, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    images = (rng.random((n, 1, 256, 208)) * 0.3).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.float32)
    for i in np.flatnonzero(labels):
        row, col = rng.integers(16, 230), rng.integers(16, 180)
        images[i, 0, row:row + 10, col:col + 10] = 1.0  # a bright lesion somewhere
    return Split(images, labels, np.array([f"ex-{i}" for i in range(n)]), np.array(["R"] * n))


def small_model(**overrides: object) -> GmicClassifier:
    torch.manual_seed(0)
    model = build_model("clinical", SMALL.model_copy(update=overrides))
    assert isinstance(model, GmicClassifier)
    return model


def tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in module.state_dict().values()]


def test_the_clinical_profile_trains_a_few_steps_on_cpu() -> None:
    fresh = small_model()
    model, history = fit(lesion_split(), lesion_split(seed=1), SMALL, profile="clinical")
    assert isinstance(model, GmicClassifier) and model.checkpointing  # the clinical profile's
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert next(model.parameters()).device.type == "cpu"
    changed = [not torch.equal(a, b) for a, b in zip(tensors(fresh), tensors(model), strict=True)]
    assert all(changed)  # every layer (global, saliency, local, attention, fusion) learned


def test_outputs_and_heatmap_shape() -> None:
    model = small_model().eval()
    x = torch.from_numpy(lesion_split(n=3).images)
    with torch.no_grad():
        prob, heatmap = model(x)
        logits = model.training_logits(x)
    # saliency cells of 16 x downsample = 32 px: ceil(256/32) x ceil(208/32)
    assert prob.shape == (3, 1) and heatmap.shape == (3, 1, 8, 7)
    assert logits.shape == (3, 3)  # fusion, global, local
    torch.testing.assert_close(torch.sigmoid(logits[:, :1]), prob)
    assert float(prob.min()) >= 0 and float(prob.max()) <= 1
    assert float(heatmap.min()) >= 0 and float(heatmap.max()) <= 1


def test_patch_selection_takes_the_most_salient_grid_cells_at_full_resolution() -> None:
    model = small_model(patches=3)
    height, width = 256, 208  # a 4 x 4 grid of 64 px patches (the last column padded)
    x = torch.arange(height * width, dtype=torch.float32).reshape(1, 1, height, width)
    x = torch.cat([x, -x])  # a second view, to check each view keeps its own patches
    saliency = torch.zeros(2, 1, 8, 7)  # 2 x 2 saliency cells per patch
    saliency[0, 0, 5, 2], saliency[0, 0, 0, 6], saliency[0, 0, 1, 1] = 9.0, 8.0, 7.0
    saliency[1, 0, 7, 0] = 5.0
    saliency[1, 0, 2, 3] = 4.0
    saliency[1, 0, 3, 3] = 3.0  # the same patch as the cell above: no second, overlapping pick
    patches, k = model._patches(x, saliency)
    assert k == 3 and patches.shape == (6, 1, 64, 64)
    padded = torch.nn.functional.pad(x, (0, 256 - width))

    def cell(view: int, row: int, col: int) -> torch.Tensor:
        return padded[view, :, row * 64:(row + 1) * 64, col * 64:(col + 1) * 64]

    torch.testing.assert_close(patches[0], cell(0, 2, 1))  # full resolution, highest first
    torch.testing.assert_close(patches[1], cell(0, 0, 3))  # the padded column holds zeros
    torch.testing.assert_close(patches[2], cell(0, 0, 0))
    torch.testing.assert_close(patches[3], cell(1, 3, 0))
    torch.testing.assert_close(patches[4], cell(1, 1, 1))
    assert not torch.equal(patches[5], patches[4])


def test_checkpointing_gives_the_same_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = small_model()
    plain.checkpointing = False
    saved = copy.deepcopy(plain)
    saved.checkpointing = True
    calls = []
    real = gmic.checkpoint

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(gmic, "checkpoint", counted)
    x = torch.from_numpy(lesion_split(n=4).images)
    y = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    for model in (plain, saved):
        model.train()
        logits = model.training_logits(x)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, y.expand_as(logits)).backward()
    assert len(calls) == 8  # four blocks of each network were checkpointed, in the second model
    for (name, a), b in zip(plain.named_parameters(), saved.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None, name
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_onnx_export_parity_and_a_free_batch(tmp_path: Path) -> None:
    import onnxruntime as ort

    from pipelines.modelfiles.embeddings import Embedder
    from pipelines.modelfiles.onnx import PARITY_TOLERANCE, export

    model = small_model()
    images = lesion_split(n=5).images
    assert export(model, images[:2], tmp_path / "model.onnx") <= PARITY_TOLERANCE
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    prob, heatmap = session.run(None, {"image": images})
    with torch.no_grad():
        want_prob, want_heatmap = model.eval()(torch.from_numpy(images))
    np.testing.assert_allclose(prob, want_prob.numpy(), atol=1e-4)
    np.testing.assert_allclose(heatmap, want_heatmap.numpy(), atol=1e-4)
    embeddings, scores = Embedder(tmp_path / "model.onnx").embed_and_score(images)
    assert embeddings.shape == (5, 4 * 4)  # the global feature map, one vector per view
    np.testing.assert_allclose(scores, prob[:, 0], atol=1e-6)


def test_weights_round_trip_for_both_architectures(tmp_path: Path) -> None:
    clinical = small_model()
    torch.manual_seed(1)
    demo = ViewClassifier(width=8, top_k=0.1)
    for model in (clinical, demo):
        loaded = weights.load(str(weights.save(model, tmp_path / f"{type(model).__name__}.pt")))
        assert type(loaded) is type(model) and loaded.config() == model.config()
        for a, b in zip(tensors(model), tensors(loaded), strict=True):
            torch.testing.assert_close(a, b)
    old = {"format": weights.FORMAT_V1, "width": 8, "top_k": 0.1, "state_dict": demo.state_dict()}
    torch.save(old, tmp_path / "v1.pt")  # a file written before the clinical profile
    assert isinstance(weights.load(str(tmp_path / "v1.pt")), ViewClassifier)
    torch.save(clinical.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(PermanentError, match="no architecture named"):
        weights.load(str(tmp_path / "bare.pt"))  # patch size and widths are not in a bare file
    torch.save({"architecture": "resnet", "config": {}, "state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(PermanentError, match="'resnet'"):
        weights.load(str(tmp_path / "other.pt"))


def test_fine_tuning_freezes_the_clinical_models_own_groups() -> None:
    base = small_model()
    before = {name: tensors(group) for name, group in base.groups().items()}
    params = SMALL.model_copy(update={"epochs": 2, "unfreeze_at": {
        "saliency": 1, "fusion": 0, "local": 1, "global": 5}})
    model, _ = fit(lesion_split(), lesion_split(seed=1), params, base=copy.deepcopy(base),
                   profile="clinical")
    after = {name: tensors(group) for name, group in model.groups().items()}
    for old, new in zip(before["global"], after["global"], strict=True):  # never unfrozen
        torch.testing.assert_close(old, new)
    for group in ("saliency", "local", "fusion"):
        assert any(not torch.equal(o, n) for o, n in zip(before[group], after[group], strict=True))


def test_a_base_of_the_other_profile_is_refused() -> None:
    with pytest.raises(PermanentError, match="view-classifier.*clinical profile"):
        fit(lesion_split(), lesion_split(seed=1), SMALL, base=ViewClassifier(width=4),
            profile="clinical")


def test_profiles_and_their_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.config import RadflowSettings, reset_settings

    assert isinstance(build_model("demo", SMALL), ViewClassifier)
    assert build_model(get_profile("clinical"), SMALL, checkpointing=False).checkpointing is False
    with pytest.raises(PermanentError, match="'research'"):
        get_profile("research")
    with pytest.raises(pydantic.ValidationError, match="multiple of 16 x global_downsample = 64"):
        TrainParams(patch_size=96, global_downsample=4)
    monkeypatch.setenv("RADFLOW_MODEL_PROFILE", "clinical")
    reset_settings()
    assert get_profile().name == "clinical"
    settings = RadflowSettings()
    assert (settings.image_height, settings.image_width) == (1024, 832)  # the clinical default
    monkeypatch.setenv("RADFLOW_IMAGE_HEIGHT", "2944")
    monkeypatch.setenv("RADFLOW_IMAGE_WIDTH", "1920")
    assert (RadflowSettings().image_height, RadflowSettings().image_width) == (2944, 1920)
    monkeypatch.setenv("RADFLOW_IMAGE_WIDTH", "96")
    with pytest.raises(pydantic.ValidationError, match="below the clinical profile's minimum 1024x832"):
        RadflowSettings()


def test_mixed_precision_only_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    clinical, demo = get_profile("clinical"), get_profile("demo")
    assert autocast_dtype(clinical, "cpu") is None
    assert autocast_dtype(demo, "cuda:0") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(clinical, "cuda:0") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype(clinical, "cuda") == torch.float16  # with a GradScaler (make_step)
