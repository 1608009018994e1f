"""A cleared or retried Airflow run trains nothing again: `train.run(run_key=...)` finds the
version that run registered (tag `airflow_run`) on the published dataset and returns its
result; on a newer dataset it trains (real MLflow on SQLite in the temp state dir, a
published 12-exam dataset)."""

from __future__ import annotations

import pytest

from pipelines.datasets import run as build
from pipelines.datasets.run import DatasetResult
from pipelines.training import run as train
from tests.unit.test_datasets_build import ingest
from tests.unit.test_datasets_evaluate import built  # noqa: F401  (the fixture)


def _versions() -> list[str]:
    from pipelines.tracking import mlflow_client

    return sorted(str(mv.version) for mv in mlflow_client().search_model_versions("name = 'mammo-screening'"))


def test_a_rerun_of_the_same_airflow_run_returns_its_version_and_registers_nothing(
        built: DatasetResult) -> None:  # noqa: F811
    key = "retrain_mammo_model/manual__2026-12-06T10:00:00+00:00"
    first = train.run(epochs=1, base="scratch", run_key=key)
    assert _versions() == [first.model_version]

    again = train.run(epochs=1, base="scratch", run_key=key)
    assert again == first  # the same version, run and metrics, read back from MLflow
    assert _versions() == [first.model_version]

    # new exams came in and the dataset was frozen again: the same run trains on it
    ingest(4, first=12)
    assert build.run().version != built.version
    newer = train.run(epochs=1, base="scratch", run_key=key)
    assert newer.model_version != first.model_version
    assert _versions() == sorted([first.model_version, newer.model_version])


@pytest.mark.parametrize("key", ["no-slash", "dag/run' or tags.x = 'y", "dag/run id"])
def test_a_malformed_run_key_is_refused_before_any_work(key: str) -> None:
    with pytest.raises(ValueError, match="run_key"):
        train.run(run_key=key)
