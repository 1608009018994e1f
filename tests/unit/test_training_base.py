"""Which model a training run starts from (pipelines/training/base.py): the registered
base unless told otherwise, from scratch only without one, and the lineage pinned."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.errors import PermanentError
from pipelines.training import base, weights
from pipelines.training.model import ViewClassifier


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A fake registry: `aliases` {(model, alias): version}; `loaded` lists the weights loaded
    by URI (a file is loaded for real)."""
    fake = SimpleNamespace(aliases={}, loaded=[])

    def by_alias(client: Any, name: str, alias: str) -> Any:
        version = fake.aliases.get((name, alias))
        return None if version is None else SimpleNamespace(name=name, version=version)

    real_load = weights.load

    def load(source: str) -> Any:
        if not source.startswith("models:/"):
            return real_load(source)
        fake.loaded.append(source)
        return ViewClassifier(width=4)

    monkeypatch.setattr("pipelines.tracking.mlflow_client", lambda: object())
    monkeypatch.setattr("pipelines.tracking.version_by_alias", by_alias)
    monkeypatch.setattr(weights, "load", load)
    return fake


def test_without_a_choice_the_registered_base_is_fine_tuned_pinned_to_its_version(registry) -> None:
    registry.aliases[("mammo-screening-base", "base")] = "3"
    choice = base.choose(None, "mammo-screening")
    assert choice.fine_tuning and choice.start == "fine-tuned"
    assert choice.source == choice.uri == "models:/mammo-screening-base/3"
    assert choice.requested == "models:/mammo-screening-base@base"
    assert registry.loaded == ["models:/mammo-screening-base/3"]  # the pinned version's weights


def test_without_a_registered_base_training_starts_from_scratch_and_says_so(registry) -> None:
    choice = base.choose(None, "mammo-screening")
    assert not choice.fine_tuning and choice.model is None and choice.uri is None
    assert (choice.source, choice.start) == (base.FROM_SCRATCH, "from scratch")
    assert "not registered" in choice.requested


def test_scratch_is_a_choice_even_when_a_base_exists(registry) -> None:
    registry.aliases[("mammo-screening-base", "base")] = "3"
    for word in ("scratch", "none", " Scratch "):
        assert base.choose(word, "mammo-screening").source == base.FROM_SCRATCH
    assert registry.loaded == []


def test_an_alias_uri_is_pinned_and_an_unknown_alias_is_named(registry) -> None:
    registry.aliases[("other-base", "candidate")] = "7"
    choice = base.choose("models:/other-base@candidate", "mammo-screening")
    assert choice.source == "models:/other-base/7" and choice.requested == "models:/other-base@candidate"
    assert base.choose("models:/other-base/2", "mammo-screening").source == "models:/other-base/2"
    with pytest.raises(PermanentError, match="no version of 'other-base' holds alias 'nope'"):
        base.choose("models:/other-base@nope", "mammo-screening")


def test_a_weights_file_is_named_by_its_sha256(registry, tmp_path: Path) -> None:
    path = weights.save(ViewClassifier(width=4), tmp_path / "hospital-base.pt")
    choice = base.choose(str(path), "mammo-screening")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert choice.source == f"file hospital-base.pt sha256 {digest}"
    assert choice.fine_tuning and choice.uri is None  # the run logs its copy for comparisons
    with pytest.raises(PermanentError, match="no such file"):
        base.choose(str(tmp_path / "absent.pt"), "mammo-screening")
