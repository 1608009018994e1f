"""A deploy killed mid-run (issue 18, `kill -9` trials) leaves its download and, between
staging and renaming, a hidden half-published version folder: the next deploy of the slot,
holding the slot's deploy lock, removes them, and leaves the versions and the other slot alone
(Triton and MLflow themselves: tests/reliability/test_kill_trials.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import get_settings
from pipelines.serving import deploy as deploying


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"onnx")
    return path


def test_the_next_deploy_of_the_slot_removes_what_a_killed_one_left(
        isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, downloads = get_settings().triton_repository, deploying.downloads_dir()
    left = [_file(repo / "mammo_screening" / ".staging-0badf00d" / "model.onnx").parent,
            _file(repo / "mammo_screening" / ".config.pbtxt.0badf00d.tmp"),
            _file(downloads / "mammo_screening-3-0badf0" / "model.onnx").parent]
    kept = [_file(repo / "mammo_screening" / "3" / "model.onnx"),
            _file(repo / "mammo_screening" / "config.pbtxt"),
            _file(repo / "mammo_screening_shadow" / ".staging-12345678" / "model.onnx"),
            _file(downloads / "mammo_screening_shadow-4-123456" / "model.onnx")]
    locks: list[str] = []

    @contextlib.contextmanager
    def lock(stage: str) -> Iterator[None]:
        locks.append(stage)
        yield

    def rest(*args: Any) -> str:
        assert locks == ["deploy-mammo_screening"]  # held while the deploy runs
        assert not any(p.exists() for p in left)
        return "deployed"

    monkeypatch.setattr(deploying, "stage_lock", lock)
    monkeypatch.setattr(deploying, "_deploy", rest)
    assert deploying.deploy("models:/mammo-screening/3") == "deployed"
    assert all(p.exists() for p in kept)
    assert deploying.clear_leftovers("mammo_screening") == 0  # nothing left to remove
