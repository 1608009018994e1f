"""Fine-tuning: the freezing schedule holds frozen layers still, early stopping stops,
a seed repeats a run, and base weights load from a file or fail with a clear error."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.errors import PermanentError
from pipelines.params import TrainParams
from pipelines.training import weights
from pipelines.training.data import Split
from pipelines.training.fit import fit, trainable_groups
from pipelines.training.model import ViewClassifier


def toy_split(n: int = 48, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    images = (rng.random((n, 1, 32, 32)) * 0.3).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.float32)
    images[labels == 1, 0, 8:14, 8:14] = 1.0
    return Split(images, labels, np.array([f"ex-{i}" for i in range(n)]), np.array(["R"] * n))


def tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in module.state_dict().values()]


def test_frozen_groups_do_not_move_until_their_epoch() -> None:
    torch.manual_seed(0)
    base = ViewClassifier(width=4)
    before = {name: tensors(group) for name, group in base.groups().items()}
    params = TrainParams(epochs=2, batch_size=8, width=4, patience=5,
                         unfreeze_at={"saliency": 0, "features": 1, "stem": 5})
    model, _ = fit(toy_split(), toy_split(seed=1), params, base=copy.deepcopy(base))
    after = {name: tensors(group) for name, group in model.groups().items()}
    for old, new in zip(before["stem"], after["stem"], strict=True):  # never unfrozen
        torch.testing.assert_close(old, new)  # weights and batch-norm statistics alike
    assert any(not torch.equal(o, n) for o, n in zip(before["features"], after["features"], strict=True))
    assert any(not torch.equal(o, n) for o, n in zip(before["saliency"], after["saliency"], strict=True))


def test_the_schedule_names_the_groups_of_each_epoch() -> None:
    params = TrainParams(unfreeze_at={"saliency": 0, "features": 2, "stem": 4})
    assert trainable_groups(0, params, fine_tuning=True) == {"saliency"}
    assert trainable_groups(3, params, fine_tuning=True) == {"saliency", "features"}
    assert trainable_groups(4, params, fine_tuning=True) == {"saliency", "features", "stem"}
    assert trainable_groups(0, params, fine_tuning=False) == {"saliency", "features", "stem"}


def test_early_stopping_and_the_seed() -> None:
    flat = toy_split()
    flat = Split(flat.images, flat.labels, flat.exam_ids, flat.laterality)
    noise = Split(np.random.default_rng(3).random(flat.images.shape, dtype=np.float32),
                  np.roll(flat.labels, 1), flat.exam_ids, flat.laterality)  # nothing to learn
    params = TrainParams(epochs=30, batch_size=8, width=4, patience=2, seed=5)
    _, history = fit(noise, noise, params)
    assert len(history) < 30  # stopped: validation AUC stopped improving
    a, _ = fit(flat, flat, TrainParams(epochs=2, batch_size=8, width=4, seed=5))
    b, _ = fit(flat, flat, TrainParams(epochs=2, batch_size=8, width=4, seed=5))
    for x, y in zip(tensors(a), tensors(b), strict=True):
        torch.testing.assert_close(x, y)


def test_weights_round_trip_through_a_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ViewClassifier(width=8, top_k=0.1)
    path = weights.save(model, tmp_path / "w" / "base.pt")
    loaded = weights.load(str(path))
    assert (loaded.width, loaded.top_k) == (8, 0.1)
    for x, y in zip(tensors(model), tensors(loaded), strict=True):
        torch.testing.assert_close(x, y)
    torch.save(model.state_dict(), tmp_path / "bare.pt")  # a bare state_dict works too
    assert weights.load(str(tmp_path / "bare.pt")).width == 8


def test_bad_base_weights_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="no such file"):
        weights.load(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PermanentError, match="not a PyTorch weights file"):
        weights.load(str(tmp_path / "junk.pt"))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(PermanentError, match="not a ViewClassifier state_dict"):
        weights.load(str(tmp_path / "other.pt"))
    state = ViewClassifier(width=4).state_dict()
    state.pop("saliency.bias")
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(PermanentError, match="missing .'saliency.bias'."):
        weights.load(str(tmp_path / "partial.pt"))
    with pytest.raises(PermanentError, match="expected models:/<name>@<alias>"):
        weights._download("models:/bad/uri/shape", tmp_path)  # checked before any MLflow call
