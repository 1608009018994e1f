"""Model-file integrity on the real Triton and MLflow: a deployed version checks ok, a
byte changed in the served file is reported on the first check, a served file deleted
is missing, a model nobody deployed is unknown.

This module has its own stack (the `stack` fixture is module-scoped); each test still
undoes its tampering, so the tests do not depend on one another's order.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import config
from pipelines.monitoring import integrity
from pipelines.monitoring.records import IntegrityRow
from tests.integration.models import register_versions
from tests.integration.stack import Stack

MODEL = "mammo-screening"
H, W = 128, 96  # the default model input


@pytest.fixture(scope="module")
def deployed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 registered and deployed as the champion; the served model.onnx."""
    register_versions(stack, MODEL, [(H, W)], tmp_path_factory.mktemp("onnx"))
    stack.radflow("promote", "--version", "1", "--reason", "first champion", login="admin")
    out = stack.radflow("deploy", "--model-uri", f"models:/{MODEL}/1")
    assert out["triton_version"] == 1
    return Path(out["repository"]) / "mammo_screening" / "1" / "model.onnx"


@pytest.fixture
def on_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """radflow's settings in this process pointed at the module's stack."""
    for key, value in stack.env.items():
        if key.startswith("RADFLOW_"):
            monkeypatch.setenv(key, value)
    config.reset_settings()
    yield
    config.reset_settings()


def _rows() -> dict[tuple[str, str], IntegrityRow]:
    return {(r.triton_model, r.version): r for r in integrity.check()}


def test_a_deployed_version_checks_ok_and_is_listed_as_served(deployed: Path, on_stack: None) -> None:
    rows = _rows()
    assert all(r.ok for r in rows.values()), [r for r in rows.values() if not r.ok]
    classifier = rows["mammo_screening", "1"]
    assert classifier.served and classifier.registered == f"{MODEL}/1"
    assert rows["mammo_preprocessing", "1"].served and rows["mammo_screening_ensemble", "1"].served
    assert integrity.summary(rows.values())["ok"] is True


def test_a_byte_flipped_in_the_served_file_is_a_mismatch(deployed: Path, on_stack: None) -> None:
    original = deployed.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    deployed.write_bytes(bytes(tampered))
    try:
        rows = _rows()
    finally:
        deployed.write_bytes(original)
    bad = [(r.triton_model, r.version, r.status, r.served) for r in rows.values() if not r.ok]
    assert bad == [("mammo_screening", "1", "mismatch", True)]
    assert str(deployed) in rows["mammo_screening", "1"].detail
    assert integrity.summary(rows.values())["counts"]["mismatch"] == 1


def test_a_served_file_that_is_gone_is_missing(deployed: Path, on_stack: None) -> None:
    aside = deployed.with_name("model.onnx.aside")
    deployed.rename(aside)  # Triton keeps serving the copy it loaded
    try:
        row = _rows()["mammo_screening", "1"]
    finally:
        aside.rename(deployed)
    assert (row.status, row.served) == ("missing", True)
    assert not [r for r in _rows().values() if not r.ok]  # restored, and .aside is gone again


def test_a_rogue_model_folder_is_unknown(deployed: Path, on_stack: None) -> None:
    rogue = deployed.parents[2] / "rogue_model"
    (rogue / "1").mkdir(parents=True)
    (rogue / "1" / "model.onnx").write_bytes(deployed.read_bytes())  # an approved file, wrong place
    try:
        rows = _rows()
    finally:
        shutil.rmtree(rogue)
    assert rows["rogue_model", "1"].status == "unknown" and not rows["rogue_model", "1"].served
    assert [k for k, r in rows.items() if not r.ok] == [("rogue_model", "1")]
