"""A training run killed right after MLflow created its version leaves a complete version: the
tags deploy and screening need (the ONNX file's SHA-256, the operating point, the suspicion
cuts, the dataset version) are created with it, never set one by one afterwards (issue 18,
`kill -9` trials: a kill between the two left versions deploy could not verify). Real MLflow on
SQLite in the temp state dir, a published 12-exam dataset."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.datasets.run import DatasetResult
from pipelines.training import run as train
from tests.unit.test_datasets_evaluate import built  # noqa: F401  (the fixture)

NEEDED = {"onnx_sha256", "operating_point", "suspicion_cuts", "dataset_version", "input_shape",
          "training_start"}


class Killed(BaseException):
    """The process died here (not an Exception: nothing may catch it and carry on)."""


def _die(*args: Any, **kwargs: Any) -> None:
    raise Killed


def test_a_run_that_dies_right_after_registering_leaves_its_version_complete(
        built: DatasetResult, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from mlflow.tracking import MlflowClient

    from pipelines.tracking import mlflow_client

    with monkeypatch.context() as dying:  # the first registry call after the version exists
        dying.setattr(MlflowClient, "set_model_version_tag", _die)
        dying.setattr(MlflowClient, "set_registered_model_alias", _die)
        with pytest.raises(Killed):
            train.run(epochs=1, base="scratch")

    (version,) = mlflow_client().search_model_versions("name = 'mammo-screening'")
    assert NEEDED <= set(version.tags), sorted(version.tags)
    assert version.tags["dataset_version"] == built.version
